package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dsyncio/dsync/internal/testserver/pg"
)

// config is what one run of the program measures.
type config struct {
	out   string
	dsync string
	quick bool
	// log receives progress and the plugin host's warnings.
	log io.Writer

	// listDocs is the size of the partition read by figure 1, listRuns the
	// number of alternating runs of each path (the median is reported).
	listDocs int64
	listRuns int
	// syncDocs are the dataset sizes of figure 2, smallest first; each is
	// synced syncRuns times, the sizes taking turns.
	syncDocs []int64
	syncRuns int

	// xformDocs is the dataset of figure 3, xformRuns the runs of each
	// pipeline.
	xformDocs int64
	xformRuns int
	// verifyDocs are the dataset sizes of figure 4; verifyScaled says
	// they are smaller than issue 6's 200k and 2M.
	verifyDocs   []int64
	verifyScaled bool
	// testsink is the testsink plugin executable (built when empty).
	testsink string
	// mongoDocs and mongoRuns size figure 5.
	mongoDocs int64
	mongoRuns int
	// pgRows and pgRuns size the copy of figure 6; cdcDuration is the
	// paced writer's duration, cdcBurst the rows of the burst.
	pgRows      int64
	pgRuns      int
	cdcDuration time.Duration
	cdcBurst    int64
	// noDB skips figures 5 and 6 (servers).
	noDB bool
}

const (
	// docSize is the document size of every figure.
	docSize = 1024
	// syncPartitions is the partitions option of the end-to-end source.
	syncPartitions = 8
	// flatLimit is how much the coordinator's peak RSS may grow as the
	// dataset grows tenfold.
	flatLimit = 0.20
	// sampleEvery is the RSS sampling interval.
	sampleEvery = 50 * time.Millisecond
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	inv := invocation{prog: progName(), viaMake: os.Getenv("MAKELEVEL") != ""}
	err := run(ctx, inv, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// invocation is how the program was started, for the report.
type invocation struct {
	prog    string // the command before the arguments
	viaMake bool   // run by make (bench target)
}

// progName names the program as it was started: `go run ./bench` leaves its
// binary in a go-build directory.
func progName() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./bench"
	}
	return os.Args[0]
}

// run parses args, measures and writes the report; progress goes to logw.
func run(ctx context.Context, inv invocation, args []string, stdout, logw io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(logw)
	cfg := config{log: logw}
	fs.StringVar(&cfg.out, "out", "-", `report file ("-": standard output)`)
	fs.StringVar(&cfg.dsync, "dsync", "bin/dsync", "dsync executable (serves the plugins, runs the syncs)")
	fs.BoolVar(&cfg.quick, "quick", false, "small datasets, seconds instead of minutes (smoke test; figures not meaningful)")
	fs.StringVar(&cfg.testsink, "testsink", "", "dsync-connector-testsink executable for figure 4 (default: built from ./tests/testsink/cmd/dsync-connector-testsink)")
	fs.BoolVar(&cfg.noDB, "no-db", false, "skip the MongoDB (FerretDB) and PostgreSQL figures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	exe, err := filepath.Abs(cfg.dsync)
	if err != nil {
		return err
	}
	if st, err := os.Stat(exe); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("-dsync %s is not an executable: run `make build` first", cfg.dsync)
	}
	shown := cfg.dsync
	cfg.dsync = exe
	if cfg.quick {
		cfg.listDocs, cfg.listRuns = 20_000, 1
		cfg.syncDocs, cfg.syncRuns = []int64{20_000, 200_000}, 1
		cfg.xformDocs, cfg.xformRuns = 20_000, 1
		cfg.verifyDocs = []int64{2_000, 20_000}
		cfg.mongoDocs, cfg.mongoRuns = 2_000, 1
		cfg.pgRows, cfg.pgRuns = 2_000, 1
		cfg.cdcDuration, cfg.cdcBurst = 2*time.Second, 2_000
	} else {
		cfg.listDocs, cfg.listRuns = 500_000, 3
		cfg.syncDocs, cfg.syncRuns = []int64{200_000, 2_000_000}, 3
		cfg.xformDocs, cfg.xformRuns = 500_000, 3
		cfg.verifyDocs, cfg.verifyScaled = []int64{100_000, 1_000_000}, true
		cfg.mongoDocs, cfg.mongoRuns = 30_000, 2
		cfg.pgRows, cfg.pgRuns = 100_000, 2
		cfg.cdcDuration, cfg.cdcBurst = 15*time.Second, 20_000
	}

	r := report{
		Command:   strings.Join(append([]string{inv.prog}, quoteArgs(args)...), " "),
		ViaMake:   inv.viaMake,
		Quick:     cfg.quick,
		Date:      time.Now().UTC(),
		Machine:   readMachine(cfg.dsync),
		DSync:     shown,
		LoadStart: loadAvg(),
	}
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "bench: "+format+"\n", a...) }

	logf("figure 1: ListData of %d docs, %d run(s) per path", cfg.listDocs, cfg.listRuns)
	r.List, err = measureListData(ctx, cfg, logf)
	if err != nil {
		return fmt.Errorf("figure 1: %w", err)
	}
	r.Syncs = make([]syncSize, len(cfg.syncDocs))
	for i := range cfg.syncRuns {
		for k, n := range cfg.syncDocs {
			logf("figure 2: dsync sync of %d docs, run %d", n, i+1)
			s, err := measureSync(ctx, cfg, n)
			if err != nil {
				return fmt.Errorf("figure 2, %d docs: %w", n, err)
			}
			logf("  %.2fs, %.0f docs/s, coordinator peak RSS %.1f MiB", s.Wall.Seconds(), s.DocsPerSec(), mib(s.Coordinator.HWM))
			r.Syncs[k].Docs = n
			r.Syncs[k].Runs = append(r.Syncs[k].Runs, s)
		}
	}

	logf("figure 3: no-op transform, %d docs, %d run(s) each", cfg.xformDocs, cfg.xformRuns)
	if r.Transform, err = measureTransform(ctx, cfg, logf); err != nil {
		return fmt.Errorf("figure 3: %w", err)
	}

	pluginDir, err := os.MkdirTemp("", "dsync-bench-plugins-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pluginDir)
	if cfg.testsink == "" {
		logf("figure 4: building the testsink plugin")
		if _, err := buildTestsink(ctx, pluginDir); err != nil {
			return fmt.Errorf("figure 4: %w", err)
		}
	} else {
		exe, err := filepath.Abs(cfg.testsink)
		if err != nil {
			return err
		}
		if err := os.Symlink(exe, filepath.Join(pluginDir, "dsync-connector-testsink")); err != nil {
			return err
		}
	}
	r.VerifyScaled = cfg.verifyScaled
	for _, n := range cfg.verifyDocs {
		logf("figure 4: copy and verify of %d docs", n)
		v, err := measureVerify(ctx, cfg, pluginDir, n)
		if err != nil {
			return fmt.Errorf("figure 4, %d docs: %w", n, err)
		}
		logf("  copy %.0f docs/s, verify %.0f docs/s, verify peak RSS %.1f MiB (all)", v.Copy.DocsPerSec(), v.DocsPerSec(), mib(v.VerifyHWM()))
		r.Verify = append(r.Verify, v)
	}

	if cfg.noDB {
		r.MongoSkip, r.PGSkip = "-no-db", "-no-db"
	} else {
		logf("figure 5: MongoDB → MongoDB (FerretDB), %d docs", cfg.mongoDocs)
		m, err := measureMongo(ctx, cfg, logf)
		if err != nil {
			return fmt.Errorf("figure 5: %w", err)
		}
		r.Mongo = &m
		logf("figure 6: PostgreSQL, %d rows, CDC for %v", cfg.pgRows, cfg.cdcDuration)
		pgf, err := measurePostgres(ctx, cfg, logf)
		switch {
		case errors.Is(err, pg.ErrNotInstalled):
			r.PGSkip = err.Error()
		case err != nil:
			return fmt.Errorf("figure 6: %w", err)
		default:
			r.PG = &pgf
		}
	}

	r.LoadEnd = loadAvg()
	var buf bytes.Buffer
	r.write(&buf)
	if cfg.out == "" || cfg.out == "-" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(cfg.out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	logf("wrote %s", cfg.out)
	if len(r.Verify) > 1 && verifyGrowth(r.Verify) > flatLimit {
		logf("verify peak RSS grew %+.1f%%, more than %.0f%%: see the report", verifyGrowth(r.Verify)*100, flatLimit*100)
	}
	if !r.Flat() {
		logf("coordinator peak RSS grew %+.1f%%, more than %.0f%%: see the report", r.Growth()*100, flatLimit*100)
	}
	return nil
}

// quoteArgs quotes the arguments a shell would need quoted.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$&?*;|<>()[]{}!#~`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}
