package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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
	} else {
		cfg.listDocs, cfg.listRuns = 500_000, 3
		cfg.syncDocs, cfg.syncRuns = []int64{200_000, 2_000_000}, 3
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
