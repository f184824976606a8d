package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// verifyRun is figure 4 at one dataset size: the copy of n random
// documents into testsink, then `dsync verify` of the two.
type verifyRun struct {
	Docs       int64
	Copy       syncResult
	VerifyArgs []string // after the executable; the state directory is a placeholder
	Verify     procRun
	// Compared is the total of the COMPARED column; Reported is the TIME
	// of the total line of the summary.
	Compared int64
	Reported string
}

func (v verifyRun) DocsPerSec() float64 { return float64(v.Docs) / v.Verify.Wall.Seconds() }

// VerifyHWM is the peak RSS of the verify coordinator and its plugins,
// summed.
func (v verifyRun) VerifyHWM() uint64 { return v.Verify.Coordinator.HWM + v.Verify.PluginsHWM() }

var verifyTotalRE = regexp.MustCompile(`(?m)^\s*total\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*$`)

// buildTestsink builds the testsink plugin into dir.
func buildTestsink(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the dsync module: cannot build the testsink plugin")
	}
	exe := filepath.Join(dir, "dsync-connector-testsink")
	build := exec.CommandContext(ctx, "go", "build", "-o", exe, "./tests/testsink/cmd/dsync-connector-testsink")
	build.Dir = filepath.Dir(mod)
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testsink: %w\n%s", err, b)
	}
	return exe, nil
}

// measureVerify copies n random documents into a fresh testsink store and
// verifies the copy against the source.
func measureVerify(ctx context.Context, cfg config, pluginDir string, n int64) (verifyRun, error) {
	v := verifyRun{Docs: n}
	store, err := os.MkdirTemp("", "dsync-bench-testsink-")
	if err != nil {
		return v, err
	}
	defer os.RemoveAll(store)
	sink := "testsink://" + store
	env := []string{pathEnv(pluginDir)}
	if v.Copy, err = measureSyncArgs(ctx, cfg, n, sink, nil, env); err != nil {
		return v, fmt.Errorf("copy: %w", err)
	}
	v.VerifyArgs = []string{"verify", randomURL(n), sink, "--progress", "none", "--state-dir", stateDirArg}
	args, cleanup, err := withStateDir(v.VerifyArgs)
	if err != nil {
		return v, err
	}
	defer cleanup()
	var stdout string
	v.Verify, stdout, err = runProc(ctx, cfg.dsync, args, env)
	if err != nil {
		return v, fmt.Errorf("verify: %w", err)
	}
	m := verifyTotalRE.FindStringSubmatch(stdout)
	if m == nil || !strings.Contains(stdout, "result: identical") {
		return v, fmt.Errorf("verify did not report identical datasets:\n%s", tail(stdout, 20))
	}
	v.Compared, _ = strconv.ParseInt(m[1], 10, 64)
	v.Reported = m[5]
	if v.Compared != n || m[2] != "0" || m[3] != "0" || m[4] != "0" {
		return v, fmt.Errorf("verify compared %d docs (want %d), missing %s, extra %s, different %s", v.Compared, n, m[2], m[3], m[4])
	}
	return v, nil
}

// verifyGrowth is how much the verify processes' summed peak RSS grew
// from the smallest to the largest dataset.
func verifyGrowth(runs []verifyRun) float64 {
	return growth(runs[0].VerifyHWM(), runs[len(runs)-1].VerifyHWM())
}

func writeVerify(w io.Writer, dsync string, runs []verifyRun, scaled bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 4. `dsync verify` random:// against a testsink copy\n\n")
	p("For each size, a fresh testsink store (Pebble; plugin `dsync-connector-testsink` built from ./tests/testsink/cmd/dsync-connector-testsink, found on PATH) receives a copy of the random documents, then `dsync verify` compares the random source with that store; both commands run with a fresh state directory:\n\n")
	for _, v := range runs {
		a := v.Copy.Args
		p("    %s %s \"%s\"\n", dsync, strings.Join(quoteArgs(a[:len(a)-1]), " "), stateDirArg)
		a = v.VerifyArgs
		p("    %s %s \"%s\"\n", dsync, strings.Join(quoteArgs(a[:len(a)-1]), " "), stateDirArg)
	}
	if scaled {
		p("\nThe sizes are ten times smaller than issue 6's 200k and 2M: verify runs at about 20k docs/s here, so 2M documents (about 100 s of verify and 50 s of copy) would not fit the few minutes `make bench` is given; the tenfold growth of the memory check is kept.\n")
	}
	p("\nVerify scans A (random, 8 partitions) and looks each page up in B by id (GetByIds), then makes the reverse pass over B's plan; docs/s is the number of documents of A over the wall time of the verify process (plugin start-up included). Peak RSS is VmHWM sampled every %s as in figure 2; \"all\" is the coordinator plus its plugins. Copy is the `dsync sync` into the same store, same run.\n\n", sampleEvery)
	p("| Docs | Copy wall | Copy docs/s | Copy coordinator peak RSS | Verify wall | Verify docs/s | Verify / copy | Verify coordinator peak RSS | Verify plugin peak RSS | Verify all | Summary TIME |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, v := range runs {
		p("| %d | %s | %.0f | %.1f MiB | %s | %.0f | %.2f | %.1f MiB | %s | %.1f MiB | %s |\n",
			v.Docs, v.Copy.Wall.Round(time.Millisecond), v.Copy.DocsPerSec(), mib(v.Copy.Coordinator.HWM),
			v.Verify.Wall.Round(time.Millisecond), v.DocsPerSec(), v.DocsPerSec()/v.Copy.DocsPerSec(),
			mib(v.Verify.Coordinator.HWM), v.Verify.pluginPeaks(), mib(v.VerifyHWM()), v.Reported)
	}
	first, last := runs[0], runs[len(runs)-1]
	g := verifyGrowth(runs)
	verdict := "yes"
	if g > flatLimit {
		verdict = "NO"
	}
	p("\n**Verify peak RSS flat (within %.0f%%) as the dataset grew %.0f×: %s** (coordinator + plugins %.1f → %.1f MiB, %+.1f%%; coordinator alone %.1f → %.1f MiB, %+.1f%%). One run per size.\n\n",
		flatLimit*100, float64(last.Docs)/float64(first.Docs), verdict, mib(first.VerifyHWM()), mib(last.VerifyHWM()), g*100,
		mib(first.Verify.Coordinator.HWM), mib(last.Verify.Coordinator.HWM), growth(first.Verify.Coordinator.HWM, last.Verify.Coordinator.HWM)*100)
	p("**Verify docs/s over copy docs/s of the same data, same run:**")
	for i, v := range runs {
		sep := ","
		if i == len(runs)-1 {
			sep = "."
		}
		p(" %.2f at %d docs%s", v.DocsPerSec()/v.Copy.DocsPerSec(), v.Docs, sep)
	}
	p(" The Summary TIME column is the TIME of verify's own `total` line: the sum of the partitions' busy times (coordinator/verify/result.go adds each partition's BusyMS), so with --parallel 4 it exceeds the wall time.\n\n")
}
