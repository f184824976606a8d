package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/sdk"
)

// listRun is one read of a whole partition.
type listRun struct {
	Docs  int64
	Bytes int64
	Pages int
	Time  time.Duration
}

func (r listRun) DocsPerSec() float64 { return float64(r.Docs) / r.Time.Seconds() }
func (r listRun) MBPerSec() float64   { return float64(r.Bytes) / 1e6 / r.Time.Seconds() }

// listFigure is figure 1.
type listFigure struct {
	URL      string
	Docs     int64
	PageDocs int // documents per full page
	// InProc and GRPC hold every run, in the order they were made.
	InProc, GRPC []listRun
	// PluginStart is the time Host.Start took: launch, AutoMTLS handshake,
	// Configure and Info.
	PluginStart time.Duration
}

// median returns the run with the median throughput.
func median(runs []listRun) listRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b listRun) int { return cmp.Compare(a.Time, b.Time) })
	return s[len(s)/2]
}

// Ratio is the gRPC throughput over the in-process throughput, medians.
func (f listFigure) Ratio() float64 {
	return median(f.GRPC).DocsPerSec() / median(f.InProc).DocsPerSec()
}

// measureListData reads one partition of cfg.listDocs documents with one
// ListData loop, in process and through the plugin, alternating the two
// cfg.listRuns times.
func measureListData(ctx context.Context, cfg config, logf func(string, ...any)) (listFigure, error) {
	// No page option: the default page size is what is measured.
	fig := listFigure{
		URL:  fmt.Sprintf("random://?docs=%d&size=%d&partitions=1", cfg.listDocs, docSize),
		Docs: cfg.listDocs,
	}
	opts, err := random.ParseURL(fig.URL)
	if err != nil {
		return fig, err
	}
	if opts.DocSize() != docSize {
		return fig, fmt.Errorf("random documents are %d bytes, not %d", opts.DocSize(), docSize)
	}

	local := random.New()
	if err := local.Configure(ctx, sdk.Config{URL: fig.URL}); err != nil {
		return fig, err
	}

	host, err := pluginhost.New(pluginhost.Options{
		Self:     cfg.dsync,
		Builtins: pluginhost.Builtins{Connectors: []string{"random"}},
		Logger:   slog.New(slog.NewTextHandler(cfg.log, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// A failure must show, not be retried into the figures.
		MaxRestarts: -1,
	})
	if err != nil {
		return fig, err
	}
	defer host.Close()
	start := time.Now()
	p, err := host.Start(ctx, pluginhost.Spec{Role: pluginhost.RoleSource, Arg: fig.URL})
	if err != nil {
		return fig, err
	}
	fig.PluginStart = time.Since(start)
	if !p.Resolved().Builtin {
		return fig, fmt.Errorf("%s is not the built-in random connector", p)
	}
	remote := p.Connector()

	for i := range cfg.listRuns {
		for _, path := range []struct {
			name string
			src  sdk.Source
			runs *[]listRun
		}{{"in-process", local, &fig.InProc}, {"gRPC", remote, &fig.GRPC}} {
			r, err := readPartition(ctx, path.src)
			if err != nil {
				return fig, fmt.Errorf("%s: %w", path.name, err)
			}
			if r.Docs != cfg.listDocs || r.Bytes != cfg.listDocs*docSize {
				return fig, fmt.Errorf("%s: read %d docs (%d bytes), want %d docs of %d bytes", path.name, r.Docs, r.Bytes, cfg.listDocs, docSize)
			}
			logf("  run %d %-10s %8.0f docs/s %7.1f MB/s", i+1, path.name, r.DocsPerSec(), r.MBPerSec())
			*path.runs = append(*path.runs, r)
			fig.PageDocs = max(fig.PageDocs, int((r.Docs+int64(r.Pages)-1)/int64(r.Pages)))
		}
	}
	if err := p.Close(); err != nil {
		return fig, err
	}
	return fig, nil
}

// readPartition plans the source (one partition) and reads it with one
// ListData loop.
func readPartition(ctx context.Context, src sdk.Source) (listRun, error) {
	plan, err := src.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true})
	if err != nil {
		return listRun{}, err
	}
	if len(plan.Partitions) != 1 {
		return listRun{}, fmt.Errorf("plan has %d partitions, want 1", len(plan.Partitions))
	}
	part := plan.Partitions[0]
	runtime.GC() // start each run with the same heap
	var r listRun
	var cursor []byte
	start := time.Now()
	for {
		page, err := src.ListData(ctx, part, cursor)
		if err != nil {
			return r, err
		}
		r.Pages++
		r.Docs += int64(len(page.Docs))
		for _, d := range page.Docs {
			r.Bytes += int64(len(d))
		}
		if len(page.NextCursor) == 0 {
			break
		}
		if len(page.Docs) == 0 {
			return r, errors.New("empty page before the end of the partition")
		}
		cursor = page.NextCursor
	}
	r.Time = time.Since(start)
	return r, nil
}
