// Command dsync copies a live database to another and keeps it in sync.
package main

import (
	"context"
	"os"

	"github.com/dsyncio/dsync/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
