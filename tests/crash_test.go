package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Parameters of the crash test's flow: 150,000 documents of 512 bytes in
// pages of 500, read two partitions at a time with two pages in flight,
// then 20,000 change events at 2,500 per second, into a testsink that
// takes 20ms per write call, so that the copy lasts about five seconds and
// CDC about eight.
const (
	crashPage     = 500
	crashParallel = 2
	crashSource   = "random://?namespaces=2&docs=75000&size=512&partitions=4&page=500&updates=20000&rate=2500"
	crashDocs     = 150000
	crashKills    = 10
	// crashCopyKills of the kills are aimed at the copy (random times from
	// the start), the others at CDC (random times after the first progress
	// line of phase cdc).
	crashCopyKills = 6
)

// killRecord is what one SIGKILL left behind.
type killRecord struct {
	after      time.Duration // from the start of the run
	phase      string        // stored phase, or "unplanned" when no flow was stored yet
	partsDone  int
	parts      int
	sinkDocs   int    // documents in the sink
	written    uint64 // testsink DocsWritten
	applied    uint64 // testsink UpdatesApplied
	ckptDocs   uint64 // documents of checkpointed pages
	ckptEvents uint64 // change events checkpointed
	copyDone   bool
}

// duplicates is the number of documents written more than once so far: the
// documents received minus the distinct documents copied (every document
// once the copy is done; until then there are no CDC writes, so the
// documents in the sink).
func (k killRecord) duplicates() int64 {
	unique := int64(k.sinkDocs)
	if k.copyDone {
		unique = crashDocs
	}
	return int64(k.written) - unique
}

// exposed is the number of documents in the sink beyond the checkpoints
// during the copy: those the next run copies again.
func (k killRecord) exposed() int64 {
	if k.copyDone || k.phase == "unplanned" {
		return 0
	}
	return int64(k.sinkDocs) - int64(k.ckptDocs)
}

// The coordinator is killed with SIGKILL at ten random points across copy
// and CDC, and the same command is run again after each kill; the last run
// cuts over. The sink then holds exactly what the source's events produce
// up to the final cursor, and each kill cost at most one page per partition
// read in parallel of documents copied again.
func TestCrashCoordinator(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DSYNC_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("DSYNC_E2E_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (rerun with DSYNC_E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	args := []string{"sync", crashSource, sinkURL(sinkDir, "?delay=20ms"), "--mode", "full",
		"--parallel", strconv.Itoa(crashParallel), "--writers", "4",
		"--max-inflight", "512KiB", "--batch-bytes", "256KiB", "--until-lag", "2s",
		"--state-dir", stateDir, "--progress", "json", "--log-file", dir + "/log"}
	bound := int64(crashPage * crashParallel)

	var kills []killRecord
	for k := range crashKills {
		p := start(t, args...)
		if k < crashCopyKills {
			time.Sleep(time.Duration(150+rng.IntN(1050)) * time.Millisecond)
		} else {
			p.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		if p.exited() {
			t.Fatalf("run %d ended before it was killed: %s", k+1, p.res)
		}
		p.signal(syscall.SIGKILL)
		after := time.Since(p.started)
		if r := p.wait(10 * time.Second); r.code != -int(syscall.SIGKILL) {
			t.Fatalf("run %d: killed dsync exited with %d", k+1, r.code)
		}
		p.sessionGone(10 * time.Second)
		kills = append(kills, inspectCrash(t, sinkDir, stateDir, after))
	}

	r := mustRun(t, runTimeout, args...)
	final := finalProgress(t, r.stdout)
	cuts := cutovers(r.stdout)
	if final.Phase != "done" || len(cuts) != 1 {
		t.Fatalf("final run did not cut over with one cursor:\n%s", r)
	}
	pos := cursorPos(t, cuts[0].Cursor)
	end := inspectCrash(t, sinkDir, stateDir, r.elapsed)
	if pos == 0 || uint64(pos) != end.ckptEvents || cuts[0].Events != end.ckptEvents {
		t.Errorf("cut-over cursor at event %d, %d events printed, %d checkpointed", pos, cuts[0].Events, end.ckptEvents)
	}

	// Per-kill figures. The documents copied again because of kill k are
	// the duplicates written by the runs after it, up to the next kill.
	copyKills, cdcKills := 0, 0
	var total, worst int64
	for k, kr := range kills {
		next := end
		if k+1 < len(kills) {
			next = kills[k+1]
		}
		again := next.duplicates() - kr.duplicates()
		where := kr.phase
		switch {
		case kr.phase == "copy":
			copyKills++
			where = fmt.Sprintf("copy, %d/%d partitions and %d docs checkpointed, %d in the sink", kr.partsDone, kr.parts, kr.ckptDocs, kr.sinkDocs)
		case kr.phase == "cdc":
			cdcKills++
			where = fmt.Sprintf("cdc, %d events checkpointed, %d applied", kr.ckptEvents, kr.applied)
		}
		t.Logf("kill %2d at %5s (%s): %d docs copied again by the next runs, %d in the sink beyond the checkpoints",
			k+1, kr.after.Round(time.Millisecond), where, again, kr.exposed())
		if kr.exposed() < 0 {
			t.Errorf("kill %d: the checkpoints count %d documents more than the sink holds", k+1, -kr.exposed())
		}
		if again < 0 || again > bound {
			t.Errorf("kill %d: %d documents copied again, want 0 to %d (one page of %d per partition, %d partitions in parallel)",
				k+1, again, bound, crashPage, crashParallel)
		}
		if kr.exposed() > bound {
			t.Errorf("kill %d: %d documents written beyond the checkpoints, want at most %d", k+1, kr.exposed(), bound)
		}
		total += again
		worst = max(worst, again)
	}
	if copyKills < 3 || cdcKills < crashKills-crashCopyKills {
		t.Errorf("%d kills landed in the copy and %d in CDC; want at least 3 and %d", copyKills, cdcKills, crashKills-crashCopyKills)
	}
	if end.duplicates() != total {
		t.Errorf("%d duplicate documents in the sink counters, %d accounted to kills", end.duplicates(), total)
	}
	// After the cut-over every applied event is checkpointed: the excess
	// of updates received over events checkpointed was applied twice.
	reapplied := int64(end.applied) - int64(end.ckptEvents)
	if reapplied < 0 {
		t.Errorf("%d change events checkpointed but only %d updates reached the sink", end.ckptEvents, end.applied)
	}
	checkState(t, sinkDir, stateAt(t, randomOptions(t, crashSource), pos))
	verdict := "exact"
	if t.Failed() {
		verdict = "NOT exact or over the bound (see the errors above)"
	}
	summary := fmt.Sprintf("crash-recopy: %d SIGKILLs of dsync sync (%d in copy, %d in CDC, seed %d): "+
		"documents copied again per kill max %d, mean %.0f, total %d of %d (bound %d = page %d x --parallel %d); "+
		"change events applied again %d of %d; final state at event %d %s",
		crashKills, copyKills, cdcKills, seed, worst, float64(total)/float64(crashKills), total, crashDocs,
		bound, crashPage, crashParallel, reapplied, end.ckptEvents, pos, verdict)
	t.Log(summary)
	if path := os.Getenv("DSYNC_E2E_SUMMARY"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, summary)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			t.Errorf("write the summary to DSYNC_E2E_SUMMARY: %v", err)
		}
	}
}

// inspectCrash reads the sink and the checkpoint store after a run.
func inspectCrash(t testing.TB, sinkDir, stateDir string, after time.Duration) killRecord {
	t.Helper()
	kr := killRecord{after: after, phase: "unplanned"}
	f := readSinkFacts(t, sinkDir)
	kr.sinkDocs, kr.written, kr.applied = f.TotalDocs, f.Counters.DocsWritten, f.Counters.UpdatesApplied
	flows := snapshotState(t, stateDir)
	switch len(flows) {
	case 0:
	case 1:
		fl := flows[0]
		kr.phase, kr.copyDone = fl.Meta.Phase, fl.Meta.CopyDone
		kr.parts, kr.partsDone, kr.ckptDocs = len(fl.Partitions), fl.partitionsDone(), fl.checkpointedDocs()
		for _, u := range fl.Updates {
			kr.ckptEvents += u.Events
		}
	default:
		t.Fatalf("checkpoint store holds %d flows: %s", len(flows), describeState(flows))
	}
	return kr
}
