package cli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/connectors/postgres"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
)

// defaultStateDir is $DSYNC_STATE_DIR, else $XDG_STATE_HOME/dsync, else
// ~/.local/state/dsync, else ./.dsync-state.
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dsync")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "dsync")
	}
	return ".dsync-state"
}

func stateDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "state-dir",
		Usage:   "directory of the checkpoint store (one per machine is enough; flows are keyed inside)",
		Value:   defaultStateDir(),
		EnvVars: []string{"DSYNC_STATE_DIR"},
	}
}

func openStateReadOnly(c *cli.Context) (*checkpoint.Store, error) {
	dir := c.String("state-dir")
	st, err := checkpoint.Open(dir, checkpoint.Options{ReadOnly: true})
	if errors.Is(err, checkpoint.ErrNotExist) {
		return nil, fmt.Errorf("no checkpoint store in %s (no flow has run with this --state-dir)", dir)
	}
	return st, err
}

func stateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "inspect and clear checkpoints of flows",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list flows in the state directory",
				Flags: []cli.Flag{stateDirFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON lines"}},
				Action: func(c *cli.Context) error {
					if c.Args().Present() {
						return usageErrorf("state list takes no arguments")
					}
					st, err := openStateReadOnly(c)
					if err != nil {
						return failure(err)
					}
					defer st.Close()
					flows, err := st.Flows()
					if err != nil {
						return failure(err)
					}
					if c.Bool("json") {
						enc := json.NewEncoder(c.App.Writer)
						for _, f := range flows {
							if err := enc.Encode(flowJSON(f)); err != nil {
								return failure(err)
							}
						}
						return nil
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "FLOW\tMODE\tPHASE\tUPDATED\tSOURCE\tSINK")
					for _, f := range flows {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Mode, f.Phase,
							f.UpdatedAt.Local().Format(time.DateTime), f.Source, f.Sink)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "show the plan, cursors and counters of one flow",
				ArgsUsage: "FLOW",
				Flags:     []cli.Flag{stateDirFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("usage: dsync state show FLOW")
					}
					st, err := openStateReadOnly(c)
					if err != nil {
						return failure(err)
					}
					defer st.Close()
					return failure(showFlow(c, st, c.Args().First()))
				},
			},
			{
				Name:      "reset",
				Usage:     "delete every checkpoint of one flow (the next sync starts over)",
				ArgsUsage: "FLOW",
				Description: "A flow reading PostgreSQL holds a replication slot, which keeps WAL on the\n" +
					"source until dropped. If dsync created the slot and publication, reset says so and\n" +
					"how to drop them; with --drop-replication --source URL it drops them itself. Slots\n" +
					"and publications named with --pg-slot/--pg-publication are never dropped.",
				Flags: []cli.Flag{stateDirFlag(),
					&cli.BoolFlag{Name: "drop-replication", Usage: "also drop the replication slot and publication dsync created for the flow (needs --source)"},
					&cli.StringFlag{Name: "source", Usage: "connection string of the flow's PostgreSQL source, for --drop-replication"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("usage: dsync state reset FLOW")
					}
					// Probe read-only first: a mistyped --state-dir must not
					// get an empty store created in it.
					probe, err := openStateReadOnly(c)
					if err != nil {
						return failure(err)
					}
					probe.Close()
					st, err := checkpoint.Open(c.String("state-dir"), checkpoint.Options{})
					if err != nil {
						return failure(err)
					}
					defer st.Close()
					id := c.Args().First()
					if c.Bool("drop-replication") && c.String("source") == "" {
						return usageErrorf("--drop-replication needs --source with the flow's PostgreSQL connection string")
					}
					owned, err := ownedReplication(st, id)
					if err != nil && !errors.Is(err, checkpoint.ErrFlowNotFound) {
						return failure(err)
					}
					if len(owned) > 0 && c.Bool("drop-replication") {
						for _, r := range owned {
							if err := postgres.DropReplication(c.Context, c.String("source"), r.slot, r.publication); err != nil {
								return failure(fmt.Errorf("drop %s: %w (the flow is not reset)", r, err))
							}
							fmt.Fprintf(c.App.Writer, "dropped %s\n", r)
						}
					}
					if err := st.ResetFlow(id); err != nil {
						if errors.Is(err, checkpoint.ErrFlowNotFound) {
							return failure(fmt.Errorf("no flow %q in %s (see 'dsync state list')", id, st.Dir()))
						}
						return failure(err)
					}
					fmt.Fprintf(c.App.Writer, "flow %s reset: its checkpoints are deleted\n", id)
					if len(owned) > 0 && !c.Bool("drop-replication") {
						for _, r := range owned {
							fmt.Fprintf(c.App.Writer, "the flow's source still has the %s that dsync created; a slot retains WAL until dropped: run %s "+
								"(with --drop-replication --source URL, state reset drops them itself)\n", r, r.sql())
						}
					}
					return nil
				},
			},
		},
	}
}

type flowSummary struct {
	ID        string          `json:"id"`
	Mode      string          `json:"mode"`
	Phase     string          `json:"phase"`
	Source    string          `json:"source"`
	Sink      string          `json:"sink"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	CopyDone  bool            `json:"copy_done"`
	Options   json.RawMessage `json:"options,omitempty"`
}

func flowJSON(f checkpoint.FlowMeta) flowSummary {
	s := flowSummary{ID: f.ID, Mode: f.Mode, Phase: f.Phase, Source: f.Source, Sink: f.Sink,
		CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt, CopyDone: f.CopyDone}
	if json.Valid(f.Options) {
		s.Options = f.Options
	}
	return s
}

func showFlow(c *cli.Context, st *checkpoint.Store, id string) error {
	meta, err := st.Flow(id)
	if errors.Is(err, checkpoint.ErrFlowNotFound) {
		return fmt.Errorf("no flow %q in %s (see 'dsync state list')", id, st.Dir())
	}
	if err != nil {
		return err
	}
	parts, err := st.Partitions(id)
	if err != nil {
		return err
	}
	ups, err := st.Updates(id)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		type upd struct {
			Index      int       `json:"index"`
			Namespaces []string  `json:"namespaces"`
			Cursor     string    `json:"cursor"`
			Events     uint64    `json:"events"`
			SourceTime time.Time `json:"source_time"`
		}
		out := struct {
			Flow       flowSummary                 `json:"flow"`
			Partitions []checkpoint.PartitionState `json:"partitions"`
			Updates    []upd                       `json:"updates"`
		}{Flow: flowJSON(meta), Partitions: parts}
		for _, u := range ups {
			out.Updates = append(out.Updates, upd{u.Index, u.Namespaces, hex.EncodeToString(u.Cursor), u.Events, u.SourceTime})
		}
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "flow      %s\nmode      %s\nphase     %s\nsource    %s\nsink      %s\ncreated   %s\nupdated   %s\n",
		meta.ID, meta.Mode, meta.Phase, meta.Source, meta.Sink,
		meta.CreatedAt.Local().Format(time.DateTime), meta.UpdatedAt.Local().Format(time.DateTime))
	type nsAgg struct {
		sink        string
		done, total int
		docs, bytes uint64
		est         uint64
	}
	var order []string
	agg := map[string]*nsAgg{}
	for _, p := range parts {
		a, ok := agg[p.Namespace]
		if !ok {
			a = &nsAgg{sink: p.SinkNamespace}
			agg[p.Namespace] = a
			order = append(order, p.Namespace)
		}
		a.total++
		if p.Done {
			a.done++
		}
		a.docs += p.Docs
		a.bytes += p.Bytes
		a.est += p.EstimatedCount
	}
	if len(parts) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tSINK NAMESPACE\tPARTITIONS DONE\tDOCS COPIED\tESTIMATED\tBYTES")
		for _, ns := range order {
			a := agg[ns]
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\n", ns, a.sink, a.done, a.total, a.docs, a.est, a.bytes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(ups) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tNAMESPACES\tEVENTS\tSOURCE TIME\tCURSOR")
		for _, u := range ups {
			src := "-"
			if !u.SourceTime.IsZero() {
				src = u.SourceTime.Local().Format(time.DateTime)
			}
			nss := "all"
			if len(u.Namespaces) > 0 {
				nss = fmt.Sprint(u.Namespaces)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", u.Index, nss, u.Events, src, hex.EncodeToString(u.Cursor))
		}
		return tw.Flush()
	}
	return nil
}

type replicationNames struct{ slot, publication string }

// String names what is there, e.g. `replication slot "x" and publication
// "y"`.
func (r replicationNames) String() string {
	var parts []string
	if r.slot != "" {
		parts = append(parts, fmt.Sprintf("replication slot %q", r.slot))
	}
	if r.publication != "" {
		parts = append(parts, fmt.Sprintf("publication %q", r.publication))
	}
	return strings.Join(parts, " and ")
}

// sql is what drops them by hand.
func (r replicationNames) sql() string {
	var stmts []string
	if r.slot != "" {
		stmts = append(stmts, fmt.Sprintf("SELECT pg_drop_replication_slot('%s');", r.slot))
	}
	if r.publication != "" {
		stmts = append(stmts, fmt.Sprintf("DROP PUBLICATION IF EXISTS %q;", r.publication))
	}
	return strings.Join(stmts, " ")
}

// ownedReplication lists the replication slots and publications that dsync
// created for a flow reading PostgreSQL (never ones the user named).
func ownedReplication(st *checkpoint.Store, id string) ([]replicationNames, error) {
	meta, err := st.Flow(id)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(strings.SplitN(meta.Source, ":", 2)[0])
	if scheme != "postgres" && scheme != "postgresql" {
		return nil, nil
	}
	ups, err := st.Updates(id)
	if err != nil {
		return nil, err
	}
	var out []replicationNames
	for _, u := range ups {
		r, err := postgres.ReplicationOf(u.Cursor)
		if err != nil {
			continue
		}
		var n replicationNames
		if r.SlotOwned {
			n.slot = r.Slot
		}
		if r.PublicationOwned {
			n.publication = r.Publication
		}
		if n != (replicationNames{}) {
			out = append(out, n)
		}
	}
	return out, nil
}
