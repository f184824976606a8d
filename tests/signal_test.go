package tests

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsyncio/dsync/tests/testsink"
)

// SIGINT mid-copy stops reading, lets in-flight writes finish, checkpoints
// and exits 0 soon, saying it stopped; every document written is
// checkpointed, so the rerun finishes with exact data and copies nothing
// twice.
func TestSIGINT(t *testing.T) {
	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	src := "random://?namespaces=2&docs=40000&size=512&page=500"
	args := []string{"sync", src, sinkURL(sinkDir, "?delay=50ms"), "--mode", "initial",
		"--max-inflight", "1MiB", "--batch-bytes", "256KiB", "--writers", "4",
		"--state-dir", stateDir, "--progress", "json", "--log-file", dir + "/log"}
	p := start(t, args...)
	p.waitLine(time.Minute, "a progress line of phase copy", phaseIs("copy"))
	p.signal(syscall.SIGINT)
	sent := time.Now()
	r := p.wait(time.Minute)
	took := time.Since(sent)
	p.sessionGone(10 * time.Second)
	t.Logf("exited %s after SIGINT", took.Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("exit %d after SIGINT, want 0:\n%s", r.code, r)
	}
	if took > 15*time.Second {
		t.Errorf("exit took %s after SIGINT, want less than 15s", took)
	}
	if final := finalProgress(t, r.stdout); final.Phase != "stopped" {
		t.Errorf("final progress line %+v, want phase stopped", final)
	}
	fl := onlyFlow(t, stateDir)
	f := readSinkFacts(t, sinkDir)
	if fl.Meta.Phase != "copy" || fl.partitionsDone() == len(fl.Partitions) {
		t.Errorf("stopped flow: %s, want an unfinished copy", describeState([]flowSnapshot{fl}))
	}
	if uint64(f.TotalDocs) != fl.checkpointedDocs() || f.Counters.DocsWritten != fl.checkpointedDocs() {
		t.Errorf("after the stop the sink holds %d documents (%d written) and %d are checkpointed; want all written ones checkpointed",
			f.TotalDocs, f.Counters.DocsWritten, fl.checkpointedDocs())
	}

	r = mustRun(t, runTimeout, args...)
	if final := finalProgress(t, r.stdout); final.Phase != "done" {
		t.Errorf("rerun: final progress %+v, want phase done", final)
	}
	checkCopy(t, sinkDir, randomOptions(t, src), nil, true)
	if f := readSinkFacts(t, sinkDir); f.Counters.DocsWritten != 80000 {
		t.Errorf("%d documents written for 80000: a graceful stop made the rerun copy %d again",
			f.Counters.DocsWritten, f.Counters.DocsWritten-80000)
	}
}

// A second SIGINT during the drain of the first exits at once with 1; the
// plugins exit too, and the rerun finishes with exact data.
func TestSecondSIGINT(t *testing.T) {
	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	// Every write takes a second and every page read is admitted (64 MiB in
	// flight by default), so the drain after the first signal lasts
	// seconds.
	src := "random://?namespaces=2&docs=6000&size=512&page=500"
	args := []string{"sync", src, sinkURL(sinkDir, "?delay=1s"), "--mode", "initial", "--writers", "4",
		"--state-dir", stateDir, "--progress", "json", "--log-file", dir + "/log"}
	p := start(t, args...)
	p.waitLine(time.Minute, "a progress line of phase copy", phaseIs("copy"))
	if plugins := children(t, p.pid()); len(plugins) != 2 {
		t.Fatalf("dsync runs %d plugins, want 2: %+v", len(plugins), plugins)
	}
	p.signal(syscall.SIGINT)
	time.Sleep(200 * time.Millisecond)
	if p.exited() {
		t.Fatalf("dsync exited within 200ms of the first SIGINT; the drain should take seconds: %s", p.res)
	}
	p.signal(syscall.SIGINT)
	sent := time.Now()
	r := p.wait(time.Minute)
	took := time.Since(sent)
	t.Logf("exited %s after the second SIGINT", took.Round(time.Millisecond))
	if r.code != 1 {
		t.Errorf("exit %d after a second SIGINT, want 1:\n%s", r.code, r)
	}
	if took > 2*time.Second {
		t.Errorf("exit took %s after the second SIGINT, want at once", took)
	}
	if line := oneErrorLine(t, r); !strings.Contains(line, "second signal") {
		t.Errorf("error line %q does not say why dsync stopped", line)
	}
	p.sessionGone(10 * time.Second)
	if fl := onlyFlow(t, stateDir); fl.Meta.Phase != "copy" {
		t.Errorf("flow after the abrupt exit: %s", describeState([]flowSnapshot{fl}))
	}

	r = mustRun(t, runTimeout, args...)
	if final := finalProgress(t, r.stdout); final.Phase != "done" {
		t.Errorf("rerun: final progress %+v, want phase done", final)
	}
	checkCopy(t, sinkDir, randomOptions(t, src), nil, true)
	f := readSinkFacts(t, sinkDir)
	t.Logf("%d documents copied again after the abrupt exit", f.Counters.DocsWritten-12000)
}

// A plugin killed with SIGKILL mid-copy is restarted by the host and the
// run finishes by itself with exact data: first the source, then the sink.
func TestCrashPlugin(t *testing.T) {
	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	src := "random://?namespaces=2&docs=50000&size=512&page=500"
	p := start(t, "sync", src, sinkURL(sinkDir, "?delay=100ms"), "--mode", "initial",
		"--max-inflight", "1MiB", "--batch-bytes", "256KiB", "--writers", "4",
		"--state-dir", stateDir, "--progress", "json", "--log-file", dir+"/log")
	p.waitLine(time.Minute, "a progress line of phase copy", phaseIs("copy"))

	for _, name := range []string{"plugin serve connector random", testsink.BinaryName} {
		old := waitChild(t, p.pid(), name, nil, 10*time.Second)
		if err := syscall.Kill(old.pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
		killed := time.Now()
		nu := waitChild(t, p.pid(), name, []int{old.pid}, 30*time.Second)
		t.Logf("%s: pid %d killed, pid %d serving %s later", name, old.pid, nu.pid, time.Since(killed).Round(time.Millisecond))
		if p.exited() {
			t.Fatalf("dsync ended after the kill of %s: %s", name, p.res)
		}
		// The copy goes on: a new progress line shows more documents.
		from := p.lineCount()
		prev, _ := parseProgress(p.waitLineFrom(from-1, time.Minute, "a progress line", phaseIs("copy")))
		p.waitLineFrom(from, time.Minute, "progress after the restart", func(s string) bool {
			pl, ok := parseProgress(s)
			return ok && pl.Docs > prev.Docs
		})
	}
	r := p.wait(runTimeout)
	p.sessionGone(10 * time.Second)
	if r.code != 0 {
		t.Fatalf("run with killed plugins: %s", r)
	}
	if final := finalProgress(t, r.stdout); final.Phase != "done" || final.Docs != 100000 {
		t.Errorf("final progress %+v, want done with 100000 docs", final)
	}
	checkCopy(t, sinkDir, randomOptions(t, src), nil, true)
	f := readSinkFacts(t, sinkDir)
	t.Logf("%d documents copied again after the plugin kills", f.Counters.DocsWritten-100000)
	if again := f.Counters.DocsWritten - 100000; again > 2*500*4 {
		t.Errorf("%d documents copied again after two plugin kills, want at most %d", again, 2*500*4)
	}
}
