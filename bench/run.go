package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procRun is what one dsync process (and the plugins it started) cost.
type procRun struct {
	Wall time.Duration
	// CPU is the user+system time of the coordinator and of the plugins it
	// reaped.
	CPU time.Duration
	// Coordinator and Plugins are the peaks sampled from /proc.
	Coordinator procPeak
	Plugins     []procPeak
	// WaitMaxRSS is ru_maxrss from wait4: the largest peak of the
	// coordinator and of the children it reaped, measured by the kernel.
	WaitMaxRSS uint64
}

// PluginsHWM is the sum of the plugins' peaks.
func (p procRun) PluginsHWM() uint64 {
	var s uint64
	for _, x := range p.Plugins {
		s += x.HWM
	}
	return s
}

// pluginPeaks formats the plugins' peaks: "null 62.3 MiB, random 48.8 MiB".
func (p procRun) pluginPeaks() string {
	var pl []string
	for _, x := range p.Plugins {
		pl = append(pl, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(x.Label, "plugin "), mib(x.HWM)))
	}
	return strings.Join(pl, ", ")
}

// running is a started dsync process whose memory is being sampled.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
	stop           chan struct{}
	wg             sync.WaitGroup
	sampler        *sampler
}

// startProc starts exe with args (and the extra environment variables
// env) and samples the peak RSS of it and of its children.
func startProc(ctx context.Context, exe string, args, env []string) (*running, error) {
	r := &running{stop: make(chan struct{})}
	r.cmd = exec.CommandContext(ctx, exe, args...)
	r.cmd.Env = append(cleanEnv(), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	r.sampler = newSampler(r.cmd.Process.Pid)
	r.wg.Go(func() { r.sampler.loop(r.stop) })
	return r, nil
}

// signal sends sig to the coordinator.
func (r *running) signal(sig os.Signal) error { return r.cmd.Process.Signal(sig) }

// wait waits for the process to exit and returns its costs; a non-zero
// exit is an error that shows the end of stderr.
func (r *running) wait() (procRun, error) {
	err := r.cmd.Wait()
	res := procRun{Wall: time.Since(r.start)}
	close(r.stop)
	r.wg.Wait()
	if err != nil {
		return res, fmt.Errorf("%s: %w; stderr:\n%s", r.cmd, err, tail(r.stderr.String(), 20))
	}
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.WaitMaxRSS = uint64(ru.Maxrss) << 10 // KiB on Linux
	}
	res.CPU = r.cmd.ProcessState.UserTime() + r.cmd.ProcessState.SystemTime()
	res.Coordinator, res.Plugins = r.sampler.peaks()
	if res.Coordinator.Samples == 0 {
		return res, fmt.Errorf("no RSS sample of the coordinator (pid %d): is /proc mounted?", r.cmd.Process.Pid)
	}
	return res, nil
}

// runProc runs exe to completion; see startProc.
func runProc(ctx context.Context, exe string, args, env []string) (procRun, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	r, err := startProc(ctx, exe, args, env)
	if err != nil {
		return procRun{}, "", err
	}
	res, err := r.wait()
	return res, r.stdout.String(), err
}

// withStateDir returns args with the stateDirArg placeholder replaced by a
// fresh temporary directory, and a function that removes it.
func withStateDir(args []string) ([]string, func(), error) {
	dir, err := os.MkdirTemp("", "dsync-bench-state-")
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(args))
	for i, a := range args {
		if a == stateDirArg {
			a = dir
		}
		out[i] = a
	}
	return out, func() { os.RemoveAll(dir) }, nil
}

// pathEnv is a PATH that finds the executables of dir first.
func pathEnv(dir string) string {
	return "PATH=" + dir + string(filepath.ListSeparator) + os.Getenv("PATH")
}

// cmdLine shows dsync with args for the report, the state directory
// placeholder unquoted.
func cmdLine(dsync string, args []string) string {
	q := quoteArgs(args)
	for i, a := range args {
		if a == stateDirArg {
			q[i] = `"` + stateDirArg + `"`
		}
	}
	return strings.Join(append([]string{dsync}, q...), " ")
}
