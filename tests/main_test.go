package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsyncio/dsync/tests/testsink"
)

// env is what TestMain prepares for every test.
var env struct {
	// bin holds dsync and dsync-connector-testsink; it is first on the
	// PATH of child processes.
	bin string
	// dsync is the dsync executable.
	dsync string
	// sinkfacts is the sinkfacts executable (tests/internal/sinkfacts).
	sinkfacts string
	// childEnv is the environment of child processes: the test's, without
	// DSYNC_* variables, with bin first on PATH and a short private TMPDIR
	// (plugin sockets live there; unix socket paths are short).
	childEnv []string
}

func TestMain(m *testing.M) { os.Exit(mainTest(m)) }

func mainTest(m *testing.M) int {
	flag.Parse()
	if runtime.GOOS != "linux" {
		fmt.Fprintln(os.Stderr, "tests: the end-to-end tests need Linux (/proc, parent-death signals)")
		return 1
	}
	root, err := os.MkdirTemp("", "dsync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(root)
	env.bin = filepath.Join(root, "bin")
	tmp := filepath.Join(root, "tmp")
	for _, d := range []string{env.bin, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "tests:", err)
			return 1
		}
	}
	// Built without -race even under go test -race: the binaries are what
	// users run, and the crash tests depend on their speed.
	start := time.Now()
	build := exec.Command("go", "build", "-o", env.bin+string(filepath.Separator),
		"github.com/dsyncio/dsync/cmd/dsync", testsink.Package, "github.com/dsyncio/dsync/tests/internal/sinkfacts")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build: %v\n%s", err, out)
		return 1
	}
	env.dsync = filepath.Join(env.bin, "dsync")
	env.sinkfacts = filepath.Join(env.bin, "sinkfacts")
	for _, exe := range []string{env.dsync, env.sinkfacts, filepath.Join(env.bin, testsink.BinaryName)} {
		if _, err := os.Stat(exe); err != nil {
			fmt.Fprintln(os.Stderr, "tests: built binary missing:", err)
			return 1
		}
	}
	if testing.Verbose() {
		fmt.Printf("tests: built dsync, %s and sinkfacts in %s\n", testsink.BinaryName, time.Since(start).Round(time.Millisecond))
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DSYNC_") || strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		env.childEnv = append(env.childEnv, kv)
	}
	env.childEnv = append(env.childEnv,
		"PATH="+env.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TMPDIR="+tmp)
	return m.Run()
}

// result is how a dsync run ended.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// proc is a running dsync.
type proc struct {
	t       testing.TB
	args    []string
	cmd     *exec.Cmd
	started time.Time

	mu     sync.Mutex
	lines  []string // stdout lines so far
	more   chan struct{}
	stderr bytes.Buffer

	done chan struct{} // closed once the process has exited
	res  result
}

// start starts dsync with args. The process is killed when the test ends.
func start(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, more: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(env.dsync, args...)
	p.cmd.Env = env.childEnv
	// A session of its own: its plugins stay in it after dsync dies, which
	// is how sessionGone finds them.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start dsync: %v", err)
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		readers.Wait()
		err := p.cmd.Wait()
		p.mu.Lock()
		p.res = result{code: exitCode(err), stdout: strings.Join(p.lines, "\n"), stderr: p.stderr.String(), elapsed: time.Since(p.started)}
		if len(p.lines) > 0 {
			p.res.stdout += "\n"
		}
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1000
}

// pid returns the process id of dsync.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to dsync.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to dsync: %v", sig, err)
	}
}

// exited reports whether dsync has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for dsync to exit, at most timeout; past it, it kills dsync
// and fails the test.
func (p *proc) wait(timeout time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("dsync %s did not exit within %s; killed:\n%s", strings.Join(p.args, " "), timeout, p.res)
	}
	return p.res
}

// lineCount returns the number of stdout lines printed so far.
func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitLine waits for a stdout line, from the first one, for which match
// returns true, and returns it. It fails the test when dsync exits first or
// timeout passes.
func (p *proc) waitLine(timeout time.Duration, what string, match func(string) bool) string {
	p.t.Helper()
	return p.waitLineFrom(0, timeout, what, match)
}

// waitLineFrom is waitLine from line number from (0-based) on.
func (p *proc) waitLineFrom(from int, timeout time.Duration, what string, match func(string) bool) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for i := from; ; {
		p.mu.Lock()
		lines, more := p.lines, p.more
		p.mu.Unlock()
		for ; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i]
			}
		}
		select {
		case <-more:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if n > i {
				continue
			}
			p.t.Fatalf("dsync exited before printing %s:\n%s", what, p.res)
		case <-deadline:
			p.t.Fatalf("dsync printed no %s within %s", what, timeout)
		}
	}
}

// run runs dsync with args to the end, at most timeout, and checks that no
// plugin outlives it.
func run(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	p := start(t, args...)
	r := p.wait(timeout)
	p.sessionGone(10 * time.Second)
	return r
}

// mustRun runs dsync and fails the test unless it exits 0.
func mustRun(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	r := run(t, timeout, args...)
	if r.code != 0 {
		t.Fatalf("dsync %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// progressLine is a JSON progress line of --progress json.
type progressLine struct {
	Flow            string  `json:"flow"`
	Phase           string  `json:"phase"`
	Docs            uint64  `json:"docs"`
	PartitionsDone  int     `json:"partitions_done"`
	PartitionsTotal int     `json:"partitions_total"`
	CDCEvents       uint64  `json:"cdc_events"`
	CDCLagSeconds   float64 `json:"cdc_lag_seconds"`
	Final           bool    `json:"final"`
}

// parseProgress returns the progress line in s, if it is one.
func parseProgress(s string) (progressLine, bool) {
	var pl progressLine
	if !strings.HasPrefix(s, "{") || json.Unmarshal([]byte(s), &pl) != nil || pl.Phase == "" {
		return progressLine{}, false
	}
	return pl, true
}

// phaseIs matches progress lines of one of phases.
func phaseIs(phases ...string) func(string) bool {
	return func(s string) bool {
		pl, ok := parseProgress(s)
		return ok && slices.Contains(phases, pl.Phase)
	}
}

// cutoverLine is the line --progress json prints per update stream after a
// cut-over.
type cutoverLine struct {
	Cursor string `json:"cutover_cursor"`
	Stream int    `json:"stream"`
	Events uint64 `json:"events"`
}

// cutovers returns the cut-over lines of stdout.
func cutovers(stdout string) []cutoverLine {
	var out []cutoverLine
	for line := range strings.Lines(stdout) {
		var c cutoverLine
		if json.Unmarshal([]byte(line), &c) == nil && c.Cursor != "" {
			out = append(out, c)
		}
	}
	return out
}

// finalProgress returns the last progress line of stdout, which must be
// marked final.
func finalProgress(t testing.TB, stdout string) progressLine {
	t.Helper()
	var last progressLine
	found := false
	for line := range strings.Lines(stdout) {
		if pl, ok := parseProgress(strings.TrimSpace(line)); ok {
			last, found = pl, true
		}
	}
	if !found || !last.Final {
		t.Fatalf("no final progress line in stdout:\n%s", stdout)
	}
	return last
}

// oneErrorLine fails the test unless stderr is exactly one line starting
// with "dsync: ", and returns it.
func oneErrorLine(t testing.TB, r result) string {
	t.Helper()
	s := strings.TrimSuffix(r.stderr, "\n")
	if s == "" || strings.Contains(s, "\n") || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(s, "dsync: ") {
		t.Errorf("stderr is not one line starting with \"dsync: \":\n%s", r)
	}
	return s
}

// process is a process found in /proc.
type process struct {
	pid     int
	ppid    int
	sid     int // session id
	state   byte
	cmdline string // arguments joined by spaces
}

// readProcess reads /proc/<pid>; ok is false once the process is gone.
func readProcess(pid int) (process, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return process{}, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return process{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return process{}, false
	}
	// state ppid pgrp session ...
	if len(f) < 4 {
		return process{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	sid, _ := strconv.Atoi(f[3])
	cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return process{pid: pid, ppid: ppid, sid: sid, state: f[0][0], cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))}, true
}

// processes returns the live (not zombie) processes for which keep returns
// true.
func processes(t testing.TB, keep func(process) bool) []process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var out []process
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcess(n); ok && !exited(p) && keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// exited reports whether a process is done with its resources. A thread
// group leader shows state Z as soon as it exits while its other threads may
// still be exiting; its files (and their locks) are released only with the
// last thread, so it counts as running until it is alone.
func exited(p process) bool {
	if p.state != 'Z' {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
	return err != nil || len(tasks) <= 1
}

// children returns the live child processes of pid.
func children(t testing.TB, pid int) []process {
	t.Helper()
	return processes(t, func(p process) bool { return p.ppid == pid })
}

// sessionGone waits until no process of dsync's session is left, at most
// timeout: dsync has exited, and each plugin must exit by itself once its
// host is gone, even after a SIGKILL. The plugins run in dsync's session
// (they get process groups of their own, not sessions).
func (p *proc) sessionGone(timeout time.Duration) {
	p.t.Helper()
	<-p.done
	deadline := time.Now().Add(timeout)
	for {
		left := processes(p.t, func(q process) bool { return q.sid == p.pid() })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("processes still run %s after their dsync ended: %+v", timeout, left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitChild waits for a child of pid whose command line contains substr and
// whose pid is not in exclude.
func waitChild(t testing.TB, pid int, substr string, exclude []int, timeout time.Duration) process {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, c := range children(t, pid) {
			if strings.Contains(c.cmdline, substr) && !slices.Contains(exclude, c.pid) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no child process of %d running %q within %s (children: %+v)", pid, substr, timeout, children(t, pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
