package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/internal/progress"
	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/version"
)

func syncFlags() []cli.Flag {
	env := func(name string) []string {
		return []string{"DSYNC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
	}
	str := func(name, value, usage string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "read options from this YAML file (keys are flag names; source and sink set the positional arguments)", EnvVars: env("config")},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "source", Hidden: true, EnvVars: env("source")}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "sink", Hidden: true, EnvVars: env("sink")}),
		str("mode", "full", "full (copy, then stream changes until stopped), initial (copy and exit) or cdc (stream changes only)"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"}, EnvVars: env("namespace"),
			Usage: "namespace to sync, repeatable: db.coll, db.coll:newdb.newcoll (rename), db (whole database) or db:newdb (remap a database); default: all"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "parallel", Value: coordinator.DefaultParallel, Usage: "partitions read in parallel", EnvVars: env("parallel")}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "writers", Value: coordinator.DefaultWriters, Usage: "concurrent sink writes (also the number of change-stream lanes)", EnvVars: env("writers")}),
		str("batch-bytes", "4MiB", "largest payload of one sink write"),
		str("max-inflight", "64MiB", "bytes read but not yet written, at most (bounds memory)"),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "state-dir", Value: defaultStateDir(), EnvVars: env("state-dir"),
			Usage: "directory of the checkpoint store"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "reset", Usage: "discard the checkpoints of this source and sink and start over", EnvVars: env("reset")}),
		str("pg-slot", "", "PostgreSQL source: use this existing logical replication slot instead of creating one"),
		str("pg-publication", "", "PostgreSQL source: use this existing publication instead of creating one"),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-indexes", Usage: "do not copy secondary indexes after the copy", EnvVars: env("no-indexes")}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "until-lag", EnvVars: env("until-lag"),
			Usage: "with --mode full or cdc: exit 0 once the change-stream lag has stayed below this for a few seconds (cut-over)"}),
		str("progress", "auto", "auto (bars on a terminal, JSON lines otherwise), tty, json or none"),
		str("metrics", "", "serve Prometheus metrics on this address, e.g. :9090"),
		&specsFlag{StringSliceFlag: &cli.StringSliceFlag{Name: "transform", Aliases: []string{"t"}, EnvVars: env("transform"),
			Usage: "transform applied between source and sink, repeatable, in order: NAME or NAME:SPEC"}},
		str("source-plugin", "", "run this executable as the source connector (the source URL is passed to it verbatim)"),
		str("sink-plugin", "", "run this executable as the sink connector"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "transform-plugin", EnvVars: env("transform-plugin"),
			Usage: "run this executable for the transform at the same position in --transform (repeatable)"}),
		str("log-level", "info", "debug, info, warn or error"),
		str("log-file", "", "append the log to this file instead of stderr"),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "plugin-dir", EnvVars: env("plugin-dir"),
			Usage: "directory searched for dsync-connector-<scheme> and dsync-transform-<name> before PATH"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "plugin-insecure", EnvVars: env("plugin-insecure"),
			Usage: "allow the named plugin to run without mutual TLS (repeatable; a warning is logged)"}),
	}
	return flags
}

func syncCommand() *cli.Command {
	flags := syncFlags()
	return &cli.Command{
		Name:      "sync",
		Usage:     "copy every namespace from SOURCE to SINK, then stream changes",
		ArgsUsage: "SOURCE SINK",
		Description: "SOURCE and SINK are connection strings; the URL scheme picks the connector\n" +
			"(see 'dsync connectors'). The same command resumes where it stopped: the flow is\n" +
			"identified by the source, sink, namespaces, transforms and mode, and checkpointed\n" +
			"in --state-dir. Ctrl-C (SIGINT) or SIGTERM stops reading, lets in-flight writes\n" +
			"finish, checkpoints and exits 0; a second signal exits at once.\n\n" +
			"Every flag can be set in --config FILE (YAML, same names) or as DSYNC_<FLAG>.\n\n" +
			"Exit codes: 0 done (or stopped, or cut over), 1 failure, 2 usage error.\n\n" +
			"Example:\n" +
			"   dsync sync 'random://?namespaces=3&docs=100000' null:// --mode initial",
		Flags: flags,
		Before: func(c *cli.Context) error {
			path := c.String("config")
			if path == "" {
				return nil
			}
			src, err := loadConfig(path, flags)
			if err != nil {
				return err
			}
			if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
				return usageErrorf("--config %s: %v", path, oneLine(err.Error()))
			}
			return nil
		},
		Action: runSync,
	}
}

// loadConfig reads a --config file: a YAML mapping whose keys are names of
// flags that can be set in a file. Unknown keys are an error, so that a typo
// does not silently fall back to a default (such as --mode full, which never
// ends); a single value is accepted for a repeatable flag. Values are
// applied by altsrc only to flags set neither on the command line nor in the
// environment: flag > DSYNC_* > file > default.
func loadConfig(path string, flags []cli.Flag) (altsrc.InputSourceContext, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--config: %v", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, usageErrorf("--config %s: %v (want a YAML mapping of flag names to values)", path, oneLine(err.Error()))
	}
	known := map[string]cli.Flag{}
	var names []string
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); !ok {
			continue
		}
		names = append(names, f.Names()[0])
		for _, n := range f.Names() {
			known[n] = f
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := make(map[any]any, len(m))
	for _, k := range keys {
		f, ok := known[k]
		if !ok {
			return nil, usageErrorf("--config %s: unknown key %q (keys are %s)", path, k, strings.Join(names, ", "))
		}
		v := m[k]
		if s, ok := v.(string); ok {
			switch f.(type) {
			case *altsrc.StringSliceFlag, *specsFlag:
				v = []any{s}
			}
		}
		values[k] = v
	}
	return altsrc.NewMapInputSource(path, values), nil
}

type syncArgs struct {
	source, sink string
	cfg          coordinator.Config
	progress     progress.Mode
	metrics      string
	stateDir     string
	transforms   []string
	tplugins     []string
}

func parseSyncArgs(c *cli.Context) (*syncArgs, error) {
	a := &syncArgs{source: c.String("source"), sink: c.String("sink")}
	switch c.NArg() {
	case 0:
	case 2:
		a.source, a.sink = c.Args().Get(0), c.Args().Get(1)
	default:
		return nil, usageErrorf("sync needs SOURCE and SINK, got %d argument(s)", c.NArg())
	}
	if a.source == "" || a.sink == "" {
		return nil, usageErrorf("sync needs SOURCE and SINK (as arguments or source/sink in --config)")
	}
	mode, err := coordinator.ParseMode(c.String("mode"))
	if err != nil {
		return nil, usageErrorf("--mode: %v", err)
	}
	nsMap, err := coordinator.ParseNamespaceMap(c.StringSlice("namespace"))
	if err != nil {
		return nil, usageErrorf("--namespace: %v", err)
	}
	batch, err := parseSize("batch-bytes", c.String("batch-bytes"))
	if err != nil {
		return nil, err
	}
	inflight, err := parseSize("max-inflight", c.String("max-inflight"))
	if err != nil {
		return nil, err
	}
	if batch > inflight {
		return nil, usageErrorf("--batch-bytes (%d) must not exceed --max-inflight (%d)", batch, inflight)
	}
	if c.Int("parallel") < 1 || c.Int("writers") < 1 {
		return nil, usageErrorf("--parallel and --writers must be at least 1")
	}
	if c.Duration("until-lag") < 0 || (c.Duration("until-lag") > 0 && mode == coordinator.ModeInitial) {
		return nil, usageErrorf("--until-lag needs a positive duration and --mode full or cdc")
	}
	switch m := progress.Mode(c.String("progress")); m {
	case progress.ModeAuto, progress.ModeTTY, progress.ModeJSON, progress.ModeNone:
		a.progress = m
	default:
		return nil, usageErrorf("--progress %q: want auto, tty, json or none", c.String("progress"))
	}
	a.transforms = specsOf(c, "transform")
	a.tplugins = c.StringSlice("transform-plugin")
	if len(a.tplugins) > len(a.transforms) {
		return nil, usageErrorf("--transform-plugin given %d times but --transform only %d times", len(a.tplugins), len(a.transforms))
	}
	a.metrics = c.String("metrics")
	a.stateDir = c.String("state-dir")
	a.cfg = coordinator.Config{
		Namespaces:     nsMap,
		Mode:           mode,
		Parallel:       c.Int("parallel"),
		Writers:        c.Int("writers"),
		BatchBytes:     int(batch),
		MaxInflight:    inflight,
		Reset:          c.Bool("reset"),
		NoIndexes:      c.Bool("no-indexes"),
		UntilLag:       c.Duration("until-lag"),
		SourceDisplay:  redact.URL(a.source),
		SinkDisplay:    redact.URL(a.sink),
		DsyncVersion:   version.String(),
		TransformSpecs: a.transforms,
	}
	return a, nil
}

func runSync(c *cli.Context) error {
	a, err := parseSyncArgs(c)
	if err != nil {
		return err
	}
	logger, logOut, closeLog, err := logSetup(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer closeLog()
	a.cfg.Logger = logger

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	stopSignals := handleSignals(cancel, logger, c.App.ErrWriter)
	defer stopSignals()

	// The state directory is locked before any plugin starts: a second run
	// of a flow that is running is refused with the lock's message, without
	// launching or configuring connectors next to the running ones.
	store, err := checkpoint.Open(a.stateDir, checkpoint.Options{})
	if err != nil {
		return failure(err)
	}
	defer store.Close()
	a.cfg.Store = store

	host, err := newHost(c, logger)
	if err != nil {
		return failure(err)
	}
	defer host.Close()

	srcSettings, err := sourceSettings(c, a)
	if err != nil {
		return err
	}
	src, err := startConnector(ctx, host, pluginhost.RoleSource, a.source, c.String("source-plugin"), srcSettings)
	if err != nil {
		return err
	}
	snk, err := startConnector(ctx, host, pluginhost.RoleSink, a.sink, c.String("sink-plugin"), nil)
	if err != nil {
		return err
	}
	a.cfg.Source, a.cfg.Sink = src.Connector(), snk.Connector()
	for i, spec := range a.transforms {
		explicit := ""
		if i < len(a.tplugins) {
			explicit = a.tplugins[i]
		}
		tp, err := host.Start(ctx, pluginhost.Spec{Role: pluginhost.RoleTransform, Arg: spec, ExplicitPath: explicit})
		if err != nil {
			return startErr(err)
		}
		a.cfg.Transforms = append(a.cfg.Transforms, tp.Transform())
	}

	flow, err := coordinator.New(a.cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	renderer, err := newRenderer(c, a, logger, logOut)
	if err != nil {
		return err
	}
	a.cfg.OnStart = nil
	stop := make(chan struct{})
	rendered := make(chan struct{})
	go func() {
		defer close(rendered)
		progress.Run(renderer, time.Second, func() progress.Snapshot { return toSnapshot(flow.Stats().Snapshot()) }, stop)
	}()
	res, runErr := flow.Run(ctx)
	close(stop)
	<-rendered
	printSummary(c.App.Writer, a, res, runErr)
	if runErr != nil {
		if errors.Is(runErr, coordinator.ErrInvalidNamespaceMap) || spi.KindOf(runErr) == spi.KindInvalidArgument {
			return &exitError{code: ExitUsage, err: runErr}
		}
		return failure(runErr)
	}
	return nil
}

// handleSignals cancels the run on the first SIGINT/SIGTERM and exits the
// process at once on the second, with exit code 1 and the one-line error on
// stderr that every failure prints (the log may be filtered or go to a
// file); the checkpoint store is consistent at any instant, so the abrupt
// exit loses nothing but in-flight work.
func handleSignals(cancel context.CancelFunc, logger *slog.Logger, stderr io.Writer) func() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			logger.Info("stopping: finishing in-flight writes and checkpointing (signal again to exit at once)", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			logger.Warn("second signal: exiting now; the next run resumes from the last checkpoint")
			fmt.Fprintln(stderr, "dsync: stopped at once by a second signal, without draining in-flight writes; rerun the same command to resume from the last checkpoint")
			os.Exit(ExitFailure)
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

func newRenderer(c *cli.Context, a *syncArgs, logger *slog.Logger, logOut *logWriter) (progress.Renderer, error) {
	var rs progress.Multi
	mode := a.progress
	if mode == progress.ModeAuto {
		mode = progress.ModeJSON
		if f, ok := c.App.ErrWriter.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			mode = progress.ModeTTY
		}
	}
	switch mode {
	case progress.ModeTTY:
		tty := progress.NewTTY(c.App.ErrWriter)
		if logOut != nil {
			logOut.set(tty)
		}
		rs = append(rs, tty)
	case progress.ModeJSON:
		rs = append(rs, progress.NewJSON(c.App.Writer))
	}
	if a.metrics != "" {
		m := progress.NewMetrics()
		if err := m.Serve(a.metrics); err != nil {
			return nil, usageErrorf("--metrics %s: %v", a.metrics, err)
		}
		logger.Info("serving metrics", "addr", m.Addr(), "path", "/metrics")
		rs = append(rs, m)
	}
	a.progress = mode
	return rs, nil
}

func toSnapshot(s coordinator.StatsSnapshot) progress.Snapshot {
	out := progress.Snapshot{
		Time: time.Now(), FlowID: s.FlowID, Phase: s.Phase,
		PartitionsDone: int(s.PartitionsDone), PartitionsTotal: int(s.PartitionsTotal),
		Events: uint64(max(s.Events, 0)), Lag: s.Lag,
	}
	for _, ns := range s.Namespaces {
		out.Namespaces = append(out.Namespaces, progress.Namespace{
			Name: ns.Namespace, Docs: uint64(max(ns.Docs, 0)), Bytes: uint64(max(ns.Bytes, 0)),
			EstimatedDocs: uint64(max(ns.EstimatedDocs, 0)),
		})
	}
	return out
}

func printSummary(w io.Writer, a *syncArgs, res coordinator.Result, runErr error) {
	if res.FlowID == "" {
		return
	}
	if a.progress == progress.ModeJSON {
		// The final JSON line is the summary; cursors follow for cut-overs.
		if res.Cutover {
			for _, cur := range res.Cursors {
				fmt.Fprintf(w, "{\"cutover_cursor\":%q,\"stream\":%d,\"events\":%d}\n", cur.Cursor, cur.Index, cur.Events)
			}
		}
		return
	}
	state := "done"
	switch {
	case runErr != nil:
		state = "failed"
	case res.Cutover:
		state = "cut over"
	case res.Stopped:
		state = "stopped (rerun the same command to resume)"
	}
	fmt.Fprintf(w, "flow %s %s in %s: %d docs (%s) copied, %d change events applied",
		res.FlowID, state, res.Duration.Round(time.Millisecond), res.DocsCopied, humanBytes(res.BytesCopied), res.EventsApplied)
	if res.DocsDropped > 0 {
		fmt.Fprintf(w, ", %d docs dropped by transforms", res.DocsDropped)
	}
	fmt.Fprintln(w)
	if res.Cutover {
		for _, cur := range res.Cursors {
			fmt.Fprintf(w, "final cursor of stream %d: %s\n", cur.Index, cur.Cursor)
		}
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// sourceSettings are the connector settings of the source. A PostgreSQL
// source gets the names of an existing slot and publication when given, and
// otherwise a flow key from which it derives names of its own, so that two
// flows reading one database never share a slot. The key hashes what
// identifies the flow without the source's credentials (the URLs are
// redacted), so rotating a password keeps the slot.
func sourceSettings(c *cli.Context, a *syncArgs) (map[string]string, error) {
	slot, pub := c.String("pg-slot"), c.String("pg-publication")
	scheme := strings.ToLower(strings.SplitN(a.source, ":", 2)[0])
	if scheme != "postgres" && scheme != "postgresql" {
		if slot != "" || pub != "" {
			return nil, usageErrorf("--pg-slot and --pg-publication only apply to a postgres:// source")
		}
		return nil, nil
	}
	h := sha256.New()
	for _, part := range append([]string{redact.URL(a.source), redact.URL(a.sink), string(a.cfg.Mode)}, a.cfg.Namespaces.Entries()...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	settings := map[string]string{"flow": hex.EncodeToString(h.Sum(nil))[:12]}
	if slot != "" {
		settings["slot"] = slot
	}
	if pub != "" {
		settings["publication"] = pub
	}
	return settings, nil
}
