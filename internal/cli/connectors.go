package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/internal/spi"
)

// connectorEntry is one line of `dsync connectors`.
type connectorEntry struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	Builtin      bool     `json:"builtin"`
	Path         string   `json:"path,omitempty"`
	Summary      string   `json:"summary,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
}

func pluginDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "plugin-dir",
		Usage:   "directory searched for dsync-connector-<scheme> and dsync-transform-<name> executables before PATH",
		EnvVars: []string{"DSYNC_PLUGIN_DIR"},
	}
}

func connectorsCommand() *cli.Command {
	return &cli.Command{
		Name:  "connectors",
		Usage: "list built-in connectors and transforms and plugins found on PATH",
		Description: "Built-in capabilities are listed without starting anything. Third-party plugins are\n" +
			"listed by path; their capabilities are known once they are configured.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
			pluginDirFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("connectors takes no arguments")
			}
			entries := listConnectors(c.String("plugin-dir"))
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSOURCE\tCAPABILITIES\tDESCRIPTION")
			for _, e := range entries {
				where := "built-in"
				if !e.Builtin {
					where = e.Path
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Kind, where, strings.Join(e.Capabilities, ","), e.Summary)
			}
			return tw.Flush()
		},
	}
}

func listConnectors(pluginDir string) []connectorEntry {
	var out []connectorEntry
	for _, b := range builtin.Connectors() {
		for _, scheme := range b.Schemes {
			out = append(out, connectorEntry{
				Name: scheme, Kind: "connector", Builtin: true, Summary: b.Summary,
				Capabilities: capabilitiesOf(b.New()),
			})
		}
	}
	for _, t := range builtin.Transforms() {
		out = append(out, connectorEntry{Name: t.Name, Kind: "transform", Builtin: true, Summary: t.Summary})
	}
	for _, d := range pluginhost.Discover(pluginhost.Options{PluginDir: pluginDir}) {
		out = append(out, connectorEntry{Name: d.Name, Kind: string(d.Kind), Path: d.Path})
	}
	return out
}

// capabilitiesOf lists what a built-in implements, by type assertion.
func capabilitiesOf(c spi.Connector) []string {
	var caps []string
	if _, ok := c.(spi.Source); ok {
		caps = append(caps, "source")
	}
	if _, ok := c.(spi.Sink); ok {
		caps = append(caps, "sink")
	}
	if _, ok := c.(spi.UpdateStreamer); ok {
		caps = append(caps, "updates")
	}
	if _, ok := c.(spi.IDGetter); ok {
		caps = append(caps, "get-by-ids")
	}
	if _, ok := c.(spi.LSNStreamer); ok {
		caps = append(caps, "lsn")
	}
	return caps
}
