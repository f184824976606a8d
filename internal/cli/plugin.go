package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/internal/wire"
)

// pluginCommand is the hidden entry point through which dsync re-executes
// itself to serve a built-in connector or transform as a go-plugin
// subprocess. It is not meant to be run by hand: without the plugin
// handshake environment go-plugin refuses and explains.
func pluginCommand() *cli.Command {
	return &cli.Command{
		Name:   "plugin",
		Hidden: true,
		Usage:  "serve a built-in plugin (used by dsync itself)",
		Subcommands: []*cli.Command{{
			Name:      "serve",
			Usage:     "serve a built-in connector or transform over the plugin protocol",
			ArgsUsage: "connector SCHEME | transform NAME",
			Action: func(c *cli.Context) error {
				if c.NArg() != 2 {
					return usageErrorf("usage: dsync plugin serve connector SCHEME | transform NAME")
				}
				kind, name := c.Args().Get(0), c.Args().Get(1)
				switch kind {
				case "connector":
					b, ok := builtin.LookupConnector(name)
					if !ok {
						return usageErrorf("no built-in connector %q (built-ins: %v)", name, builtin.ConnectorSchemes())
					}
					wire.Serve(wire.ServeOptions{Connector: b.New()})
				case "transform":
					b, ok := builtin.LookupTransform(name)
					if !ok {
						return usageErrorf("no built-in transform %q (built-ins: %v)", name, builtin.TransformNames())
					}
					wire.Serve(wire.ServeOptions{Transform: b.New()})
				default:
					return usageErrorf("plugin kind must be connector or transform, not %q", kind)
				}
				return nil
			},
		}},
	}
}
