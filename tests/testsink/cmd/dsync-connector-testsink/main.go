// Command dsync-connector-testsink serves the testsink connector as a dsync
// plugin. The dsync host runs it for testsink:// URLs; see package testsink.
package main

import (
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/tests/testsink"
)

func main() {
	sdk.Serve(sdk.Plugin{Connector: testsink.New()})
}
