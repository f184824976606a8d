package cli

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/progress"
)

// progressLines parses --progress json output: every line must be a JSON
// object, and the last one, only, is final.
func progressLines(t *testing.T, stdout string) []progress.JSONLine {
	t.Helper()
	var lines []progress.JSONLine
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var pl progress.JSONLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pl); err != nil {
			t.Fatalf("stdout line %d is not a progress line: %v\n%s", i+1, err, l)
		}
		lines = append(lines, pl)
	}
	for i, l := range lines {
		if l.Final != (i == len(lines)-1) {
			t.Errorf("line %d of %d has final=%v", i+1, len(lines), l.Final)
		}
	}
	return lines
}

// TestSyncAndState runs a real initial sync through plugin subprocesses (the
// test binary re-executed), then inspects, resumes and resets its flow.
func TestSyncAndState(t *testing.T) {
	// Every goroutine of a run (plugin supervision, gRPC, progress,
	// signals) ends with it.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	const src = "random://?namespaces=2&docs=2000"
	syncArgs := []string{"sync", src, "null://", "--mode", "initial", "--progress", "json", "--state-dir", dir}

	r := mustRun(t, syncArgs...)
	lines := progressLines(t, r.stdout)
	last := lines[len(lines)-1]
	if last.Docs != 4000 || last.Phase != "done" || last.PartitionsTotal == 0 || last.PartitionsDone != last.PartitionsTotal {
		t.Errorf("final progress line %+v: want 4000 docs, phase done, every partition done", last)
	}
	if last.Bytes < 4000*163 {
		t.Errorf("final progress line reports %d bytes for 4000 documents", last.Bytes)
	}
	var prev uint64
	for _, l := range lines {
		if l.Flow != last.Flow || l.Docs < prev {
			t.Errorf("progress line %+v: want flow %s and docs never decreasing", l, last.Flow)
		}
		prev = l.Docs
	}
	flow := last.Flow
	// The flow id and the state directory are logged at start.
	if !strings.Contains(r.stderr, flow) || !strings.Contains(r.stderr, dir) {
		t.Errorf("the log does not name flow %s and state directory %s:\n%s", flow, dir, r.stderr)
	}

	// state list, as JSON lines and as a table.
	r = mustRun(t, "state", "list", "--json", "--state-dir", dir)
	var got flowSummary
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("state list --json: want one JSON line (%v):\n%s", err, r.stdout)
	}
	if got.ID != flow || got.Mode != "initial" || got.Phase != "done" || !got.CopyDone || got.Source != src || got.Sink != "null://" {
		t.Errorf("state list --json: %+v", got)
	}
	r = mustRun(t, "state", "list", "--state-dir", dir)
	if !strings.HasPrefix(r.stdout, "FLOW") || !strings.Contains(r.stdout, flow) || !strings.Contains(r.stdout, src) {
		t.Errorf("state list:\n%s", r.stdout)
	}

	// state show: namespaces and partitions.
	r = mustRun(t, "state", "show", flow, "--state-dir", dir)
	for _, want := range []string{"flow      " + flow, "phase     done", "NAMESPACE", "random.ns0", "random.ns1", "4/4", "2000"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("state show does not contain %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, "state", "show", flow, "--json", "--state-dir", dir)
	var show struct {
		Flow       flowSummary                 `json:"flow"`
		Partitions []checkpoint.PartitionState `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &show); err != nil {
		t.Fatalf("state show --json: %v\n%s", err, r.stdout)
	}
	var docs uint64
	for _, p := range show.Partitions {
		docs += p.Docs
		if !p.Done {
			t.Errorf("partition %+v is not done", p)
		}
	}
	if show.Flow.ID != flow || len(show.Partitions) != last.PartitionsTotal || docs != 4000 {
		t.Errorf("state show --json: flow %q, %d partitions with %d docs; want %s, %d, 4000",
			show.Flow.ID, len(show.Partitions), docs, flow, last.PartitionsTotal)
	}

	// The same command resumes the finished flow and copies nothing more.
	r = mustRun(t, syncArgs...)
	lines = progressLines(t, r.stdout)
	if l := lines[len(lines)-1]; l.Flow != flow || l.Docs != 4000 || l.Phase != "done" {
		t.Errorf("rerun: final line %+v, want flow %s done with 4000 docs", l, flow)
	}

	// state reset removes the flow; resetting it again fails.
	r = mustRun(t, "state", "reset", flow, "--state-dir", dir)
	if r.stdout != "flow "+flow+" reset: its checkpoints are deleted\n" {
		t.Errorf("state reset: %q", r.stdout)
	}
	if r = mustRun(t, "state", "list", "--json", "--state-dir", dir); r.stdout != "" {
		t.Errorf("state list after reset: %q", r.stdout)
	}
	checkOneLineError(t, run(t, "state", "show", flow, "--state-dir", dir), ExitFailure, `no flow "`+flow+`" in `+dir)
	checkOneLineError(t, run(t, "state", "reset", flow, "--state-dir", dir), ExitFailure, `no flow "`+flow+`"`)
	checkOneLineError(t, run(t, "state", "reset", "nosuch", "--state-dir", dir), ExitFailure,
		`no flow "nosuch" in `+dir+` (see 'dsync state list')`)
}

// TestStateWithoutStore: state commands on a directory no flow has used
// fail with a clear message, and reset does not create a store there.
func TestStateWithoutStore(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	def := filepath.Join(testHome, ".local", "state", "dsync")
	tests := []struct {
		name string
		args []string
		dir  string
	}{
		{"list empty dir", []string{"state", "list", "--state-dir", empty}, empty},
		{"list missing dir", []string{"state", "list", "--json", "--state-dir", missing}, missing},
		{"list default dir", []string{"state", "list"}, def},
		{"show empty dir", []string{"state", "show", "abc", "--state-dir", empty}, empty},
		{"show missing dir", []string{"state", "show", "abc", "--state-dir", missing}, missing},
		{"reset empty dir", []string{"state", "reset", "abc", "--state-dir", empty}, empty},
		{"reset missing dir", []string{"state", "reset", "abc", "--state-dir", missing}, missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			checkOneLineError(t, r, ExitFailure, "no checkpoint store in "+tt.dir+" (no flow has run with this --state-dir)")
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state commands created %s (%v)", missing, err)
	}
	if _, err := os.Stat(filepath.Join(empty, "CURRENT")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state reset created a store in %s (%v)", empty, err)
	}
}

// TestSyncRoleErrors: a connector in a role it cannot play, and a bad
// --metrics address, are usage errors found once the plugins are running.
func TestSyncRoleErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"sink as source", []string{"null://", "null://"}, "cannot be a source"},
		{"source as sink", []string{"random://?docs=1", "random://?docs=1"}, "cannot be a sink"},
		{"source option rejected by the plugin", []string{"random://?docs=-1", "null://"}, `docs="-1" is not valid`},
		{"sink option rejected by the plugin", []string{"random://?docs=1", "null://?delay=forever"}, `delay="forever" is not a duration`},
		{"unusable metrics address", []string{"random://?docs=1", "null://", "--metrics", "256.0.0.1:http"}, "--metrics 256.0.0.1:http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"sync", "--mode", "initial", "--progress", "none", "--log-level", "error", "--state-dir", t.TempDir()}, tt.args...)
			checkOneLineError(t, run(t, args...), ExitUsage, tt.want)
		})
	}
}
