package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/tests/testsink"
)

// verifyCmd is `dsync verify A B` with a state directory and log file in
// dir, no progress display, and extra arguments.
func verifyCmd(dir, a, b string, extra ...string) []string {
	return append([]string{"verify", a, b, "--state-dir", dir + "/vstate", "--progress", "none",
		"--log-file", dir + "/vlog"}, extra...)
}

// changeSinkStore writes to the testsink store in dir in this process, as a
// database changed behind dsync's back. No plugin may hold the store.
func changeSinkStore(t *testing.T, dir string, fn func(ctx context.Context, c *testsink.Connector)) {
	t.Helper()
	ctx := context.Background()
	c := testsink.New()
	if err := c.Configure(ctx, sdk.Config{URL: sinkURL(dir, "")}); err != nil {
		t.Fatalf("open the sink store: %v", err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("close the sink store: %v", err)
		}
	}()
	fn(ctx, c)
}

// editRandomDoc returns random's document i of namespace ns changed by fn.
func editRandomDoc(t *testing.T, o random.Options, ns int, i int64, fn func(d bson.D) bson.D) bson.Raw {
	t.Helper()
	var d bson.D
	if err := bson.Unmarshal(o.Doc(ns, i), &d); err != nil {
		t.Fatal(err)
	}
	b, err := bson.Marshal(fn(d))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setDocField(d bson.D, key string, v any) bson.D {
	for i := range d {
		if d[i].Key == key {
			d[i].Value = v
		}
	}
	return d
}

// breakVerifiedSink makes one change of each kind to the copy of o in dir and
// returns the mismatches a verification must report, as "namespace id
// kind" with the differing fields.
func breakVerifiedSink(t *testing.T, dir string, o random.Options) map[string]string {
	t.Helper()
	changeSinkStore(t, dir, func(ctx context.Context, c *testsink.Connector) {
		docs := []bson.Raw{
			editRandomDoc(t, o, 0, 5, func(d bson.D) bson.D { return setDocField(d, "tag", "changed") }),
			editRandomDoc(t, o, 0, 6, func(d bson.D) bson.D { return setDocField(d, "n", int64(0)) }),
			editRandomDoc(t, o, 0, 8, func(d bson.D) bson.D { d[2], d[3] = d[3], d[2]; return d }),
			editRandomDoc(t, o, 0, 9, func(d bson.D) bson.D {
				return setDocField(d, "sub", bson.D{{Key: "a", Value: int64(-1)}, {Key: "b", Value: d[8].Value.(bson.D)[1].Value}})
			}),
		}
		if err := c.WriteData(ctx, "random.ns0", docs); err != nil {
			t.Fatal(err)
		}
		extra := bson.D{{Key: "_id", Value: int64(1_000_000)}, {Key: "stray", Value: true}}
		b, _ := bson.Marshal(extra)
		if err := c.WriteData(ctx, "random.ns1", []bson.Raw{b}); err != nil {
			t.Fatal(err)
		}
		_, id, _ := bson.MarshalValue(int64(7))
		del := sdk.Update{ID: bson.RawValue{Type: bson.TypeInt64, Value: id}, Type: sdk.UpdateDelete}
		if err := c.WriteUpdates(ctx, "random.ns0", []sdk.Update{del}); err != nil {
			t.Fatal(err)
		}
	})
	return map[string]string{
		"random.ns0 5 different":   "tag value differs",
		"random.ns0 6 different":   "n type differs (int in A, long in B)",
		"random.ns0 7 missing":     "missing in B",
		"random.ns0 8 different":   "field order differs",
		"random.ns0 9 different":   "sub.a value differs",
		"random.ns1 1000000 extra": "extra in B (not in A)",
	}
}

// verifyReportLine is a line of --report.
type verifyReportLine struct {
	Type        string          `json:"type"`
	Namespace   string          `json:"namespace"`
	ID          json.RawMessage `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Result      string          `json:"result"`
	Differences int             `json:"differences"`
	Fields      []struct {
		Path string `json:"path"`
		Kind string `json:"kind"`
	} `json:"fields"`
}

// readVerifyReport returns the mismatch lines of a report as "namespace id kind
// state" and its summary line.
func readVerifyReport(t *testing.T, path string) ([]string, verifyReportLine) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	defer f.Close()
	var lines []string
	var summary verifyReportLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l verifyReportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("report line %q: %v", sc.Text(), err)
		}
		switch l.Type {
		case "summary":
			summary = l
		default:
			var doc struct {
				ID any `bson:"_id"`
			}
			if err := bson.UnmarshalExtJSON([]byte(`{"_id":`+string(l.ID)+`}`), true, &doc); err != nil {
				t.Fatalf("id %s of report line: %v", l.ID, err)
			}
			id := doc.ID
			var fields []string
			for _, f := range l.Fields {
				fields = append(fields, f.Path+":"+f.Kind)
			}
			lines = append(lines, fmt.Sprintf("%s %v %s %s %s", l.Namespace, id, l.Kind, l.State, strings.Join(fields, ",")))
		}
	}
	if summary.Type == "" {
		t.Fatalf("report %s has no summary line", path)
	}
	return lines, summary
}

// After a copy, verify finds the datasets identical; every kind of change
// made behind dsync's back is then reported with its id and field; repair
// fixes B, and a new verification agrees.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=3000&partitions=3"
	sink := sinkURL(dir+"/sink", "")
	mustRun(t, runTimeout, "sync", src, sink, "--mode", "initial", "--state-dir", dir+"/state",
		"--progress", "none", "--log-file", dir+"/log")

	r := mustRun(t, runTimeout, verifyCmd(dir, src, sink)...)
	if !strings.Contains(r.stdout, "result: identical") || !slices.Contains(verifyTableRows(r.stdout), "random.ns0 3000 0 0 0") {
		t.Errorf("verify after a copy:\n%s", r)
	}
	if r.stderr != "" {
		t.Errorf("stderr of an identical verify with --log-file: %q", r.stderr)
	}
	r = mustRun(t, runTimeout, verifyCmd(dir, src, sink, "--count-only")...)
	if !strings.Contains(r.stdout, "result: counts equal") {
		t.Errorf("count-only verify:\n%s", r)
	}

	o := randomOptions(t, src)
	want := breakVerifiedSink(t, dir+"/sink", o)
	r = run(t, runTimeout, verifyCmd(dir, src, sink, "--report", dir+"/report.jsonl", "--max-report", "3")...)
	if r.code != 1 {
		t.Fatalf("verify of a changed copy: want exit 1:\n%s", r)
	}
	if line := oneErrorLine(t, r); !strings.Contains(line, "verify found 6 differences") {
		t.Errorf("error line %q", line)
	}
	if !strings.Contains(r.stdout, "first 3 of 6 mismatching ids:") || !strings.Contains(r.stdout, "... 3 more") {
		t.Errorf("--max-report 3:\n%s", r.stdout)
	}
	lines, summary := readVerifyReport(t, dir+"/report.jsonl")
	if summary.Result != "differences" || summary.Differences != 6 || len(lines) != 6 {
		t.Errorf("report: %+v\n%s", summary, strings.Join(lines, "\n"))
	}
	for k := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, k+" open") }) {
			t.Errorf("report lacks %q:\n%s", k, strings.Join(lines, "\n"))
		}
	}
	// Every mismatch is named with its id and fields.
	r = run(t, runTimeout, verifyCmd(dir, src, sink)...)
	for k, fields := range want {
		f := strings.Fields(k)
		if line := fmt.Sprintf("%s _id %s: ", f[0], f[1]); !strings.Contains(r.stdout, line) || !strings.Contains(r.stdout, fields) {
			t.Errorf("stdout does not name %s (%s):\n%s", k, fields, r.stdout)
		}
	}

	// Repair, then an independent verification.
	r = mustRun(t, runTimeout, verifyCmd(dir, src, sink, "--repair")...)
	for _, s := range []string{
		"repair: random.ns0: 5 documents written and 0 deleted on B",
		"repair: random.ns1: 0 documents written and 1 deleted on B",
		"result: identical",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("repair output lacks %q:\n%s", s, r.stdout)
		}
	}
	mustRun(t, runTimeout, verifyCmd(dir, src, sink)...)
	checkCopy(t, dir+"/sink", o, nil, true)
}

// A verification killed with SIGKILL resumes and ends with the same result
// as one that was never interrupted.
func TestVerifyKilledResumes(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=40000&partitions=8&page=200"
	sink := sinkURL(dir+"/sink", "?partition-docs=2500&page-docs=200")
	mustRun(t, runTimeout, "sync", src, sink, "--mode", "initial", "--state-dir", dir+"/state",
		"--progress", "none", "--log-file", dir+"/log")
	want := breakVerifiedSink(t, dir+"/sink", randomOptions(t, src))

	ref := run(t, runTimeout, "verify", src, sink, "--state-dir", dir+"/ref", "--progress", "none",
		"--log-file", dir+"/reflog", "--report", dir+"/ref.jsonl")
	if ref.code != 1 {
		t.Fatalf("reference verify: %s", ref)
	}
	refLines, refSummary := readVerifyReport(t, dir+"/ref.jsonl")
	if len(refLines) != len(want) {
		t.Fatalf("reference report: %v", refLines)
	}

	args := verifyCmd(dir, src, sink, "--parallel", "1", "--report", dir+"/report.jsonl")
	args = slices.Replace(args, slices.Index(args, "none"), slices.Index(args, "none")+1, "json")
	for kill := 0; kill < 2; kill++ {
		p := start(t, args...)
		// Progress lines go to stderr every second: kill once some
		// partitions, not all, are verified.
		deadline := time.Now().Add(runTimeout)
		for {
			if p.exited() {
				t.Fatalf("verify finished before it could be killed (make the dataset bigger):\n%s", p.res)
			}
			if verifyProgressed(p) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no progress: %s", verifyStderr(p))
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.signal(syscall.SIGKILL)
		p.sessionGone(30 * time.Second)
		if res := p.wait(time.Minute); res.code != -int(syscall.SIGKILL) {
			t.Fatalf("killed verify: %s", res)
		}
	}
	r := run(t, runTimeout, args...)
	if r.code != 1 || !strings.Contains(r.stdout, "(resumed)") {
		t.Fatalf("verify after kills: want exit 1 and a resumed run:\n%s", r)
	}
	lines, summary := readVerifyReport(t, dir+"/report.jsonl")
	if !slices.Equal(lines, refLines) || summary.Differences != refSummary.Differences {
		t.Errorf("resumed verify reported\n%s\nthe uninterrupted one\n%s", strings.Join(lines, "\n"), strings.Join(refLines, "\n"))
	}
	if got, want := verifyTableRows(r.stdout), verifyTableRows(ref.stdout); !slices.Equal(got, want) || len(got) != 3 {
		t.Errorf("resumed summary\n%s\nuninterrupted summary\n%s", r.stdout, ref.stdout)
	}
}

// verifyTableRows returns the rows of the summary table, without the time.
func verifyTableRows(stdout string) []string {
	var rows []string
	for line := range strings.Lines(stdout) {
		f := strings.Fields(line)
		if len(f) == 6 && isDecimal(f[1]) && (strings.HasPrefix(f[0], "random.") || f[0] == "total") {
			rows = append(rows, strings.Join(f[:5], " "))
		}
	}
	return rows
}

// verifyProgressed reports whether a --progress json line on stderr shows some,
// not all, partitions verified.
func verifyProgressed(p *proc) bool {
	for line := range strings.Lines(verifyStderr(p)) {
		var pl struct {
			Phase string `json:"phase"`
			Done  int    `json:"partitions_done"`
			Total int    `json:"partitions_total"`
		}
		if json.Unmarshal([]byte(line), &pl) == nil && pl.Phase == "scan" && pl.Done > 0 && pl.Done < pl.Total {
			return true
		}
	}
	return false
}

// verifyStderr returns what dsync wrote to stderr so far.
func verifyStderr(p *proc) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Bad input is a usage error: one line on stderr, exit 2, before anything
// is read.
func TestVerifyBadInput(t *testing.T) {
	dir := t.TempDir()
	src := "random://?docs=10"
	sink := sinkURL(dir+"/sink", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"verify", src}, "verify needs A and B"},
		{verifyCmd(dir, src, sink, "--sample", "0"), "--sample"},
		{verifyCmd(dir, src, sink, "--sample", "abc"), "--sample"},
		{verifyCmd(dir, src, sink, "--exclude-field", "_id"), "_id"},
		{verifyCmd(dir, src, sink, "--exclude-field", "a..b"), "empty part"},
		{verifyCmd(dir, src, sink, "--namespace", ":x"), "--namespace"},
		{verifyCmd(dir, src, sink, "--count-only", "--repair"), "--count-only"},
		{verifyCmd(dir, src, sink, "--progress", "loud"), "--progress"},
		{verifyCmd(dir, "null://", sink), "cannot be a source"},
		{verifyCmd(dir, sink, "null://"), "cannot be a source"},
		{verifyCmd(dir, sink, src, "--repair"), "not a sink"},
		{verifyCmd(dir, "nosuch://x", sink), "nosuch"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, runTimeout, tt.args...)
			if r.code != 2 {
				t.Fatalf("want exit 2:\n%s", r)
			}
			if line := oneErrorLine(t, r); !strings.Contains(line, tt.want) {
				t.Errorf("error line %q does not mention %q", line, tt.want)
			}
		})
	}
}

// isDecimal reports whether s is a decimal integer.
func isDecimal(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
