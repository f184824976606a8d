package sdktest_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

// helperEnv makes the test binary serve the named memConn variant as a
// plugin instead of running tests.
const helperEnv = "SDKTEST_HELPER_CONNECTOR"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		sdk.Serve(sdk.Plugin{Connector: newConnector(v)})
		os.Exit(0)
	}
	if v := os.Getenv(transformHelperEnv); v != "" {
		sdk.Serve(sdk.Plugin{Transform: newTransform(v)})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command re-executes the test binary as the plugin of a variant.
func command(variant string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+variant)
		if _, ok := os.LookupEnv("GORACE"); !ok {
			// A race-enabled plugin would otherwise sleep 1 s at exit.
			cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
		}
		return cmd
	}
}

var counts = map[string]int{"db.a": 40, "db.b": 40}

// harness is the harness of a memConn variant run as a subprocess.
func harness(variant string) sdktest.Harness {
	return sdktest.Harness{
		Command:              command(variant),
		URL:                  func(sdktest.TB) string { return "mem://test?ns=db.a,db.b&docs=40" },
		ExpectedCounts:       counts,
		ReadBackWithGetByIDs: true,
		Expect:               sdktest.Expect{Source: true, Sink: true, Updates: true, GetByIDs: true},
	}
}

func TestConformance(t *testing.T) {
	sdktest.Run(t, harness(variantGood))
}

func TestConformanceInProcess(t *testing.T) {
	h := harness(variantGood)
	h.Command = nil
	h.Connector = func() sdk.Connector { return newConnector(variantGood) }
	sdktest.Run(t, h)
}

// TestConformanceMutate runs the suite against a source whose changes come
// from outside: Mutate appends them to the change log the stream tails.
func TestConformanceMutate(t *testing.T) {
	h := harness(variantGood)
	h.URL = mutateURL
	h.Mutate = mutate
	sdktest.Run(t, h)
}

// mutateURL names a dataset whose change stream tails a log file.
func mutateURL(t sdktest.TB) string {
	return "mem://test?ns=db.a,db.b&docs=40&log=" + url.QueryEscape(filepath.Join(t.TempDir(), "changes.jsonl"))
}

// mutate appends a fixed set of changes to the change log of the URL.
func mutate(t sdktest.TB, rawURL string) []sdktest.Change {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	path := u.Query().Get("log")
	type op struct {
		ns  string
		id  int64
		op  string
		doc bson.D
	}
	ops := []op{
		{"db.a", 1, "update", bson.D{{Key: "_id", Value: int64(1)}, {Key: "v", Value: int32(100)}}},
		{"db.a", 2, "delete", nil},
		{"db.b", 3, "update", bson.D{{Key: "_id", Value: int64(3)}, {Key: "v", Value: int32(1)}}},
		{"db.a", 1, "delete", nil},
		{"db.a", 1, "insert", bson.D{{Key: "_id", Value: int64(1)}, {Key: "v", Value: int32(101)}}},
		{"db.a", 100, "insert", bson.D{{Key: "_id", Value: int64(100)}, {Key: "new", Value: true}}},
		{"db.b", 3, "delete", nil},
		{"db.a", 2, "insert", bson.D{{Key: "_id", Value: int64(2)}}},
		{"db.b", 4, "update", bson.D{{Key: "_id", Value: int64(4)}, {Key: "v", Value: int32(2)}}},
		{"db.a", 100, "update", bson.D{{Key: "_id", Value: int64(100)}, {Key: "new", Value: false}}},
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	defer f.Close()
	changes := make([]sdktest.Change, 0, len(ops))
	for _, o := range ops {
		line := logLine{NS: o.ns, ID: o.id, Op: o.op}
		c := sdktest.Change{Namespace: o.ns, ID: o.id, Delete: o.op == "delete"}
		if o.doc != nil {
			line.Doc, err = bson.MarshalExtJSON(o.doc, true, false)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			c.Doc = o.doc
		}
		b, _ := json.Marshal(line)
		if _, err := f.Write(append(b, '\n')); err != nil {
			t.Fatalf("write change log: %v", err)
		}
		changes = append(changes, c)
	}
	return changes
}

// only returns a Skip map that leaves just the named cases to run.
func only(names ...string) map[string]string {
	skip := map[string]string{}
	for _, n := range sdktest.CaseNames() {
		if !slices.Contains(names, n) {
			skip[n] = "not under test"
		}
	}
	return skip
}

// connectorCases returns the names of the cases run against a connector.
func connectorCases() []string {
	var out []string
	for _, n := range sdktest.CaseNames() {
		if !strings.HasPrefix(n, "transform/") {
			out = append(out, n)
		}
	}
	return out
}

func runCases(t *testing.T, h sdktest.Harness) map[string]sdktest.CaseResult {
	t.Helper()
	results, err := sdktest.RunCases(t.Context(), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]sdktest.CaseResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	return byName
}

// TestBrokenConnectors proves that each misbehaviour fails the case meant
// to catch it, with a reason that names the problem.
func TestBrokenConnectors(t *testing.T) {
	tests := []struct {
		variant   string
		inProcess bool
		cases     []string
		reason    string
		mutate    bool
	}{
		{variantDupPlan, false, []string{"source/plan_covers_all_docs"}, "is listed twice", false},
		{variantVolatileCursor, false, []string{"source/cursors_durable"}, "is returned again: the cursor does not resume", false},
		{variantNonIdempotent, false, []string{"sink/write_data_idempotent"}, "writes must be idempotent", false},
		{variantReorder, false, []string{"sink/write_updates_ordered"}, `id "sdktest-x" is missing`, false},
		{variantPlainError, false, []string{"configure/rejects_bad_urls"}, `want kind "invalid argument"`, false},
		{variantPlainError, false, []string{"errors/invalid_argument_class"}, "gRPC code Internal, want InvalidArgument", false},
		{variantUnstableID, false, []string{"info/id_stable_across_restart"}, "id changed across a restart", false},
		{variantBadResume, false, []string{"source/updates_in_order_and_resumable"}, "differs at event 0", false},
		{variantIgnoresCancel, true, []string{"cancel/stream_mid_way"}, "goroutines leaked", false},
		{variantExits, false, []string{"source/get_by_ids"}, "exited by itself during the case; a plugin runs until its host stops it\nlast plugin stderr lines:\n  panic: memconn: giving up", false},
		{variantStreamReorder, false, []string{"source/updates_in_order_and_resumable"},
			`id {"$numberLong":"1"}: Mutate made [write delete write] in this order; the stream delivered [write write delete]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.variant+"/"+tt.cases[0], func(t *testing.T) {
			h := harness(tt.variant)
			if tt.mutate {
				h.URL = mutateURL
				h.Mutate = mutate
			}
			if tt.inProcess {
				h.Command = nil
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				h.Connector = func() sdk.Connector {
					c := newConnector(tt.variant).(*memConn)
					c.release = release
					return c
				}
			}
			h.Skip = only(tt.cases...)
			res := runCases(t, h)
			for _, name := range tt.cases {
				r := res[name]
				if r.Status != sdktest.StatusFail {
					t.Fatalf("case %s: status %s, want fail; reason %q\nlog:\n%s", name, r.Status, r.Reason, strings.Join(r.Log, "\n"))
				}
				if !strings.Contains(r.Reason, tt.reason) {
					t.Errorf("case %s failed with reason %q; want it to mention %q", name, r.Reason, tt.reason)
				}
				t.Logf("%s: %s", name, r.Reason)
			}
		})
	}
}

// TestCapabilityGating checks that cases a plugin's role does not cover are
// skipped with a reason, and that the rest pass.
func TestCapabilityGating(t *testing.T) {
	tests := []struct {
		variant string
		skipped map[string]string // case -> reason fragment
	}{
		{variantSinkOnly, map[string]string{
			"source/plan_covers_all_docs":           "not a source",
			"source/cursors_durable":                "not a source",
			"source/get_by_ids":                     "not a source",
			"source/updates_in_order_and_resumable": "not a source",
			"cancel/stream_mid_way":                 "not a source",
		}},
		{variantSourceOnly, map[string]string{
			"source/get_by_ids":                     "get_by_ids",
			"source/updates_in_order_and_resumable": "updates capability",
			"cancel/stream_mid_way":                 "updates capability",
			"sink/write_data_idempotent":            "not a sink",
			"sink/write_data_large_batch":           "not a sink",
			"sink/write_updates_ordered":            "not a sink",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			h := harness(tt.variant)
			h.Expect = sdktest.Expect{}
			h.ReadBackWithGetByIDs = false
			for name, r := range runCases(t, h) {
				frag, wantSkip := tt.skipped[name]
				switch {
				case wantSkip && (r.Status != sdktest.StatusSkip || !strings.Contains(r.Reason, frag)):
					t.Errorf("case %s: %s %q; want skip mentioning %q", name, r.Status, r.Reason, frag)
				case !wantSkip && r.Status != sdktest.StatusPass:
					t.Errorf("case %s: %s %q; want pass\nlog:\n%s", name, r.Status, r.Reason, strings.Join(r.Log, "\n"))
				}
			}
		})
	}
}

// TestExpectCatchesMissingCapability: a plugin that stops claiming an
// expected role fails instead of having its cases skipped silently.
func TestExpectCatchesMissingCapability(t *testing.T) {
	h := harness(variantSinkOnly)
	h.Skip = only("info/capabilities_consistent")
	r := runCases(t, h)["info/capabilities_consistent"]
	if r.Status != sdktest.StatusFail || !strings.Contains(r.Reason, "Harness.Expect.Source is set") {
		t.Fatalf("status %s, reason %q; want a failure about Harness.Expect.Source", r.Status, r.Reason)
	}
}

// TestRunCasesOutcomes covers the TB that RunCases provides: Fatalf ends a
// case as failed, Skipf as skipped, a panic as failed, and cleanups run.
func TestRunCasesOutcomes(t *testing.T) {
	var cleaned []string
	h := harness(variantGood)
	h.Skip = only("info/get_info")
	h.URL = func(t sdktest.TB) string {
		t.Cleanup(func() { cleaned = append(cleaned, t.Name()) })
		switch os.Getenv("SDKTEST_OUTCOME") {
		case "fatal":
			t.Fatalf("harness gave up")
		case "skip":
			t.Skipf("no server here")
		case "panic":
			panic("boom")
		}
		return "mem://test"
	}
	for _, tt := range []struct {
		mode   string
		status sdktest.Status
		reason string
	}{
		{"", sdktest.StatusPass, ""},
		{"fatal", sdktest.StatusFail, "harness gave up"},
		{"skip", sdktest.StatusSkip, "no server here"},
		{"panic", sdktest.StatusFail, "panic: boom"},
	} {
		t.Setenv("SDKTEST_OUTCOME", tt.mode)
		cleaned = nil
		var reported []sdktest.CaseResult
		results, err := sdktest.RunCases(t.Context(), h, func(r sdktest.CaseResult) { reported = append(reported, r) })
		if err != nil {
			t.Fatal(err)
		}
		if want := len(connectorCases()); len(results) != want || len(reported) != len(results) {
			t.Fatalf("mode %q: %d results, %d reported; want %d each", tt.mode, len(results), len(reported), want)
		}
		r := results[0]
		if r.Name != "info/get_info" || r.Status != tt.status || !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("mode %q: got %s %s %q; want info/get_info %s mentioning %q", tt.mode, r.Name, r.Status, r.Reason, tt.status, tt.reason)
		}
		if !slices.Equal(cleaned, []string{"info/get_info"}) {
			t.Errorf("mode %q: cleanups ran for %q; want once for info/get_info", tt.mode, cleaned)
		}
		for _, r := range results[1:] {
			if r.Status != sdktest.StatusSkip || !strings.Contains(r.Reason, "not under test") {
				t.Errorf("mode %q: case %s: %s %q; want skip from Harness.Skip", tt.mode, r.Name, r.Status, r.Reason)
			}
		}
	}
}

func TestRunCasesCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results, err := sdktest.RunCases(ctx, harness(variantGood), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Status != sdktest.StatusSkip || !strings.Contains(r.Reason, "context canceled") {
			t.Errorf("case %s: %s %q; want skipped as not run", r.Name, r.Status, r.Reason)
		}
	}
}

func TestInvalidHarness(t *testing.T) {
	tests := []struct {
		name string
		h    sdktest.Harness
		want string
	}{
		{"empty", sdktest.Harness{}, "set exactly one of Harness.Command and Harness.Connector"},
		{"no url", sdktest.Harness{Command: command(variantGood)}, "Harness.URL is required"},
		{"both", sdktest.Harness{
			Command:   command(variantGood),
			Connector: func() sdk.Connector { return nil },
			URL:       func(sdktest.TB) string { return "" },
		}, "exactly one"},
		{"unknown skip", sdktest.Harness{
			Command: command(variantGood),
			URL:     func(sdktest.TB) string { return "" },
			Skip:    map[string]string{"source/no_such_case": "x"},
		}, `"source/no_such_case", which is not a case`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sdktest.RunCases(t.Context(), tt.h, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RunCases: %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDefaultBadURLs(t *testing.T) {
	got := sdktest.DefaultBadURLs("mem://test?docs=1#frag")
	want := []string{
		"::not a url",
		"dsync-sdktest-no-such-scheme://test?docs=1#frag",
		"mem://test?docs=1&no_such_option=1#frag",
		"",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("DefaultBadURLs = %q, want %q", got, want)
	}
	if got := sdktest.DefaultBadURLs("x://h")[2]; got != "x://h?no_such_option=1" {
		t.Errorf("unknown option appended as %q", got)
	}
}

// TestCaseNames pins the case names: tools and harnesses refer to them.
func TestCaseNames(t *testing.T) {
	want := []string{
		"info/get_info",
		"info/id_stable_across_restart",
		"info/capabilities_consistent",
		"info/calls_before_configure",
		"configure/rejects_bad_urls",
		"errors/invalid_argument_class",
		"errors/unimplemented_class",
		"source/plan_covers_all_docs",
		"source/cursors_durable",
		"source/get_by_ids",
		"source/updates_in_order_and_resumable",
		"sink/write_data_idempotent",
		"sink/write_data_large_batch",
		"sink/write_updates_ordered",
		"cancel/unary_calls",
		"cancel/stream_mid_way",
		"transform/get_transform_info",
		"transform/calls_before_configure",
		"transform/configure_rejects_bad_specs",
		"transform/documents_deterministic",
		"transform/updates_deterministic_and_ordered",
		"transform/errors_keep_their_class",
	}
	if got := sdktest.CaseNames(); !slices.Equal(got, want) {
		t.Fatalf("CaseNames() = %q\nwant %q", got, want)
	}
}
