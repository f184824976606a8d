package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/coordinator/verify"
	"github.com/dsyncio/dsync/internal/progress"
	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/internal/spi"
)

// Exit codes of verify, besides ExitOK (identical) and ExitUsage.
const (
	// ExitDifferences: the datasets differ, or equality could not be proven
	// (a coverage problem).
	ExitDifferences = 1
	// ExitIncomplete: the verification could not complete (a plugin or the
	// state directory failed, a connector lacks GetByIds, or it was
	// stopped). Rerunning the same command resumes it.
	ExitIncomplete = 3
)

// defaultVerifyStateDir is next to the default state directory of sync,
// so that a verification can run while a sync holds that one.
func defaultVerifyStateDir() string { return defaultStateDir() + "-verify" }

func verifyCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"},
			Usage: "namespace of A to verify, repeatable, with the same mapping as sync: db.coll, db.coll:newdb.newcoll (compared with B's newdb.newcoll), db or db:newdb; default: all of both"},
		&cli.IntFlag{Name: "parallel", Value: verify.DefaultParallel, Usage: "partitions read in parallel"},
		&cli.StringFlag{Name: "state-dir", Value: defaultVerifyStateDir(), EnvVars: []string{"DSYNC_VERIFY_STATE_DIR"},
			Usage: "directory of the checkpoint store of verifications (a sync's own may be in use)"},
		&cli.BoolFlag{Name: "reset", Usage: "discard the progress of a stopped verification of A and B and start over"},
		&cli.StringFlag{Name: "report", Usage: "write every mismatch and a summary to this file as JSON lines"},
		&cli.IntFlag{Name: "max-report", Value: 20, Usage: "mismatching ids printed with their differing fields (all are in --report)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (bars on a terminal, JSON lines otherwise), tty, json or none; on stderr"},
		&cli.BoolFlag{Name: "count-only", Usage: "compare the namespaces' counts only (fast; counts may be estimates)"},
		&cli.BoolFlag{Name: "ignore-field-order", Usage: "documents whose fields are in another order (at any depth) are equal"},
		&cli.StringSliceFlag{Name: "exclude-field", Usage: "dotted field path left out of the comparison, repeatable (e.g. fields a transform adds)"},
		&cli.BoolFlag{Name: "numeric-equivalence", Usage: "compare numbers by value: int32 1, int64 1 and double 1.0 are equal"},
		&cli.StringFlag{Name: "sample", Usage: "verify this percentage of each side's partitions, chosen at random (e.g. 10)"},
		&cli.BoolFlag{Name: "estimated-counts", Usage: "the connectors' counts are estimates: a scan returning fewer documents than counted is a warning"},
		&cli.DurationFlag{Name: "recheck", Usage: "wait this long and fetch differing ids again, reporting only lasting differences (data changing during the verification)"},
		&cli.IntFlag{Name: "recheck-attempts", Value: verify.DefaultRecheckAttempts, Usage: "rechecks at most, while differences keep changing"},
		&cli.BoolFlag{Name: "repair", Usage: "rewrite on B the documents that differ or are missing, as A holds them, and delete B's extra documents; B must be a sink"},
		&cli.StringFlag{Name: "a-plugin", Usage: "run this executable as the connector of A (A is passed to it verbatim)"},
		&cli.StringFlag{Name: "b-plugin", Usage: "run this executable as the connector of B"},
	}
	flags = append(flags, logFlags()...)
	flags = append(flags, pluginFlags()...)
	return &cli.Command{
		Name:      "verify",
		Usage:     "compare two datasets document by document",
		ArgsUsage: "A B",
		Description: "A and B are connection strings of two sources, resolved like sync's. Every document\n" +
			"of A is looked up by _id in B and compared (types, values and field order), and B's\n" +
			"documents that A's scan did not return are looked up in A. Each side's scan must\n" +
			"return each of its documents once, as its own counts confirm (coverage). Progress is\n" +
			"checkpointed in --state-dir: the same command resumes a stopped verification; a\n" +
			"finished one is started over. Only copy partitions are planned: a verification never\n" +
			"creates change-stream resources.\n\n" +
			"The summary shows a table per namespace and the first --max-report mismatching ids\n" +
			"with the paths of the fields that differ; --report has every mismatch with the\n" +
			"differing values.\n\n" +
			"Exit codes: 0 identical, 1 differences (or coverage not proven), 2 usage error,\n" +
			"3 could not complete (rerun to resume). With --repair, the code reflects B after\n" +
			"the repair.\n\n" +
			"Example:\n" +
			"   dsync verify mongodb://old-host/app mongodb://new-host/app --report diffs.jsonl",
		Flags:  flags,
		Action: runVerify,
	}
}

// verifyArgs are the parsed arguments of verify.
type verifyArgs struct {
	a, b      string
	opts      verify.Options
	stateDir  string
	report    string
	maxReport int
	progress  progress.Mode
}

func parseVerifyArgs(c *cli.Context) (*verifyArgs, error) {
	if c.NArg() != 2 {
		return nil, usageErrorf("verify needs A and B, got %d argument(s)", c.NArg())
	}
	a := &verifyArgs{a: c.Args().Get(0), b: c.Args().Get(1), stateDir: c.String("state-dir"),
		report: c.String("report"), maxReport: c.Int("max-report")}
	if a.a == "" || a.b == "" {
		return nil, usageErrorf("verify needs A and B, not empty strings")
	}
	nsMap, err := coordinator.ParseNamespaceMap(c.StringSlice("namespace"))
	if err != nil {
		return nil, usageErrorf("--namespace: %v", err)
	}
	var sample float64
	if s := c.String("sample"); s != "" {
		sample, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
		if err != nil || !(sample > 0 && sample <= 100) {
			return nil, usageErrorf("--sample %q: want a percentage above 0 and at most 100, such as 10", s)
		}
	}
	switch {
	case c.Int("parallel") < 1:
		return nil, usageErrorf("--parallel must be at least 1")
	case c.Int("max-report") < 0:
		return nil, usageErrorf("--max-report must not be negative")
	case c.Duration("recheck") < 0:
		return nil, usageErrorf("--recheck must not be negative")
	case c.Int("recheck-attempts") < 1:
		return nil, usageErrorf("--recheck-attempts must be at least 1")
	case c.Bool("count-only") && (c.Bool("repair") || sample > 0 || c.Duration("recheck") > 0):
		return nil, usageErrorf("--count-only compares counts, not documents: it cannot be combined with --repair, --sample or --recheck")
	}
	switch m := progress.Mode(c.String("progress")); m {
	case progress.ModeAuto, progress.ModeTTY, progress.ModeJSON, progress.ModeNone:
		a.progress = m
	default:
		return nil, usageErrorf("--progress %q: want auto, tty, json or none", c.String("progress"))
	}
	a.opts = verify.Options{
		Namespaces:         nsMap,
		IgnoreFieldOrder:   c.Bool("ignore-field-order"),
		ExcludeFields:      c.StringSlice("exclude-field"),
		NumericEquivalence: c.Bool("numeric-equivalence"),
		SamplePercent:      sample,
		EstimatedCounts:    c.Bool("estimated-counts"),
		Recheck:            c.Duration("recheck"),
		RecheckAttempts:    c.Int("recheck-attempts"),
		Repair:             c.Bool("repair"),
		Reset:              c.Bool("reset"),
		CountOnly:          c.Bool("count-only"),
		Parallel:           c.Int("parallel"),
		ADisplay:           redact.URL(a.a),
		BDisplay:           redact.URL(a.b),
	}
	// Check the comparison options before starting any plugin.
	probe := a.opts
	probe.A, probe.B, probe.Store = placeholder{}, placeholder{}, &checkpoint.Store{}
	probe.EnsureDefaults()
	if err := probe.Validate(); err != nil {
		return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), verify.ErrInvalidOptions.Error()+": "))
	}
	return a, nil
}

// placeholder stands for a connector while the options are validated.
type placeholder struct{ spi.Source }

// runVerify runs `dsync verify`: exit 0 when identical, 1 on differences,
// 2 for a usage error and 3 for any other error or a stopped run.
func runVerify(c *cli.Context) error {
	res, err := verifyRun(c)
	if err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			return &exitError{code: ExitIncomplete, err: err}
		}
		if ee.code != ExitUsage {
			ee.code = ExitIncomplete
		}
		return err
	}
	switch {
	case res.Stopped:
		return &exitError{code: ExitIncomplete, err: errors.New("verify stopped before the end; run the same command again to resume")}
	case !res.Identical():
		what := "differences"
		if res.CountOnly {
			what = "namespaces with different counts"
		}
		return &exitError{code: ExitDifferences, err: fmt.Errorf("verify found %d %s", res.Differences(), what)}
	}
	return nil
}

// verifyRun runs the verification and writes its summary and report.
func verifyRun(c *cli.Context) (*verify.Result, error) {
	a, err := parseVerifyArgs(c)
	if err != nil {
		return nil, err
	}
	logger, logOut, closeLog, err := logSetup(c, c.App.ErrWriter)
	if err != nil {
		return nil, err
	}
	defer closeLog()
	a.opts.Logger = logger

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	defer handleVerifySignals(cancel, logger)()

	// The report goes to a temporary file renamed at the end, so that a
	// failed run leaves no partial report; creating it now checks the path.
	var report *os.File
	if a.report != "" {
		report, err = os.CreateTemp(filepath.Dir(a.report), "."+filepath.Base(a.report)+".tmp-*")
		if err != nil {
			return nil, usageErrorf("--report %s: %v", a.report, err)
		}
		defer func() {
			report.Close()
			os.Remove(report.Name())
		}()
	}

	host, err := newHost(c, logger)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	pa, err := startConnector(ctx, host, pluginhost.RoleSource, a.a, c.String("a-plugin"), nil)
	if err != nil {
		return nil, fmt.Errorf("A: %w", err)
	}
	pb, err := startConnector(ctx, host, pluginhost.RoleSource, a.b, c.String("b-plugin"), nil)
	if err != nil {
		return nil, fmt.Errorf("B: %w", err)
	}
	a.opts.A, a.opts.B = pa.Connector(), pb.Connector()

	if !a.opts.CountOnly {
		store, err := checkpoint.Open(a.stateDir, checkpoint.Options{Command: "dsync verify"})
		if err != nil {
			return nil, err
		}
		defer store.Close()
		a.opts.Store = store
	}
	v, err := verify.New(a.opts)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}

	renderer := verifyRenderer(c, a.progress, logOut)
	stop, rendered := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(rendered)
		progress.Run(renderer, time.Second, func() progress.Snapshot { return verifySnapshot(v.Stats()) }, stop)
	}()
	res, runErr := v.Run(ctx)
	close(stop)
	<-rendered
	if runErr != nil {
		return nil, verifyErr(runErr)
	}

	if err := verify.WriteSummary(c.App.Writer, res, a.maxReport); err != nil {
		return nil, err
	}
	if report != nil {
		if err := verify.WriteReport(report, res); err != nil {
			return nil, fmt.Errorf("--report %s: %w", a.report, err)
		}
		if err := report.Sync(); err != nil {
			return nil, fmt.Errorf("--report %s: %w", a.report, err)
		}
		if err := os.Rename(report.Name(), a.report); err != nil {
			return nil, fmt.Errorf("--report %s: %w", a.report, err)
		}
	}
	return res, nil
}

// verifyErr classifies an error of verify.Run: what the user can fix by
// changing the command is a usage error.
func verifyErr(err error) error {
	for _, s := range []error{verify.ErrNotSource, verify.ErrNotSink, verify.ErrUnsupported, verify.ErrInvalidOptions,
		coordinator.ErrInvalidNamespaceMap, coordinator.ErrNamespaceConflict} {
		if errors.Is(err, s) {
			return &exitError{code: ExitUsage, err: err}
		}
	}
	if spi.KindOf(err) == spi.KindInvalidArgument {
		return &exitError{code: ExitUsage, err: err}
	}
	return &exitError{code: ExitIncomplete, err: err}
}

// handleVerifySignals stops the verification on the first SIGINT/SIGTERM
// (it checkpoints and exits 3) and exits at once on the second; the
// checkpoint store is consistent at any instant.
func handleVerifySignals(cancel context.CancelFunc, logger *slog.Logger) func() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			logger.Info("stopping the verification (signal again to exit at once)", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			logger.Warn("second signal: exiting now; the next run resumes from the last checkpoint")
			os.Exit(ExitIncomplete)
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// verifyRenderer draws progress on stderr: stdout carries the summary.
func verifyRenderer(c *cli.Context, mode progress.Mode, logOut *logWriter) progress.Renderer {
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
			return restoreLog{tty, logOut, c.App.ErrWriter}
		}
		return tty
	case progress.ModeJSON:
		return progress.NewJSON(c.App.ErrWriter)
	}
	return progress.None{}
}

// restoreLog points the log back at stderr once the bars are gone.
type restoreLog struct {
	*progress.TTY
	lw  *logWriter
	out interface{ Write([]byte) (int, error) }
}

func (r restoreLog) Close(s progress.Snapshot) {
	r.TTY.Close(s)
	r.lw.set(r.out)
}

func verifySnapshot(s verify.StatsSnapshot) progress.Snapshot {
	out := progress.Snapshot{Time: time.Now(), FlowID: s.RunID, Phase: s.Phase,
		PartitionsDone: s.PartitionsDone, PartitionsTotal: s.PartitionsTotal}
	for _, ns := range s.Namespaces {
		name := ns.Namespace
		if ns.BNamespace != ns.Namespace {
			name += " -> " + ns.BNamespace
		}
		out.Namespaces = append(out.Namespaces, progress.Namespace{Name: name, Docs: ns.Docs, Bytes: ns.Bytes,
			EstimatedDocs: ns.EstimatedDocs, PartitionsDone: ns.PartitionsDone, PartitionsAll: ns.PartitionsTotal})
	}
	return out
}
