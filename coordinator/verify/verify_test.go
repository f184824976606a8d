package verify

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/goleak"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// Every run must stop all the goroutines it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t testing.TB) *checkpoint.Store {
	t.Helper()
	st, err := checkpoint.Open(t.TempDir(), checkpoint.Options{Command: "verify test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func fastRetry() coordinator.RetryPolicy {
	return coordinator.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxConsecutiveFailures: 3}
}

// run verifies with o, opening a store when o has none.
func run(t testing.TB, o Options) *Result {
	t.Helper()
	if o.Store == nil && !o.CountOnly {
		o.Store = openStore(t)
	}
	o.Retry = fastRetry()
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func mismatches(t testing.TB, r *Result) []Mismatch {
	t.Helper()
	var out []Mismatch
	if err := r.Mismatches(func(m Mismatch) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// open returns the open mismatches by "ns id kind".
func open(t testing.TB, r *Result) map[string]Mismatch {
	t.Helper()
	out := map[string]Mismatch{}
	for _, m := range mismatches(t, r) {
		if m.State == "open" {
			out[fmt.Sprintf("%s %s %s", m.Namespace, idText(m.ID), m.Kind)] = m
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sample builds documents 0..n-1 with fields of many types.
func sampleDocs(n int) []bson.D {
	docs := make([]bson.D, n)
	for i := range n {
		docs[i] = bson.D{
			{Key: "_id", Value: int64(i)},
			{Key: "n", Value: int32(i)},
			{Key: "tag", Value: fmt.Sprintf("t%03d", i)},
			{Key: "f", Value: float64(i) / 4},
			{Key: "ok", Value: i%2 == 0},
			{Key: "sub", Value: bson.D{{Key: "a", Value: int64(i)}, {Key: "b", Value: "x"}}},
			{Key: "arr", Value: bson.A{int32(1), int32(2), int32(i)}},
		}
	}
	return docs
}

func pairOfDBs(n int, nss ...string) (*memDB, *memDB) {
	a := newMemDB("memA")
	for _, ns := range nss {
		a.put(ns, sampleDocs(n)...)
	}
	return a, a.clone("memB")
}

func TestIdentical(t *testing.T) {
	a, b := pairOfDBs(50, "db.x", "db.y")
	r := run(t, Options{A: a, B: b})
	if !r.Identical() || r.Differences() != 0 {
		t.Fatalf("not identical: %+v", r.Namespaces)
	}
	if len(r.Namespaces) != 2 || r.Namespaces[0].Compared != 50 || r.Namespaces[1].ScannedB != 50 {
		t.Errorf("namespaces = %+v", r.Namespaces)
	}
	for _, n := range r.Namespaces {
		for _, c := range n.Counts {
			if c.Short || c.Over || c.Distinct != 50 || c.Before != 50 || c.After != 50 {
				t.Errorf("%s: count check %+v", n.Namespace, c)
			}
		}
	}
	if ms := mismatches(t, r); len(ms) != 0 {
		t.Errorf("mismatches: %+v", ms)
	}
	for _, db := range []*memDB{a, b} {
		for _, req := range db.plans {
			if req.Updates || !req.InitialSync {
				t.Errorf("%s was asked for plan %+v: verify must only ask for copy partitions", db.id, req)
			}
		}
	}
}

// mutate applies one change of each kind to b, and returns the expected
// open mismatches with the fields named.
func mutate(b *memDB, ns string) map[string][]FieldDiff {
	b.del(ns, int64(1))
	b.put(ns, bson.D{{Key: "_id", Value: int64(1000)}, {Key: "n", Value: int32(1)}})
	set := func(id int64, f func(d bson.D) bson.D) {
		var d bson.D
		if err := bson.Unmarshal(b.get(ns, id), &d); err != nil {
			panic(err)
		}
		b.put(ns, f(d))
	}
	field := func(d bson.D, k string, v any) bson.D {
		for i := range d {
			if d[i].Key == k {
				d[i].Value = v
			}
		}
		return d
	}
	set(2, func(d bson.D) bson.D { return field(d, "tag", "changed") })
	set(3, func(d bson.D) bson.D { return field(d, "n", int64(3)) })
	set(4, func(d bson.D) bson.D { return field(d, "n", "4") })
	set(5, func(d bson.D) bson.D { d[1], d[2] = d[2], d[1]; return d })
	set(6, func(d bson.D) bson.D {
		return field(d, "sub", bson.D{{Key: "a", Value: int64(-6)}, {Key: "b", Value: "x"}})
	})
	set(7, func(d bson.D) bson.D { return append(d, bson.E{Key: "added", Value: true}) })
	set(8, func(d bson.D) bson.D { return slices.Delete(d, 4, 5) })
	set(9, func(d bson.D) bson.D { return field(d, "arr", bson.A{int32(1), int32(20), int32(9)}) })
	return map[string][]FieldDiff{
		ns + " 1 missing":   nil,
		ns + " 1000 extra":  nil,
		ns + " 2 different": {{Path: "tag", Kind: FieldValue, TypeA: "string"}},
		ns + " 3 different": {{Path: "n", Kind: FieldType, TypeA: "int", TypeB: "long"}},
		ns + " 4 different": {{Path: "n", Kind: FieldType, TypeA: "int", TypeB: "string"}},
		ns + " 5 different": {{Path: "", Kind: FieldOrder}},
		ns + " 6 different": {{Path: "sub.a", Kind: FieldValue, TypeA: "long"}},
		ns + " 7 different": {{Path: "added", Kind: FieldMissingOnA, TypeB: "bool"}},
		ns + " 8 different": {{Path: "ok", Kind: FieldMissingOnB, TypeA: "bool"}},
		ns + " 9 different": {{Path: "arr.1", Kind: FieldValue, TypeA: "int"}},
	}
}

func checkOpen(t *testing.T, r *Result, want map[string][]FieldDiff) {
	t.Helper()
	got := open(t, r)
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("open mismatches:\n%s\nwant:\n%s", strings.Join(keys(got), "\n"), strings.Join(keys(want), "\n"))
	}
	for k, fields := range want {
		var norm []FieldDiff
		for _, d := range got[k].Fields {
			norm = append(norm, FieldDiff{Path: d.Path, Kind: d.Kind, TypeA: d.TypeA, TypeB: d.TypeB})
		}
		if !slices.Equal(norm, fields) {
			t.Errorf("%s: fields %+v, want %+v", k, norm, fields)
		}
	}
}

// Each kind of difference is found and named with its id and field.
func TestDifferences(t *testing.T) {
	a, b := pairOfDBs(40, "db.x", "db.y")
	want := mutate(b, "db.x")
	r := run(t, Options{A: a, B: b})
	checkOpen(t, r, want)
	if r.Identical() || r.Differences() != uint64(len(want)) {
		t.Errorf("identical %v, differences %d, want %d", r.Identical(), r.Differences(), len(want))
	}
	x := r.Namespaces[0]
	if x.Missing != 1 || x.Extra != 1 || x.Different != 8 || x.Compared != 40 || x.ScannedB != 40 {
		t.Errorf("db.x = %+v", x)
	}
	if y := r.Namespaces[1]; y.differences(false, false) != 0 {
		t.Errorf("db.y = %+v", y)
	}
	// The type change keeps the values for the report.
	m := open(t, r)["db.x 4 different"]
	if f := m.Fields[0]; f.A != `{"$numberInt":"4"}` || f.B != `"4"` {
		t.Errorf("values of the type difference: %q, %q", f.A, f.B)
	}
}

// The comparison options reach the scan.
func TestComparisonOptions(t *testing.T) {
	a, b := pairOfDBs(10, "db.x")
	b.put("db.x",
		bson.D{{Key: "n", Value: int32(1)}, {Key: "_id", Value: int64(1)}, {Key: "tag", Value: "t001"}, {Key: "f", Value: 0.25}, {Key: "ok", Value: false},
			{Key: "sub", Value: bson.D{{Key: "b", Value: "x"}, {Key: "a", Value: int64(1)}}}, {Key: "arr", Value: bson.A{int32(1), int32(2), int32(1)}}},
		bson.D{{Key: "_id", Value: int64(2)}, {Key: "n", Value: int64(2)}, {Key: "tag", Value: "t002"}, {Key: "f", Value: 0.5}, {Key: "ok", Value: true},
			{Key: "sub", Value: bson.D{{Key: "a", Value: 2.0}, {Key: "b", Value: "x"}}}, {Key: "arr", Value: bson.A{int32(1), int32(2), int32(2)}}, {Key: "synced_at", Value: 1}},
	)
	r := run(t, Options{A: a, B: b})
	if r.Differences() != 2 {
		t.Fatalf("strict: %d differences, want 2: %v", r.Differences(), keys(open(t, r)))
	}
	r = run(t, Options{A: a, B: b, IgnoreFieldOrder: true})
	if got := keys(open(t, r)); !slices.Equal(got, []string{"db.x 2 different"}) {
		t.Errorf("ignoring field order: %v", got)
	}
	r = run(t, Options{A: a, B: b, IgnoreFieldOrder: true, NumericEquivalence: true})
	if got := keys(open(t, r)); !slices.Equal(got, []string{"db.x 2 different"}) {
		t.Errorf("ignoring order, numeric equivalence: %v", got)
	}
	r = run(t, Options{A: a, B: b, IgnoreFieldOrder: true, NumericEquivalence: true, ExcludeFields: []string{"synced_at"}})
	if !r.Identical() {
		t.Errorf("with every option: %v", keys(open(t, r)))
	}
	r = run(t, Options{A: a, B: b, IgnoreFieldOrder: true, ExcludeFields: []string{"synced_at"}})
	if got := keys(open(t, r)); !slices.Equal(got, []string{"db.x 2 different"}) {
		t.Errorf("without numeric equivalence: %v", got)
	}
}

func TestMapping(t *testing.T) {
	a := newMemDB("memA").put("db.x", sampleDocs(20)...).put("db.other", sampleDocs(3)...)
	b := newMemDB("memB").put("new.y", sampleDocs(20)...).put("new.z", sampleDocs(5)...)
	m, err := coordinator.ParseNamespaceMap([]string{"db.x:new.y"})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, Options{A: a, B: b, Namespaces: m})
	if !r.Identical() || len(r.Namespaces) != 1 || r.Namespaces[0].BNamespace != "new.y" || r.Namespaces[0].Compared != 20 {
		t.Errorf("mapped: identical %v, %+v", r.Identical(), r.Namespaces)
	}
	// A database mapping pairs every namespace; B's namespace without a
	// counterpart in A holds only extra documents.
	m, _ = coordinator.ParseNamespaceMap([]string{"db:new"})
	b.put("new.x", sampleDocs(20)...)
	r = run(t, Options{A: a, B: b, Namespaces: m})
	var got []string
	for _, n := range r.Namespaces {
		got = append(got, fmt.Sprintf("%s->%s c%d m%d e%d", n.Namespace, n.BNamespace, n.Compared, n.Missing, n.Extra))
	}
	want := []string{"db.other->new.other c3 m3 e0", "db.x->new.x c20 m0 e0", "db.y->new.y c0 m0 e20", "db.z->new.z c0 m0 e5"}
	if !slices.Equal(got, want) {
		t.Errorf("database mapping:\n%v\nwant\n%v", got, want)
	}
	if a.gets.Load() != 0 {
		t.Errorf("A was asked %d times for ids of namespaces it does not have", a.gets.Load())
	}
}

func TestSample(t *testing.T) {
	a, b := pairOfDBs(100, "db.x")
	a.partitions, b.partitions = 10, 10
	for i := range 100 {
		b.del("db.x", int64(i)) // every document missing
	}
	b.put("db.x", bson.D{{Key: "_id", Value: "only in b"}})
	r := run(t, Options{A: a, B: b, SamplePercent: 30, SampleSeed: 42})
	s := r.Sample
	if s == nil || s.PartitionsA != 3 || s.PlannedA != 10 || s.PartitionsB != 1 || s.PlannedB != 1 || s.Seed != 42 {
		t.Fatalf("sample = %+v", s)
	}
	n := r.Namespaces[0]
	if n.Compared < 20 || n.Compared > 40 || n.Missing != n.Compared || n.Extra != 1 || n.Counts != nil {
		t.Errorf("sampled namespace = %+v", n)
	}
	// The same seed draws the same sample.
	r2 := run(t, Options{A: a, B: b, SamplePercent: 30, SampleSeed: 42})
	if r2.Namespaces[0].Compared != n.Compared || !slices.Equal(keys(open(t, r2)), keys(open(t, r))) {
		t.Errorf("same seed, other sample: %+v vs %+v", r2.Namespaces[0], n)
	}
	var buf strings.Builder
	if err := WriteSummary(&buf, r, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "sample: 30% of the partitions (A 3 of 10, B 1 of 1; seed 42)") {
		t.Errorf("summary does not state the sample:\n%s", buf.String())
	}
}

// A verification cancelled mid-scan resumes where it stopped and ends with
// the result of an uninterrupted one.
func TestResume(t *testing.T) {
	a, b := pairOfDBs(300, "db.x", "db.y")
	want := mutate(b, "db.y")
	full := run(t, Options{A: a, B: b, Parallel: 2})
	checkOpen(t, full, want)
	pages := a.lists.Load() + b.lists.Load()
	read := int64(0) // pages read by the stopped and resumed runs

	st := openStore(t)
	for _, stopAfter := range []int64{5, 20, 45} {
		a.lists.Store(0)
		b.lists.Store(0)
		ctx, cancel := context.WithCancel(context.Background())
		a.listHook = func(context.Context, spi.Partition) error {
			if a.lists.Load() >= stopAfter {
				cancel()
			}
			return nil
		}
		v, err := New(Options{A: a, B: b, Store: st, Parallel: 2, Retry: fastRetry()})
		if err != nil {
			t.Fatal(err)
		}
		r, err := v.Run(ctx)
		cancel()
		if err != nil {
			t.Fatalf("stopped run: %v", err)
		}
		read += a.lists.Load() + b.lists.Load()
		if !r.Stopped || r.Identical() {
			t.Fatalf("run cancelled after %d pages: stopped %v identical %v", stopAfter, r.Stopped, r.Identical())
		}
	}
	a.listHook = nil
	a.lists.Store(0)
	b.lists.Store(0)
	r := run(t, Options{A: a, B: b, Store: st, Parallel: 2})
	if !r.Resumed || r.Stopped {
		t.Fatalf("resumed %v stopped %v", r.Resumed, r.Stopped)
	}
	checkOpen(t, r, want)
	// Each stop may lose the page each worker was reading.
	if read += a.lists.Load() + b.lists.Load(); read > pages+3*2 {
		t.Errorf("the stopped and resumed runs read %d pages, the full run %d: they did not resume", read, pages)
	}
	for i := range r.Namespaces {
		g, w := r.Namespaces[i], full.Namespaces[i]
		g.Time, w.Time = 0, 0
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("resumed %+v\nfull    %+v", g, w)
		}
	}

	// A finished run is started over by the next one.
	a.lists.Store(0)
	r = run(t, Options{A: a, B: b, Store: st})
	if r.Resumed || a.lists.Load() == 0 {
		t.Errorf("rerun of a finished verify: resumed %v, %d pages of A read", r.Resumed, a.lists.Load())
	}
	checkOpen(t, r, want)
}

// Other options make another run; Reset starts a stopped run over.
func TestRunIdentity(t *testing.T) {
	m, _ := coordinator.ParseNamespaceMap([]string{"db.x"})
	base := RunID("a", "b", Options{})
	for name, o := range map[string]Options{
		"mapping": {Namespaces: m},
		"order":   {IgnoreFieldOrder: true},
		"numeric": {NumericEquivalence: true},
		"exclude": {ExcludeFields: []string{"x"}},
		"sample":  {SamplePercent: 10},
	} {
		if RunID("a", "b", o) == base {
			t.Errorf("%s does not change the run id", name)
		}
	}
	if RunID("a", "b", Options{Parallel: 9, Recheck: time.Second, Repair: true}) != base {
		t.Error("tuning options change the run id")
	}
	if RunID("a", "b", Options{ExcludeFields: []string{"x", "y"}}) != RunID("a", "b", Options{ExcludeFields: []string{"y", "x", "y"}}) {
		t.Error("the order of excluded fields changes the run id")
	}

	a, b := pairOfDBs(50, "db.x")
	st := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	a.listHook = func(context.Context, spi.Partition) error { cancel(); return nil }
	if r, err := Run(ctx, Options{A: a, B: b, Store: st}); err != nil || !r.Stopped {
		t.Fatalf("stopped run: %v, %v", r, err)
	}
	a.listHook = nil
	r := run(t, Options{A: a, B: b, Store: st, Reset: true})
	if r.Resumed || !r.Identical() {
		t.Errorf("reset run: resumed %v identical %v", r.Resumed, r.Identical())
	}
}

// waitPhase polls v until it reaches phase.
func waitPhase(v *Verifier, phase string, stop <-chan struct{}) bool {
	for v.Stats().Phase != phase {
		select {
		case <-stop:
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}

// Differences that go away before the recheck are not reported; those
// that persist are, after the bounded attempts.
func TestRecheck(t *testing.T) {
	a, b := pairOfDBs(30, "db.x")
	b.del("db.x", int64(3))
	b.put("db.x", bson.D{{Key: "_id", Value: int64(4)}, {Key: "stale", Value: true}})
	b.put("db.x", bson.D{{Key: "_id", Value: int64(500)}})
	b.put("db.x", bson.D{{Key: "_id", Value: int64(7)}, {Key: "persistent", Value: true}})
	// Document 9 differs, and keeps changing on A: it never settles.
	b.put("db.x", bson.D{{Key: "_id", Value: int64(9)}, {Key: "v", Value: 0}})
	var flaps sync.WaitGroup
	flapping := 0

	v, err := New(Options{A: a, B: b, Store: openStore(t), Recheck: 30 * time.Millisecond, RecheckAttempts: 4, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flaps.Add(1)
	go func() {
		defer flaps.Done()
		if !waitPhase(v, phaseRecheck, stop) {
			return
		}
		// The sync catches up: B gets 3 and 4 right and loses 500.
		b.put("db.x", sampleDocs(5)[3], sampleDocs(5)[4])
		b.del("db.x", int64(500))
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			flapping++
			a.put("db.x", bson.D{{Key: "_id", Value: int64(9)}, {Key: "v", Value: flapping}})
		}
	}()
	r, err := v.Run(context.Background())
	close(stop)
	flaps.Wait()
	if err != nil {
		t.Fatal(err)
	}
	got := open(t, r)
	if !slices.Equal(keys(got), []string{"db.x 7 different", "db.x 9 different"}) {
		t.Fatalf("open after rechecks: %v", keys(got))
	}
	if r.Rechecks != 4 || got["db.x 7 different"].Rechecks != 4 {
		t.Errorf("rechecks %d, of id 7: %d; want 4 (document 9 never settles)", r.Rechecks, got["db.x 7 different"].Rechecks)
	}
	if n := r.Namespaces[0]; n.Resolved != 3 || n.Missing != 0 || n.Extra != 0 || n.Different != 2 {
		t.Errorf("namespace = %+v", n)
	}

	// Stable differences stop the rechecks early.
	a2, b2 := pairOfDBs(10, "db.x")
	b2.del("db.x", int64(1))
	r = run(t, Options{A: a2, B: b2, Recheck: time.Millisecond, RecheckAttempts: 5})
	if r.Rechecks != 1 || r.Differences() != 1 {
		t.Errorf("stable difference: %d rechecks, %d differences; want 1 and 1", r.Rechecks, r.Differences())
	}
}

func TestRepair(t *testing.T) {
	a, b := pairOfDBs(40, "db.x", "db.y")
	want := mutate(b, "db.x")
	st := openStore(t)
	r := run(t, Options{A: a, B: b, Store: st, Repair: true})
	if !r.Identical() {
		t.Fatalf("after repair: %v", keys(open(t, r)))
	}
	n := r.Namespaces[0]
	if n.Repaired != uint64(len(want)) || n.Written != uint64(len(want)-1) || n.Deleted != 1 {
		t.Errorf("repair counts = %+v", n)
	}
	for _, ns := range []string{"db.x", "db.y"} {
		a.mu.Lock()
		b.mu.Lock()
		if !slices.Equal(keys(a.nss[ns]), keys(b.nss[ns])) {
			t.Errorf("%s: ids differ after repair", ns)
		}
		for k, d := range a.nss[ns] {
			if !equalBytes(d, b.nss[ns][k]) {
				t.Errorf("%s: document %s differs after repair", ns, k)
			}
		}
		b.mu.Unlock()
		a.mu.Unlock()
	}
	for _, m := range mismatches(t, r) {
		if m.State != "repaired" || m.Repair == "" {
			t.Errorf("mismatch %s %s: state %s repair %q", m.Namespace, idText(m.ID), m.State, m.Repair)
		}
	}
	// An independent verification agrees.
	if r := run(t, Options{A: a, B: b, Store: st}); !r.Identical() || len(mismatches(t, r)) != 0 {
		t.Errorf("verify after repair: %v", keys(open(t, r)))
	}

	// B must be a sink, and is refused before anything is read.
	b.noSink = true
	a.lists.Store(0)
	_, err := Run(context.Background(), Options{A: a, B: b, Store: st, Repair: true})
	if !errors.Is(err, ErrNotSink) || a.lists.Load() != 0 {
		t.Errorf("repair into a non-sink: %v (%d pages read)", err, a.lists.Load())
	}
}

// A side whose plan returns some documents twice cannot prove coverage.
func TestCoverageDuplicates(t *testing.T) {
	a, b := pairOfDBs(30, "db.x")
	a.planHook = func(p []spi.Partition) []spi.Partition { return append(p, p[1]) }
	r := run(t, Options{A: a, B: b})
	got := open(t, r)
	if r.Identical() || len(got) != 10 || r.Namespaces[0].Duplicates != 10 {
		t.Fatalf("duplicates: identical %v, %v", r.Identical(), keys(got))
	}
	for k, m := range got {
		if m.Kind != KindDuplicateA || m.Count != 2 {
			t.Errorf("%s: %+v", k, m)
		}
	}
}

// A blind spot of a side's plan is found by lookups when the other side
// has the documents, and by counts when it does not.
func TestCoverageBlindSpot(t *testing.T) {
	drop := func(p []spi.Partition) []spi.Partition { return p[:len(p)-1] }

	// The copy missed the documents too: only counts can tell.
	a, b := pairOfDBs(30, "db.x")
	for i := 20; i < 30; i++ {
		b.del("db.x", int64(i))
	}
	a.planHook = drop
	r := run(t, Options{A: a, B: b})
	n := r.Namespaces[0]
	if r.Identical() || len(n.Counts) != 2 || !n.Counts[0].Short || n.Counts[0].Distinct != 20 || n.Counts[0].Before != 30 || n.Counts[1].Short {
		t.Errorf("blind spot of A and B: identical %v, counts %+v", r.Identical(), n.Counts)
	}
	var buf strings.Builder
	if err := WriteSummary(&buf, r, 10); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "coverage: db.x: A's scan returned 20 distinct documents, but A counts 30 before and 30 after the scan") {
		t.Errorf("summary:\n%s", buf.String())
	}
	// With estimated counts, the shortfall is only a warning.
	if r := run(t, Options{A: a, B: b, EstimatedCounts: true}); !r.Identical() {
		t.Errorf("estimated counts: %d differences", r.Differences())
	}

	// B has the documents that A's scan missed: each is named.
	a, b = pairOfDBs(30, "db.x")
	a.planHook = drop
	r = run(t, Options{A: a, B: b})
	got := open(t, r)
	if len(got) != 10 || r.Namespaces[0].Unscanned != 10 || r.Namespaces[0].Extra != 0 {
		t.Errorf("blind spot of A: %v %+v", keys(got), r.Namespaces[0])
	}
	for k, m := range got {
		if m.Kind != KindUnscannedA {
			t.Errorf("%s: %+v", k, m)
		}
	}

	// Same on B's side.
	a, b = pairOfDBs(30, "db.x")
	b.planHook = drop
	r = run(t, Options{A: a, B: b})
	if n := r.Namespaces[0]; n.Unscanned != 10 || !n.Counts[1].Short || r.Differences() != 11 {
		t.Errorf("blind spot of B: %+v", n)
	}
}

func TestCapabilities(t *testing.T) {
	a, b := pairOfDBs(5, "db.x")
	for _, o := range []Options{{A: sourceOnly{a}, B: b}, {A: a, B: sourceOnly{b}}} {
		_, err := Run(context.Background(), Options{A: o.A, B: o.B, Store: openStore(t)})
		if !errors.Is(err, ErrNoGetByIDs) || !strings.Contains(err.Error(), "GetByIds") {
			t.Errorf("without GetByIds: %v", err)
		}
	}
	if a.lists.Load() != 0 || b.lists.Load() != 0 {
		t.Error("data was read before the capability check")
	}
	// Counts need no GetByIds.
	r := run(t, Options{A: sourceOnly{a}, B: sourceOnly{b}, CountOnly: true})
	if !r.Identical() || r.Namespaces[0].CountA != 5 {
		t.Errorf("count only: %+v", r.Namespaces)
	}
	b.del("db.x", int64(0))
	if r := run(t, Options{A: a, B: b, CountOnly: true}); r.Identical() || r.Differences() != 1 {
		t.Errorf("count only with a difference: %+v", r.Namespaces)
	}
	for _, o := range []Options{
		{A: a, B: b, Store: openStore(t), SamplePercent: 101},
		{A: a, B: b, Store: openStore(t), ExcludeFields: []string{"_id"}},
		{A: a, B: b, Store: openStore(t), ExcludeFields: []string{"a..b"}},
		{A: a, B: b, CountOnly: true, Repair: true},
		{A: a, B: b},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

// A failing side fails the run with its error; a retryable failure is
// retried.
func TestFailures(t *testing.T) {
	a, b := pairOfDBs(20, "db.x")
	var fails atomic.Int32
	fails.Store(2)
	a.listHook = func(context.Context, spi.Partition) error {
		if fails.Add(-1) >= 0 {
			return spi.Retryable(errors.New("blip"))
		}
		return nil
	}
	if r := run(t, Options{A: a, B: b}); !r.Identical() {
		t.Errorf("after retried failures: %d differences", r.Differences())
	}
	boom := errors.New("boom")
	a.listHook = func(context.Context, spi.Partition) error { return boom }
	_, err := Run(context.Background(), Options{A: a, B: b, Store: openStore(t), Retry: fastRetry()})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `A namespace "db.x"`) {
		t.Errorf("failing source: %v", err)
	}
	// A document without _id.
	a.listHook = nil
	a.mu.Lock()
	a.nss["db.x"]["zz"] = mustRaw(bson.D{{Key: "x", Value: 1}})
	a.mu.Unlock()
	_, err = Run(context.Background(), Options{A: a, B: b, Store: openStore(t), Retry: fastRetry()})
	if !errors.Is(err, ErrBadDocument) {
		t.Errorf("document without _id: %v", err)
	}
}

// Memory does not grow with the dataset: pages are streamed and results
// and recorded ids live in the store.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 2 x 120 MB")
	}
	const n, size = 30000, 4096
	a := &genDB{id: "genA", n: n, size: size, partitions: 8, page: 250}
	b := &genDB{id: "genB", n: n, size: size, partitions: 8, page: 250}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()
	r := run(t, Options{A: a, B: b, Parallel: 4, BatchDocs: 250})
	close(stop)
	wg.Wait()
	if !r.Identical() || r.Namespaces[0].Compared != n || r.Namespaces[0].ScannedB != n {
		t.Fatalf("result: %+v", r.Namespaces)
	}
	if served := a.served.Load() + b.served.Load(); served < 3*n {
		t.Errorf("%d documents served, want at least %d", served, 3*n)
	}
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("dataset 2 x %d MB; heap grew by at most %d MB", n*size>>20, grew>>20)
	if limit := int64(n * size / 3); grew > limit {
		t.Errorf("heap grew by %d MB for a dataset of 2 x %d MB: documents are held in memory", grew>>20, n*size>>20)
	}
}
