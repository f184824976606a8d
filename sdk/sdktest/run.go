package sdktest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TB is the part of testing.TB the suite uses. *testing.T implements it;
// RunCases supplies its own implementation, so the suite also runs outside
// `go test`. Fatalf and Skipf end the calling goroutine, which must be the
// one running the case.
type TB interface {
	Name() string
	Helper()
	// Context is canceled just before the functions registered with Cleanup
	// run.
	Context() context.Context
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
}

var _ TB = (*testing.T)(nil)

// Status is the outcome of one case.
type Status int

// Case outcomes.
const (
	StatusPass Status = iota
	StatusFail
	StatusSkip
)

// String returns "pass", "fail" or "skip".
func (s Status) String() string {
	switch s {
	case StatusPass:
		return "pass"
	case StatusFail:
		return "fail"
	case StatusSkip:
		return "skip"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// CaseResult is the outcome of one case run by RunCases.
type CaseResult struct {
	// Name is the stable case name, e.g. "source/plan_covers_all_docs".
	Name   string
	Status Status
	// Reason holds the failure messages, one per line, for StatusFail, and
	// the reason for StatusSkip; it is empty for StatusPass.
	Reason   string
	Duration time.Duration
	// Log holds the lines the case logged, plugin stderr included.
	Log []string
}

// suiteCase is one named check of the suite.
type suiteCase struct {
	name string
	run  func(e *env)
	// transform is set for the cases of transform plugins.
	transform bool
}

// suite lists every case in the order they run. Names are stable: tools
// and Harness.Skip refer to them.
var suite = []suiteCase{
	{"info/get_info", caseGetInfo, false},
	{"info/id_stable_across_restart", caseIDStable, false},
	{"info/capabilities_consistent", caseCapabilities, false},
	{"info/calls_before_configure", caseBeforeConfigure, false},
	{"configure/rejects_bad_urls", caseBadURLs, false},
	{"errors/invalid_argument_class", caseInvalidArgumentClass, false},
	{"errors/unimplemented_class", caseUnimplementedClass, false},
	{"source/plan_covers_all_docs", casePlanCoversAllDocs, false},
	{"source/cursors_durable", caseCursorsDurable, false},
	{"source/get_by_ids", caseGetByIDs, false},
	{"source/updates_in_order_and_resumable", caseUpdates, false},
	{"sink/write_data_idempotent", caseWriteDataIdempotent, false},
	{"sink/write_data_large_batch", caseWriteDataLarge, false},
	{"sink/write_updates_ordered", caseWriteUpdatesOrdered, false},
	{"cancel/unary_calls", caseCancelUnary, false},
	{"cancel/stream_mid_way", caseCancelStream, false},
	{"transform/get_transform_info", caseTransformInfo, true},
	{"transform/calls_before_configure", caseTransformBeforeConfigure, true},
	{"transform/configure_rejects_bad_specs", caseTransformBadSpecs, true},
	{"transform/documents_deterministic", caseTransformDocs, true},
	{"transform/updates_deterministic_and_ordered", caseTransformUpdates, true},
	{"transform/errors_keep_their_class", caseTransformErrorClass, true},
}

// cases returns the cases that apply to the plugin h describes: the
// transform cases for a transform, the others for a connector.
func (h *Harness) cases() []suiteCase {
	var out []suiteCase
	for _, c := range suite {
		if c.transform == (h.Transform != nil) {
			out = append(out, c)
		}
	}
	return out
}

// CaseNames returns the names of the suite's cases in the order they run:
// the connector cases, then the transform cases. A run only has the cases
// of the plugin's kind (see Harness.Transform).
func CaseNames() []string {
	names := make([]string, len(suite))
	for i, c := range suite {
		names[i] = c.name
	}
	return names
}

func isCase(name string) bool {
	for _, c := range suite {
		if c.name == name {
			return true
		}
	}
	return false
}

// Run runs every case of the suite that applies to the plugin h describes
// (connector or transform cases), each as a subtest of t named after the
// case. Do not call t.Parallel around it unless Harness.NoLeakCheck is set.
func Run(t *testing.T, h Harness) {
	t.Helper()
	h, err := h.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range h.cases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, &h, c) })
	}
}

// RunCases runs every case of the suite that applies to the plugin h
// describes (connector or transform cases), one after the other, without
// package testing, and returns the results.
// report, when not nil, is called with each result as soon as it is known.
// Canceling ctx stops the running case and skips the remaining ones. The
// error is non-nil only when h is invalid.
func RunCases(ctx context.Context, h Harness, report func(CaseResult)) ([]CaseResult, error) {
	h, err := h.withDefaults()
	if err != nil {
		return nil, err
	}
	cases := h.cases()
	results := make([]CaseResult, 0, len(cases))
	for _, c := range cases {
		var res CaseResult
		if err := ctx.Err(); err != nil {
			res = CaseResult{Name: c.name, Status: StatusSkip, Reason: fmt.Sprintf("not run: %v", err)}
		} else {
			ct := newCaseT(ctx, c.name)
			start := time.Now()
			ct.run(func(t TB) { runCase(t, &h, c) })
			res = ct.result()
			res.Duration = time.Since(start)
		}
		results = append(results, res)
		if report != nil {
			report(res)
		}
	}
	return results, nil
}

func runCase(t TB, h *Harness, c suiteCase) {
	t.Helper()
	if reason, ok := h.Skip[c.name]; ok {
		t.Skipf("skipped by Harness.Skip: %s", reason)
	}
	if !h.NoLeakCheck {
		// Registered first so that it runs last, after the plugins stopped.
		checkLeaks(t, h.Connector != nil)
	}
	c.run(newEnv(t, h))
}

// leakWait bounds how long the leak check waits for goroutines to end: gRPC
// and go-plugin goroutines of a closed connection end shortly after it.
const leakWait = 5 * time.Second

// checkLeaks fails t if goroutines started during the case are still
// running once its cleanups are done.
func checkLeaks(t TB, inProcess bool) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	if inProcess {
		// go-plugin's in-process (test mode) server copies the plugin's
		// stdio pipes forever; nothing ever closes them.
		opts = append(opts, goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.copyChan"))
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				where := "on the host side"
				if inProcess {
					where = "in the test process (host and in-process plugin)"
				}
				t.Errorf("goroutines leaked %s, still running %v after the case ended: %v", where, leakWait, err)
				return
			}
		}
	})
}

// caseT implements TB for RunCases.
type caseT struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	failed   bool
	skipped  bool
	done     bool
	reasons  []string
	logs     []string
	cleanups []func()
}

func newCaseT(parent context.Context, name string) *caseT {
	ctx, cancel := context.WithCancel(parent)
	return &caseT{name: name, ctx: ctx, cancel: cancel}
}

func (c *caseT) Name() string             { return c.name }
func (c *caseT) Helper()                  {}
func (c *caseT) Context() context.Context { return c.ctx }

func (c *caseT) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

func (c *caseT) TempDir() string {
	dir, err := os.MkdirTemp("", "sdktest-")
	if err != nil {
		c.Fatalf("TempDir: %v", err)
	}
	c.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			c.Errorf("TempDir cleanup: %v", err)
		}
	})
	return dir
}

func (c *caseT) Logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.logs = append(c.logs, fmt.Sprintf(format, args...))
	}
}

func (c *caseT) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = true
	c.reasons = append(c.reasons, msg)
	c.logs = append(c.logs, msg)
}

func (c *caseT) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	runtime.Goexit()
}

func (c *caseT) Skipf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.skipped = true
	if !c.failed {
		c.reasons = append(c.reasons, msg)
	}
	c.logs = append(c.logs, msg)
	c.mu.Unlock()
	runtime.Goexit()
}

func (c *caseT) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// run runs fn in a goroutine of its own, so that Fatalf and Skipf can end
// it, then the cleanups, last registered first, each in its own goroutine
// for the same reason.
func (c *caseT) run(fn func(TB)) {
	c.call(fn)
	c.cancel()
	for {
		c.mu.Lock()
		n := len(c.cleanups)
		if n == 0 {
			c.done = true
			c.mu.Unlock()
			return
		}
		f := c.cleanups[n-1]
		c.cleanups = c.cleanups[:n-1]
		c.mu.Unlock()
		c.call(func(TB) { f() })
	}
}

func (c *caseT) call(fn func(TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				c.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		fn(c)
	}()
	<-done
}

func (c *caseT) result() CaseResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	res := CaseResult{Name: c.name, Status: StatusPass, Log: c.logs}
	switch {
	case c.failed:
		res.Status = StatusFail
		res.Reason = strings.Join(c.reasons, "\n")
	case c.skipped:
		res.Status = StatusSkip
		res.Reason = strings.Join(c.reasons, "\n")
	}
	return res
}
