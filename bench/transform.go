package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// noopTransform renames a field the random documents do not have: a
// transform plugin in the pipeline that changes no document.
const noopTransform = "rename:nosuchfield=other"

// transformFigure is figure 3: random:// → null:// with and without one
// no-op transform plugin.
type transformFigure struct {
	Docs         int64
	Plain, Xform []syncResult
}

func medianDocsPerSec(runs []syncResult) float64 {
	return syncSize{Runs: runs}.DocsPerSec()
}

// Ratio is the median docs/s with the transform over the median without.
func (f transformFigure) Ratio() float64 {
	return medianDocsPerSec(f.Xform) / medianDocsPerSec(f.Plain)
}

// measureTransform alternates runs without and with the no-op transform.
func measureTransform(ctx context.Context, cfg config, logf func(string, ...any)) (transformFigure, error) {
	fig := transformFigure{Docs: cfg.xformDocs}
	for i := range cfg.xformRuns {
		for _, with := range []bool{false, true} {
			var extra []string
			runs := &fig.Plain
			if with {
				extra = []string{"--transform", noopTransform}
				runs = &fig.Xform
			}
			s, err := measureSyncArgs(ctx, cfg, cfg.xformDocs, "null://", extra, nil)
			if err != nil {
				return fig, err
			}
			logf("  run %d transform=%-5v %.2fs, %.0f docs/s", i+1, with, s.Wall.Seconds(), s.DocsPerSec())
			*runs = append(*runs, s)
		}
	}
	return fig, nil
}

func (f transformFigure) write(w io.Writer, dsync string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 3. Overhead of one no-op transform plugin (random:// → null://)\n\n")
	p("There is no built-in no-op transform: `--transform '%s'` renames a field that the random documents do not have, so every document passes through the rename plugin (a third plugin process, `%s plugin serve transform rename`) unchanged. The two commands alternate, each with a fresh state directory:\n\n", noopTransform, dsync)
	for _, runs := range [][]syncResult{f.Plain, f.Xform} {
		a := runs[0].Args
		p("    %s %s \"%s\"\n", dsync, strings.Join(quoteArgs(a[:len(a)-1]), " "), stateDirArg)
	}
	p("\n| Pipeline | Run | Wall time | Flow time | docs/s | MB/s | CPU | Coordinator peak RSS | Plugin peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range []struct {
		name string
		runs []syncResult
	}{{"no transform", f.Plain}, {"rename (no-op)", f.Xform}} {
		for i, s := range c.runs {
			p("| %s | %d | %s | %s | %.0f | %.1f | %s | %.1f MiB | %s |\n", c.name, i+1, s.Wall.Round(time.Millisecond), s.Flow.Round(time.Millisecond),
				s.DocsPerSec(), s.MBPerSec(), s.CPU.Round(10*time.Millisecond), mib(s.Coordinator.HWM), s.pluginPeaks())
		}
	}
	p("\n**With one no-op transform / without: %.2f** (median docs/s %.0f / %.0f, %d documents, same run).\n\n",
		f.Ratio(), medianDocsPerSec(f.Xform), medianDocsPerSec(f.Plain), f.Docs)
}
