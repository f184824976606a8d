package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin/runner"
)

// procRunner runs a plugin executable for go-plugin (a runner.Runner). Unlike
// go-plugin's own runner it records the handshake line and the exit status
// for error messages, runs the plugin in its own process group and kills
// the group with it, sets the parent-death signal where the platform has
// one, and gives the plugin a stdin pipe whose write end only the host
// holds: the plugin reads EOF on stdin once the host is gone, however it
// died.
type procRunner struct {
	cmd    *exec.Cmd
	stdout *lineRecorder
	stderr io.ReadCloser
	stdinR *os.File
	stdinW *os.File

	mu      sync.Mutex
	proc    *os.Process
	exited  chan struct{}
	waitErr error
}

var _ runner.Runner = (*procRunner)(nil)

func newProcRunner(path string, args, env []string) (*procRunner, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	setProcAttrs(cmd)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = r
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return &procRunner{
		cmd:    cmd,
		stdout: &lineRecorder{r: stdout},
		stderr: stderr,
		stdinR: r,
		stdinW: w,
		exited: make(chan struct{}),
	}, nil
}

func (r *procRunner) Start(context.Context) error {
	err := r.cmd.Start()
	r.stdinR.Close()
	if err != nil {
		r.stdinW.Close()
		return err
	}
	r.mu.Lock()
	r.proc = r.cmd.Process
	r.mu.Unlock()
	return nil
}

func (r *procRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.mu.Lock()
	r.waitErr = err
	// Children the plugin left behind must not outlive it.
	killGroup(r.proc.Pid)
	r.mu.Unlock()
	r.stdinW.Close()
	close(r.exited)
	return err
}

func (r *procRunner) Kill(context.Context) error {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	killGroup(p.Pid)
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.cmd.Path }

// ID is the pid, or "" before the process started.
func (r *procRunner) ID() string {
	if pid := r.pid(); pid != 0 {
		return strconv.Itoa(pid)
	}
	return ""
}

// Diagnose returns nothing: the host builds its own messages.
func (r *procRunner) Diagnose(context.Context) string { return "" }

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.Pid
}

func (r *procRunner) started() bool { return r.pid() != 0 }

func (r *procRunner) hasExited() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the process to be reaped.
func (r *procRunner) waitExit(d time.Duration) bool {
	if !r.started() {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.exited:
		return true
	case <-t.C:
		return false
	}
}

// exitStatus describes how the process ended, e.g. "exit status 3" or
// "signal: killed"; "running" if it has not.
func (r *procRunner) exitStatus() string {
	if !r.hasExited() {
		return "running"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waitErr == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(r.waitErr, &ee) {
		return ee.ProcessState.String()
	}
	return r.waitErr.Error()
}

// lineRecorder passes a plugin's stdout to go-plugin and keeps its first
// line (the handshake), up to 4 KiB.
type lineRecorder struct {
	r io.ReadCloser

	mu   sync.Mutex
	buf  []byte
	done bool // first line complete
}

func (l *lineRecorder) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.mu.Lock()
		if !l.done {
			chunk := p[:n]
			if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
				chunk = chunk[:i]
				l.done = true
			}
			if room := 4096 - len(l.buf); room > 0 {
				l.buf = append(l.buf, chunk[:min(room, len(chunk))]...)
			}
		}
		l.mu.Unlock()
	}
	return n, err
}

func (l *lineRecorder) Close() error { return l.r.Close() }

// first returns the first line read so far and whether anything was read.
func (l *lineRecorder) first() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.TrimRight(l.buf, "\r")), len(l.buf) > 0 || l.done
}
