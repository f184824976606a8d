// Command dsync-connector-docdir serves the docdir connector (package
// docdir) to dsync. Build it under that name and put it on PATH or in
// --plugin-dir:
//
//	go build -o ~/bin/dsync-connector-docdir .
//	dsync sync 'random://?docs=1000' docdir:///tmp/docs --mode initial
package main

import (
	"example.com/dsync-connector-docdir/docdir"

	"github.com/dsyncio/dsync/sdk"
)

func main() { sdk.Serve(sdk.Plugin{Connector: docdir.New()}) }
