package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsyncio/dsync/connectors/random"
)

// syncResult is one end-to-end run of figure 2 (or of a figure that runs
// the same way).
type syncResult struct {
	Docs  int64
	Bytes int64
	Args  []string // after the executable; the state directory is a placeholder
	// Flow is the duration dsync reports for the flow (plan, copy,
	// checkpoints), without process and plugin start-up.
	Flow time.Duration
	procRun
}

func (s syncResult) DocsPerSec() float64 { return float64(s.Docs) / s.Wall.Seconds() }
func (s syncResult) MBPerSec() float64   { return float64(s.Bytes) / 1e6 / s.Wall.Seconds() }

// syncSize is every run of one dataset size.
type syncSize struct {
	Docs int64
	Runs []syncResult
}

// medianOf returns the median of f over the runs.
func (z syncSize) medianOf(f func(syncResult) float64) float64 {
	v := make([]float64, len(z.Runs))
	for i, r := range z.Runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// DocsPerSec is the median throughput.
func (z syncSize) DocsPerSec() float64 { return z.medianOf(syncResult.DocsPerSec) }

// MBPerSec is the median throughput in MB/s.
func (z syncSize) MBPerSec() float64 { return z.medianOf(syncResult.MBPerSec) }

// CoordinatorHWM is the median of the coordinator's peak RSS.
func (z syncSize) CoordinatorHWM() uint64 {
	return uint64(z.medianOf(func(s syncResult) float64 { return float64(s.Coordinator.HWM) }))
}

// CoordinatorPeak is the largest peak RSS of the coordinator over the runs.
func (z syncSize) CoordinatorPeak() uint64 {
	var m uint64
	for _, r := range z.Runs {
		m = max(m, r.Coordinator.HWM)
	}
	return m
}

// procPeak is the peak RSS of one process.
type procPeak struct {
	PID     int
	Label   string // "coordinator", or "plugin <scheme>"
	HWM     uint64 // VmHWM, bytes
	Samples int
}

// stateDirArg stands for the fresh state directory of each run in the
// report.
const stateDirArg = "$(mktemp -d)"

var summaryRE = regexp.MustCompile(`(?m)^flow \S+ done in (\S+): (\d+) docs `)

// measureSync runs `dsync sync` of n random documents into null:// with a
// fresh state directory and samples the peak RSS of every process.
func measureSync(ctx context.Context, cfg config, n int64) (syncResult, error) {
	return measureSyncArgs(ctx, cfg, n, "null://", nil, nil)
}

// measureSyncArgs runs `dsync sync` of n random documents of docSize bytes
// into sink with the extra flags extra and environment env, with a fresh
// state directory, and checks that n documents were copied.
func measureSyncArgs(ctx context.Context, cfg config, n int64, sink string, extra, env []string) (syncResult, error) {
	src := randomURL(n)
	opts, err := random.ParseURL(src)
	if err != nil {
		return syncResult{}, err
	}
	res := syncResult{
		Docs:  n,
		Bytes: n * int64(opts.DocSize()),
		Args:  append([]string{"sync", src, sink, "--mode", "initial", "--progress", "none"}, extra...),
	}
	res.Args = append(res.Args, "--state-dir", stateDirArg)
	args, cleanup, err := withStateDir(res.Args)
	if err != nil {
		return res, err
	}
	defer cleanup()
	var stdout string
	res.procRun, stdout, err = runProc(ctx, cfg.dsync, args, env)
	if err != nil {
		return res, err
	}
	m := summaryRE.FindStringSubmatch(stdout)
	if m == nil {
		return res, fmt.Errorf("no summary line in the output of dsync sync:\n%s", tail(stdout, 20))
	}
	if res.Flow, err = time.ParseDuration(m[1]); err != nil {
		return res, fmt.Errorf("summary line %q: %w", m[0], err)
	}
	if copied, _ := strconv.ParseInt(m[2], 10, 64); copied != n {
		return res, fmt.Errorf("dsync copied %d docs, want %d", copied, n)
	}
	return res, nil
}

// randomURL is the random:// source of n documents of every end-to-end
// figure.
func randomURL(n int64) string {
	return fmt.Sprintf("random://?namespaces=1&docs=%d&size=%d&partitions=%d", n, docSize, syncPartitions)
}

// cleanEnv is the environment without DSYNC_ variables, which would change
// the flags of the measured command.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(len(l)-lines, 0):], "\n")
}

// sampler polls the VmHWM of a process and of its children. VmHWM is a
// process's own peak, so polling only risks missing growth in the last
// interval before a process exits; wait4's ru_maxrss cross-checks it.
type sampler struct {
	root  int
	procs map[int]*procPeak
}

func newSampler(pid int) *sampler {
	return &sampler{root: pid, procs: map[int]*procPeak{pid: {PID: pid, Label: "coordinator"}}}
}

func (s *sampler) loop(stop <-chan struct{}) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample() {
	for _, pid := range children(s.root) {
		if _, ok := s.procs[pid]; !ok {
			s.procs[pid] = &procPeak{PID: pid}
		}
	}
	for pid, p := range s.procs {
		if p.Label == "" {
			// Until the child has exec'd, it shares the coordinator's
			// memory and command line: a plugin counts from its exec on.
			p.Label = pluginLabel(pid)
			if p.Label == "" {
				continue
			}
		}
		st, err := readStatus(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // exited
		}
		if hwm, ok := st["VmHWM"]; ok {
			p.HWM = max(p.HWM, hwm)
			p.Samples++
		}
	}
}

// peaks returns the coordinator's peak and the plugins' peaks by label.
func (s *sampler) peaks() (procPeak, []procPeak) {
	var plugins []procPeak
	for pid, p := range s.procs {
		if pid != s.root && p.Samples > 0 {
			plugins = append(plugins, *p)
		}
	}
	slices.SortFunc(plugins, func(a, b procPeak) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return a.PID - b.PID
	})
	return *s.procs[s.root], plugins
}

// children lists the child processes of pid, from
// /proc/PID/task/*/children or, where the kernel lacks it, by scanning
// /proc for the parent pid.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	found := false
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		found = true
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	if found {
		return out
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		// The fields after the parenthesised command: state, ppid, ...
		i := bytes.LastIndexByte(b, ')')
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// pluginLabel names a plugin process by its command line, "plugin random"
// for `dsync plugin serve connector random`; "" while the process is not
// (yet) a plugin.
func pluginLabel(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i := 0; i+3 < len(args); i++ {
		if args[i] == "plugin" && args[i+1] == "serve" {
			return "plugin " + args[i+3]
		}
	}
	// An external plugin: dsync-connector-<scheme> or
	// dsync-transform-<name>.
	base := filepath.Base(args[0])
	for _, prefix := range []string{"dsync-connector-", "dsync-transform-"} {
		if name, ok := strings.CutPrefix(base, prefix); ok && name != "" {
			return "plugin " + name
		}
	}
	return ""
}
