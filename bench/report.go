package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// report is everything bench/RESULTS.md shows.
type report struct {
	Command string
	ViaMake bool
	Quick   bool
	Date    time.Time
	Machine machine
	DSync   string // the -dsync flag
	// LoadStart and LoadEnd are the 1-minute load averages: other work on
	// the machine skews the figures.
	LoadStart, LoadEnd string
	List               listFigure
	Syncs              []syncSize // smallest dataset first
	Transform          transformFigure
	Verify             []verifyRun // smallest dataset first
	VerifyScaled       bool
	// Mongo and PG are nil when skipped, for the reason in MongoSkip and
	// PGSkip.
	Mongo     *mongoFigure
	MongoSkip string
	PG        *pgFigure
	PGSkip    string
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// Growth is how much the coordinator's peak RSS (the largest of the runs)
// grew from the smallest to the largest dataset, as a fraction. A run's peak
// is the highest heap of its GC cycles, and a short run has fewer cycles:
// the largest over the runs estimates the peak better than the median.
func (r report) Growth() float64 {
	return growth(r.Syncs[0].CoordinatorPeak(), r.Syncs[len(r.Syncs)-1].CoordinatorPeak())
}

func growth(from, to uint64) float64 { return float64(to)/float64(from) - 1 }

// Flat reports whether the coordinator's peak RSS stayed within flatLimit.
func (r report) Flat() bool { return r.Growth() <= flatLimit }

func (r report) write(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	m := r.Machine

	p("# dsync benchmarks\n\n")
	if r.Quick {
		p("**Smoke run (-quick): datasets too small for the figures to mean anything.**\n\n")
	}
	cmd := "`" + r.Command + "`"
	if r.ViaMake {
		cmd = "`make bench`, which builds bin/dsync and runs " + cmd
	}
	p("Measured %s with %s.\n\n", r.Date.Format("2006-01-02 15:04 MST"), cmd)

	p("| Machine | |\n|---|---|\n")
	p("| CPU | %s |\n", m.CPU)
	p("| Cores | %s |\n", m.cores())
	p("| RAM | %.1f GiB |\n", float64(m.MemBytes)/(1<<30))
	p("| Kernel | %s |\n", m.Kernel)
	p("| Go | %s %s/%s |\n", m.GoBench, runtime.GOOS, runtime.GOARCH)
	dsync := r.DSync
	if m.GoDSync != "" {
		dsync += ", built with " + m.GoDSync
	}
	if m.Revision != "" {
		dsync += ", revision " + m.Revision
	}
	p("| dsync | %s |\n", dsync)
	p("| Load average (1 min) | %s at the start, %s at the end |\n\n", r.LoadStart, r.LoadEnd)
	p("MB are 10^6 bytes of BSON documents; RSS is in MiB (2^20 bytes).\n\n")

	f := r.List
	in, gr := median(f.InProc), median(f.GRPC)
	p("## 1. ListData throughput of random://\n\n")
	p("One ListData loop reads one partition of %d documents of %d bytes (`%s`, default page size: %d documents per page). ",
		f.Docs, docSize, f.URL, f.PageDocs)
	p("In process: `random.New()`, Configure, ListData. Through gRPC: `%s plugin serve connector random` launched by pluginhost with AutoMTLS, the same loop through `Plugin.Connector()`. ",
		r.DSync)
	p("The two alternate; each row is the median of %d runs.\n\n", len(f.InProc))
	p("| Path | docs/s | MB/s | time | docs/s of each run |\n|---|---:|---:|---:|---|\n")
	row := func(name string, med listRun, runs []listRun) {
		each := make([]string, len(runs))
		for i, x := range runs {
			each[i] = fmt.Sprintf("%.0f", x.DocsPerSec())
		}
		p("| %s | %.0f | %.1f | %s | %s |\n", name, med.DocsPerSec(), med.MBPerSec(), med.Time.Round(time.Millisecond), strings.Join(each, ", "))
	}
	row("in-process", in, f.InProc)
	row("gRPC (plugin subprocess, AutoMTLS)", gr, f.GRPC)
	p("\n**gRPC / in-process: %.2f** (docs/s, same run). Starting the plugin (launch, handshake, Configure, Info) took %s and is not in the figures.\n\n",
		f.Ratio(), f.PluginStart.Round(time.Millisecond))

	p("## 2. End-to-end `dsync sync` random:// → null://\n\n")
	p("Each run uses a fresh state directory:\n\n")
	for _, z := range r.Syncs {
		a := z.Runs[0].Args
		p("    %s %s \"%s\"\n", r.DSync, strings.Join(quoteArgs(a[:len(a)-1]), " "), stateDirArg)
	}
	p("\nWall time runs from the start of the coordinator process to its exit (plugin launches included); flow time is the duration dsync reports for the flow. ")
	p("Peak RSS is each process's own VmHWM, sampled from /proc every %s; wait4 max is the kernel's ru_maxrss for the coordinator and the plugins it reaped (the largest of them), a check on the sampling. ", sampleEvery)
	p("CPU is the user+system time of all three processes. ")
	p("The sizes take turns, %d run(s) each.\n\n", len(r.Syncs[0].Runs))
	p("| Docs | Run | Wall time | Flow time | docs/s | MB/s | CPU | Coordinator peak RSS | Plugin peak RSS | wait4 max |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, z := range r.Syncs {
		for i, s := range z.Runs {
			var pl []string
			for _, x := range s.Plugins {
				pl = append(pl, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(x.Label, "plugin "), mib(x.HWM)))
			}
			p("| %d | %d | %s | %s | %.0f | %.1f | %s | %.1f MiB | %s | %.1f MiB |\n",
				s.Docs, i+1, s.Wall.Round(time.Millisecond), s.Flow.Round(time.Millisecond), s.DocsPerSec(), s.MBPerSec(),
				s.CPU.Round(10*time.Millisecond), mib(s.Coordinator.HWM), strings.Join(pl, ", "), mib(s.WaitMaxRSS))
		}
	}
	p("\nPer size:\n\n| Docs | docs/s (median) | MB/s (median) | Coordinator peak RSS (largest) | Coordinator peak RSS (median) |\n|---:|---:|---:|---:|---:|\n")
	for _, z := range r.Syncs {
		p("| %d | %.0f | %.1f | %.1f MiB | %.1f MiB |\n", z.Docs, z.DocsPerSec(), z.MBPerSec(), mib(z.CoordinatorPeak()), mib(z.CoordinatorHWM()))
	}
	first, last := r.Syncs[0], r.Syncs[len(r.Syncs)-1]
	verdict := "yes"
	if !r.Flat() {
		verdict = "NO"
	}
	p("\n**Coordinator peak RSS flat (within %.0f%%) as the dataset grew %.0f×: %s** (largest of the runs %.1f → %.1f MiB, %+.1f%%; medians %.1f → %.1f MiB, %+.1f%%). ",
		flatLimit*100, float64(last.Docs)/float64(first.Docs), verdict,
		mib(first.CoordinatorPeak()), mib(last.CoordinatorPeak()), r.Growth()*100,
		mib(first.CoordinatorHWM()), mib(last.CoordinatorHWM()), growth(first.CoordinatorHWM(), last.CoordinatorHWM())*100)
	p("The verdict compares the largest peaks: a run's peak is the highest heap of its GC cycles, so a short run, with fewer cycles, tends to stop below the peak a long one reaches.\n\n")
	p("**End-to-end docs/s over the in-process ListData ceiling of figure 1** (%.0f docs/s, same run):", in.DocsPerSec())
	for i, z := range r.Syncs {
		sep := ","
		if i == len(r.Syncs)-1 {
			sep = "."
		}
		p(" %.2f at %d docs%s", z.DocsPerSec()/in.DocsPerSec(), z.Docs, sep)
	}
	p("\n")
	p("\n")

	r.Transform.write(w, r.DSync)
	writeVerify(w, r.DSync, r.Verify, r.VerifyScaled)
	if r.Mongo != nil {
		r.Mongo.write(w, r.DSync)
	} else {
		p("## 5. MongoDB → MongoDB copy: dsync vs a direct driver copy\n\nNot measured in this run: %s.\n\n", r.MongoSkip)
	}
	if r.PG != nil {
		r.PG.write(w, r.DSync)
	} else {
		p("## 6. PostgreSQL → PostgreSQL: copy vs pg_dump | psql, and CDC\n\nNot measured in this run: %s.\n\n", r.PGSkip)
	}
}
