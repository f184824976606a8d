package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// badRunTimeout bounds a run that must be refused.
const badRunTimeout = 30 * time.Second

// writeScript writes an executable shell script.
func writeScript(t testing.TB, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
}

// Bad input is refused with one line on stderr starting with "dsync:", exit
// code 2 for a usage error and 1 for a failure, and the checkpoint store is
// left as it was. The log goes to --log-file so that stderr holds only the
// error.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	stateDir := dir + "/state"
	// A finished flow in the store, which no refused run may touch.
	mustRun(t, runTimeout, "sync", "random://?docs=100", "null://", "--mode", "initial",
		"--state-dir", stateDir, "--progress", "none", "--log-file", dir+"/log")
	before := snapshotState(t, stateDir)
	if len(before) != 1 {
		t.Fatalf("baseline flows: %s", describeState(before))
	}

	notExec := writeScript(t, dir+"/not-executable", "exit 0\n", 0o644)
	garbage := writeScript(t, dir+"/garbage", "echo 'not a handshake'\nexec sleep 30\n", 0o755)
	crash := writeScript(t, dir+"/crash", "echo 'crash: missing libfoo.so' >&2\nexit 3\n", 0o755)
	file := dir + "/file"
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	const (
		usage   = 2
		failure = 1
	)
	cases := []struct {
		name string
		args []string // after "sync"; the state dir, log file and progress are added
		code int
		want []string // substrings of the error line
	}{
		{"no arguments", []string{"random://"}, usage, []string{"SOURCE and SINK"}},
		{"unknown flag", []string{"random://", "null://", "--no-such-flag"}, usage, []string{"no-such-flag"}},
		{"bad mode", []string{"random://", "null://", "--mode", "sometimes"}, usage, []string{"--mode", `"sometimes"`}},
		{"bad parallel", []string{"random://", "null://", "--parallel", "0"}, usage, []string{"--parallel"}},
		{"unknown scheme", []string{"nosuch://x", "null://"}, usage, []string{"unknown scheme", `"nosuch"`, "dsync-connector-nosuch"}},
		{"no scheme", []string{"justtext", "null://"}, usage, []string{"malformed connection string", "source"}},
		{"malformed URL", []string{"random://%zz", "null://"}, usage, []string{`source plugin "random"`, `invalid URL escape "%zz"`}},
		{"missing plugin file", []string{"random://", "null://", "--source-plugin", "/nonexistent/dsync-plugin"}, usage,
			[]string{"plugin not found", "/nonexistent/dsync-plugin"}},
		{"plugin not executable", []string{"random://", "null://", "--source-plugin", notExec}, usage,
			[]string{"not executable", notExec, "chmod +x"}},
		{"plugin bad handshake", []string{"random://", "null://", "--source-plugin", garbage}, failure,
			[]string{`source plugin "garbage"`, "handshake failed", "not a handshake"}},
		{"plugin exits at start", []string{"random://", "null://", "--sink-plugin", crash}, failure,
			[]string{`sink plugin "crash"`, "exited before handshake", "exit status 3", "crash: missing libfoo.so"}},
		{"configure rejects an option", []string{"random://?docs=-1", "null://"}, usage,
			[]string{`source plugin "random"`, "configure", `docs="-1"`}},
		{"sink-only connector as source", []string{"null://", "null://"}, usage, []string{"cannot be a source"}},
		{"source-only connector as sink", []string{"random://", "random://"}, usage, []string{"cannot be a sink"}},
		{"namespace maps a collection to a database", []string{"random://", "null://", "--namespace", "a.b:c"}, usage,
			[]string{"--namespace", `"a.b:c"`}},
		{"namespace with empty source", []string{"random://", "null://", "--namespace", ":x"}, usage,
			[]string{"--namespace", `":x"`, "empty source"}},
		{"unwritable state dir", []string{"random://", "null://", "--state-dir", file + "/state"}, failure,
			[]string{"checkpoint store", file, "not a directory"}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			args := append([]string{"sync"}, c.args...)
			args = append(args, "--log-file", dir+"/log", "--progress", "none")
			if !strings.Contains(strings.Join(c.args, " "), "--state-dir") {
				args = append(args, "--state-dir", stateDir)
			}
			r := run(t, badRunTimeout, args...)
			if r.code != c.code {
				t.Errorf("exit code %d, want %d:\n%s", r.code, c.code, r)
			}
			line := oneErrorLine(t, r)
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not contain %q", line, w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout of a refused run: %q", r.stdout)
			}
			sameState(t, before, snapshotState(t, stateDir))
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a directory\n" {
		t.Errorf("the file given as a state dir parent was changed: %q, %v", b, err)
	}
}

// A sink that rejects a document fails the run with exit 1 and a message
// naming the namespace and the id. Rerunning the unfinished flow with a
// changed namespace mapping is refused with exit 1, naming the change and
// leaving the store untouched; with --reset it starts over and finishes.
func TestSinkRejectsThenOptionsChange(t *testing.T) {
	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	src := "random://?namespaces=3&docs=2000"
	common := []string{"--mode", "initial", "--state-dir", stateDir, "--progress", "none", "--log-file", dir + "/log"}

	r := run(t, runTimeout, append([]string{"sync", src, sinkURL(sinkDir, "?fail=fatal-id:42")}, common...)...)
	if r.code != 1 {
		t.Fatalf("sink rejecting _id 42: exit %d, want 1:\n%s", r.code, r)
	}
	line := oneErrorLine(t, r)
	if !regexp.MustCompile(`namespace "?random\.ns[0-2]"?`).MatchString(line) || !strings.Contains(line, "_id 42") {
		t.Errorf("error line %q does not name the namespace and _id 42", line)
	}
	if n := strings.Count(r.stdout, "\n"); n > 1 || !strings.Contains(r.stdout, "failed") {
		t.Errorf("stdout of a failed run = %q, want one summary line saying failed", r.stdout)
	}
	unfinished := snapshotState(t, stateDir)
	if len(unfinished) != 1 || unfinished[0].Meta.Phase != "copy" {
		t.Fatalf("after the failure the store holds %s, want one unfinished flow", describeState(unfinished))
	}
	oldID := unfinished[0].Meta.ID

	changed := append([]string{"sync", src, sinkURL(sinkDir, ""), "--namespace", "random.ns0"}, common...)
	r = run(t, runTimeout, changed...)
	if r.code != 1 {
		t.Fatalf("changed namespace mapping without --reset: exit %d, want 1:\n%s", r.code, r)
	}
	line = oneErrorLine(t, r)
	for _, w := range []string{"namespace mapping changed", "random.ns0", oldID, "--reset"} {
		if !strings.Contains(line, w) {
			t.Errorf("error line %q does not contain %q", line, w)
		}
	}
	sameState(t, unfinished, snapshotState(t, stateDir))

	mustRun(t, runTimeout, append(changed, "--reset")...)
	after := snapshotState(t, stateDir)
	if len(after) != 1 || after[0].Meta.ID == oldID || after[0].Meta.Phase != "done" {
		t.Errorf("after --reset the store holds %s, want only the new flow, done", describeState(after))
	}
	checkCopy(t, sinkDir, randomOptions(t, src), []int{0}, false)
}

// A second dsync on a flow that is running is refused at once with the lock
// message and exit 1; the first run is unaffected.
func TestLockedStateDir(t *testing.T) {
	dir := t.TempDir()
	sinkDir, stateDir := dir+"/sink", dir+"/state"
	src := "random://?namespaces=2&docs=40000&size=512&page=500"
	args := []string{"sync", src, sinkURL(sinkDir, "?delay=50ms"), "--mode", "initial",
		"--max-inflight", "1MiB", "--batch-bytes", "256KiB", "--writers", "4",
		"--state-dir", stateDir, "--progress", "json", "--log-file", dir + "/log"}
	first := start(t, args...)
	first.waitLine(time.Minute, "a progress line of phase copy", phaseIs("copy"))

	second := append(append([]string{}, args[:len(args)-2]...), "--log-file", dir+"/log2")
	r := run(t, badRunTimeout, second...)
	if first.exited() {
		t.Fatalf("the first run ended while the second ran: %s", first.res)
	}
	if r.code != 1 {
		t.Errorf("second run: exit %d, want 1:\n%s", r.code, r)
	}
	line := oneErrorLine(t, r)
	for _, w := range []string{"state directory " + stateDir, "in use by another dsync process", "pid " + strconv.Itoa(first.pid())} {
		if !strings.Contains(line, w) {
			t.Errorf("error line %q does not contain %q", line, w)
		}
	}
	if r.elapsed > 10*time.Second {
		t.Errorf("the refusal took %s", r.elapsed)
	}
	if r.stdout != "" {
		t.Errorf("stdout of the refused run: %q", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "log2")); err == nil && strings.Contains(string(b), "starting plugin") {
		t.Errorf("the refused run started plugins:\n%s", b)
	}

	if res := first.wait(runTimeout); res.code != 0 {
		t.Fatalf("first run: %s", res)
	}
	first.sessionGone(10 * time.Second)
	checkCopy(t, sinkDir, randomOptions(t, src), nil, true)
	if f := readSinkFacts(t, sinkDir); f.Counters.DocsWritten != 80000 {
		t.Errorf("%d documents written for 80000", f.Counters.DocsWritten)
	}
}
