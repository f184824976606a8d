package tests

import (
	"strings"
	"testing"
	"time"
)

// runTimeout bounds a dsync run that is expected to finish by itself.
const runTimeout = 2 * time.Minute

// A copy stores every document exactly once, with the source's bytes, and
// exits 0.
func TestCopyExact(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=3&docs=50000&partitions=8"
	sink := sinkURL(dir+"/sink", "")
	r := mustRun(t, runTimeout, "sync", src, sink, "--mode", "initial",
		"--state-dir", dir+"/state", "--progress", "json", "--log-file", dir+"/log")
	t.Logf("copied 150000 documents in %s", r.elapsed.Round(time.Millisecond))
	if r.stderr != "" {
		t.Errorf("stderr of a successful run with --log-file: %q", r.stderr)
	}
	final := finalProgress(t, r.stdout)
	if final.Phase != "done" || final.Docs != 150000 || final.PartitionsDone != 24 || final.PartitionsTotal != 24 {
		t.Errorf("final progress = %+v, want phase done, 150000 docs, 24/24 partitions", final)
	}
	o := randomOptions(t, src)
	checkCopy(t, dir+"/sink", o, nil, true)
	f := readSinkFacts(t, dir+"/sink")
	if f.Counters.DocsWritten != 150000 || f.Counters.UpdatesApplied != 0 {
		t.Errorf("sink counters = %+v: want 150000 documents written once each, no updates", f.Counters)
	}
	fl := onlyFlow(t, dir+"/state")
	if fl.Meta.Phase != "done" || fl.partitionsDone() != 24 || fl.checkpointedDocs() != 150000 {
		t.Errorf("stored flow: %s", describeState([]flowSnapshot{fl}))
	}

	// The finished flow run again copies nothing and exits 0.
	r = mustRun(t, runTimeout, "sync", src, sink, "--mode", "initial",
		"--state-dir", dir+"/state", "--progress", "none", "--log-file", dir+"/log")
	if !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, " 0 docs") {
		t.Errorf("rerun of a finished flow printed %q, want done with 0 docs copied", r.stdout)
	}
	if f := readSinkFacts(t, dir+"/sink"); f.Counters.DocsWritten != 150000 {
		t.Errorf("rerun of a finished flow wrote %d documents", f.Counters.DocsWritten-150000)
	}
}

// CDC through 4 lanes applies every change in per-key order: after the
// cut-over the sink equals the state the source's events produce.
func TestCDCExact(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=5000&partitions=4&updates=24000"
	r := mustRun(t, runTimeout, "sync", src, sinkURL(dir+"/sink", ""), "--mode", "full",
		"--writers", "4", "--until-lag", "2s",
		"--state-dir", dir+"/state", "--progress", "none", "--log-file", dir+"/log")
	t.Logf("copied and applied 24000 change events in %s", r.elapsed.Round(time.Millisecond))
	if !strings.Contains(r.stdout, " cut over in ") {
		t.Errorf("stdout does not report the cut-over:\n%s", r.stdout)
	}
	var cursor string
	for line := range strings.Lines(r.stdout) {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "final cursor of stream 0: "); ok {
			cursor = c
		}
	}
	if cursor == "" {
		t.Fatalf("no final cursor printed:\n%s", r.stdout)
	}
	if pos := cursorPos(t, cursor); pos != 24000 {
		t.Fatalf("final cursor %s is position %d, want 24000 (every event)", cursor, pos)
	}
	o := randomOptions(t, src)
	want, err := o.ExpectedState()
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, dir+"/sink", want)
	f := readSinkFacts(t, dir+"/sink")
	if f.Counters.DocsWritten != 10000 || f.Counters.UpdatesApplied != 24000 {
		t.Errorf("sink counters = %+v: want 10000 documents and 24000 updates, each once", f.Counters)
	}
	fl := onlyFlow(t, dir+"/state")
	if len(fl.Updates) != 1 || fl.Updates[0].Events != 24000 {
		t.Errorf("stored update streams = %+v, want one with 24000 events", fl.Updates)
	}
}
