package random

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

func configured(t testing.TB, url string) *Connector {
	t.Helper()
	c := New()
	if err := c.Configure(context.Background(), sdk.Config{URL: url}); err != nil {
		t.Fatalf("Configure(%s): %v", url, err)
	}
	return c
}

// readPartition reads p to the end from cursor and returns the documents
// and the cursors returned on the way.
func readPartition(t testing.TB, c *Connector, p sdk.Partition, cursor []byte) ([]bson.Raw, [][]byte) {
	t.Helper()
	var docs []bson.Raw
	var cursors [][]byte
	for range 1_000_000 {
		page, err := c.ListData(context.Background(), p, cursor)
		if err != nil {
			t.Fatalf("ListData(%s, %q): %v", p.Cursor, cursor, err)
		}
		docs = append(docs, page.Docs...)
		if len(page.NextCursor) == 0 {
			return docs, cursors
		}
		cursor = page.NextCursor
		cursors = append(cursors, cursor)
	}
	t.Fatal("ListData never ends")
	return nil, nil
}

func TestPlanCoversEveryDocOnce(t *testing.T) {
	tests := []struct {
		namespaces, partitions, page int
		docs                         int64
	}{
		{1, 4, 1000, 1000},
		{1, 1, 7, 100},
		{3, 4, 10, 101},
		{2, 7, 3, 5},  // partitions > docs
		{1, 10, 1, 1}, // one document
		{2, 4, 5, 0},  // empty namespaces
		{1, 3, 1000, 10_000},
	}
	for _, tt := range tests {
		url := fmt.Sprintf("random://?namespaces=%d&docs=%d&partitions=%d&page=%d&size=0", tt.namespaces, tt.docs, tt.partitions, tt.page)
		t.Run(url, func(t *testing.T) {
			c := configured(t, url)
			o, _ := c.Options()
			plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true})
			if err != nil {
				t.Fatal(err)
			}
			wantParts := tt.namespaces * int(max(min(int64(tt.partitions), tt.docs), 1))
			if len(plan.Partitions) != wantParts {
				t.Errorf("%d partitions, want %d", len(plan.Partitions), wantParts)
			}
			seen := make(map[string]map[int64]int)
			estimated := make(map[string]uint64)
			for _, p := range plan.Partitions {
				docs, _ := readPartition(t, c, p, nil)
				if uint64(len(docs)) != p.EstimatedCount {
					t.Errorf("partition %s: %d docs, estimated %d", p.Cursor, len(docs), p.EstimatedCount)
				}
				estimated[p.Namespace] += p.EstimatedCount
				for _, d := range docs {
					if seen[p.Namespace] == nil {
						seen[p.Namespace] = make(map[int64]int)
					}
					seen[p.Namespace][d.Lookup("_id").Int64()]++
				}
			}
			for ns := range tt.namespaces {
				name := o.NamespaceName(ns)
				if estimated[name] != uint64(tt.docs) {
					t.Errorf("%s: estimated %d, want %d", name, estimated[name], tt.docs)
				}
				for i := range tt.docs {
					if n := seen[name][i]; n != 1 {
						t.Errorf("%s: _id %d read %d times", name, i, n)
					}
				}
				if len(seen[name]) != int(tt.docs) {
					t.Errorf("%s: %d distinct ids, want %d", name, len(seen[name]), tt.docs)
				}
			}
		})
	}
}

func TestPlanNamespaces(t *testing.T) {
	c := configured(t, "random://?namespaces=3&docs=10&partitions=2")
	plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{Namespaces: []string{"random.ns2", "random.ns0"}, InitialSync: true, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plan.Partitions {
		got = append(got, p.Namespace)
	}
	if want := []string{"random.ns2", "random.ns2", "random.ns0", "random.ns0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("partition namespaces %v, want %v", got, want)
	}
	if len(plan.UpdatesPartitions) != 1 || fmt.Sprint(plan.UpdatesPartitions[0].Namespaces) != "[random.ns2 random.ns0]" {
		t.Errorf("update partitions %+v", plan.UpdatesPartitions)
	}
	plan, err = c.GeneratePlan(t.Context(), sdk.PlanRequest{Updates: true})
	if err != nil || len(plan.Partitions) != 0 || len(plan.UpdatesPartitions) != 1 {
		t.Errorf("updates-only plan: %+v, %v", plan, err)
	}

	for _, nss := range [][]string{{"random.ns3"}, {"other"}, {"random.ns1", "random.ns1"}} {
		_, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{Namespaces: nss, InitialSync: true})
		if sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("plan %v: %v, want invalid argument", nss, err)
		}
	}
}

// TestCursorsDurable resumes every saved cursor in a new connector and
// checks that the rest is exactly what the first one returned.
func TestCursorsDurable(t *testing.T) {
	const url = "random://?namespaces=2&docs=103&partitions=3&page=10&size=300&seed=9"
	a := configured(t, url)
	plan, err := a.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Partitions {
		all, cursors := readPartition(t, a, p, nil)
		for k, cur := range cursors {
			b := configured(t, url) // as after a restart
			rest, _ := readPartition(t, b, p, bytes.Clone(cur))
			prefix := (k + 1) * 10
			if len(rest) != len(all)-prefix {
				t.Fatalf("resume at %q: %d docs, want %d", cur, len(rest), len(all)-prefix)
			}
			for j := range rest {
				if !bytes.Equal(rest[j], all[prefix+j]) {
					t.Fatalf("resume at %q: doc %d differs", cur, j)
				}
			}
		}
	}
}

func TestListDataBadCursors(t *testing.T) {
	c := configured(t, "random://?namespaces=2&docs=100")
	plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Partitions[0] // random.ns0, 0..25
	other := configured(t, "random://?namespaces=2&docs=10")
	tests := []struct {
		name   string
		c      *Connector
		p      sdk.Partition
		cursor string
	}{
		{"garbage partition", c, sdk.Partition{Namespace: p.Namespace, Cursor: []byte("xyz")}, ""},
		{"wrong namespace", c, sdk.Partition{Namespace: "random.ns1", Cursor: p.Cursor}, ""},
		{"cursor past partition", c, p, "d1:26"},
		{"cursor before partition", c, p, "d1:-1"},
		{"update cursor as data cursor", c, p, "u1:3"},
		{"partition of a larger dataset", other, p, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.ListData(t.Context(), tt.p, []byte(tt.cursor))
			if sdk.KindOf(err) != sdk.KindInvalidArgument {
				t.Errorf("ListData: %v, want invalid argument", err)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	read := func(url string) []bson.Raw {
		c := configured(t, url)
		plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		for _, p := range plan.Partitions {
			d, _ := readPartition(t, c, p, nil)
			docs = append(docs, d...)
		}
		return docs
	}
	a := read("random://?docs=200&seed=5&size=500")
	b := read("random://?docs=200&seed=5&size=500&partitions=7&page=3")
	other := read("random://?docs=200&seed=6&size=500")
	if len(a) != 200 || len(b) != 200 || len(other) != 200 {
		t.Fatalf("lengths %d %d %d", len(a), len(b), len(other))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("doc %d differs between two reads of seed 5", i)
		}
		if bytes.Equal(a[i], other[i]) {
			t.Fatalf("doc %d equal for seeds 5 and 6", i)
		}
		if err := a[i].Validate(); err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
	}
	o := DefaultOptions()
	if !bytes.Equal(o.Doc(0, 1), o.Doc(0, 1)) || bytes.Equal(o.Doc(0, 1), o.Doc(1, 1)) || bytes.Equal(o.Doc(0, 1), o.Doc(0, 2)) {
		t.Error("Doc is not a function of (seed, ns, i)")
	}
}

func TestDocSize(t *testing.T) {
	for _, size := range []int{0, 1, minDocSize - 1, minDocSize, minDocSize + 1, minDocSize + 7, 1000, 1024, 4097, 1 << 20, MaxSize} {
		o := DefaultOptions()
		o.Size = size
		d := o.Doc(0, 12345)
		if len(d) != o.DocSize() || len(d) != max(size, minDocSize) {
			t.Errorf("size=%d: document of %d bytes, DocSize %d", size, len(d), o.DocSize())
		}
		if err := d.Validate(); err != nil {
			t.Errorf("size=%d: %v", size, err)
		}
		if s := d.Lookup("s").StringValue(); len(s) != o.payloadLen() {
			t.Errorf("size=%d: payload of %d bytes", size, len(s))
		}
	}
}

func TestListDataPageBytes(t *testing.T) {
	c := configured(t, "random://?docs=100&size=1048576&partitions=1&page=1000")
	plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListData(t.Context(), plan.Partitions[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Docs) != 4 {
		t.Errorf("page of 1 MiB documents holds %d, want 4 (4 MiB)", len(page.Docs))
	}
	// A document cannot grow into the next one.
	next := bytes.Clone(page.Docs[1])
	_ = append(page.Docs[0], 1)
	if !bytes.Equal(page.Docs[1], next) {
		t.Error("appending to a document changed the next one")
	}

	c = configured(t, "random://?docs=3&size=16777216&partitions=1")
	page, err = c.ListData(t.Context(), sdk.Partition{Namespace: "random.ns0", Cursor: []byte("p1:0:0:3")}, nil)
	if err != nil || len(page.Docs) != 1 || len(page.Docs[0]) != MaxSize {
		t.Errorf("16 MiB documents: %d docs, %v", len(page.Docs), err)
	}
}

func TestGetByIDs(t *testing.T) {
	c := configured(t, "random://?namespaces=2&docs=10&updates=100")
	o, _ := c.Options()
	i32 := bson.RawValue{Type: bson.TypeInt32, Value: []byte{3, 0, 0, 0}}
	str := bson.RawValue{Type: bson.TypeString, Value: []byte{2, 0, 0, 0, '3', 0}}
	got, err := c.GetByIDs(t.Context(), "random.ns1", []bson.RawValue{int64Value(9), int64Value(10), i32, str, int64Value(-1), int64Value(0)})
	if err != nil {
		t.Fatal(err)
	}
	want := []bson.Raw{o.Doc(1, 9), nil, o.Doc(1, 3), nil, nil, o.Doc(1, 0)}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for k := range want {
		if !bytes.Equal(got[k], want[k]) || (got[k] == nil) != (want[k] == nil) {
			t.Errorf("result %d: %v, want %v", k, got[k], want[k])
		}
	}
	if _, err := c.GetByIDs(t.Context(), "random.ns2", nil); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("unknown namespace: %v", err)
	}
}

func TestNamespaceMetadata(t *testing.T) {
	c := configured(t, "random://?namespaces=2&docs=10&size=2000")
	md, err := c.NamespaceMetadata(t.Context(), "random.ns1")
	if err != nil || md.Count != 10 || md.SizeBytes != 20000 {
		t.Errorf("metadata %+v, %v", md, err)
	}
	if _, err := c.NamespaceMetadata(t.Context(), "random.ns2"); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("unknown namespace: %v", err)
	}
}

func TestInfo(t *testing.T) {
	c := configured(t, "random://?seed=7&docs=20&updates=3")
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "random:seed=7,namespaces=1,docs=20,size=1024" || info.DBType != "random" || info.Source == nil || info.Sink != nil {
		t.Errorf("info %+v", info)
	}
	s := info.Source
	if !s.MultiNamespacePlan || !s.DefaultPlan || !s.GetByIDs || !s.Updates || !s.AckUpdates || !s.LSNStream {
		t.Errorf("capabilities %+v", s)
	}
}

func TestNotConfigured(t *testing.T) {
	c := New()
	ctx := t.Context()
	calls := map[string]error{}
	_, calls["Info"] = c.Info(ctx)
	_, calls["NamespaceMetadata"] = c.NamespaceMetadata(ctx, "random.ns0")
	_, calls["GeneratePlan"] = c.GeneratePlan(ctx, sdk.PlanRequest{})
	_, calls["ListData"] = c.ListData(ctx, sdk.Partition{}, nil)
	_, calls["GetByIDs"] = c.GetByIDs(ctx, "random.ns0", nil)
	calls["AckUpdates"] = c.AckUpdates(ctx, nil)
	calls["StreamUpdates"] = c.StreamUpdates(ctx, sdk.StreamRequest{}, func(sdk.UpdateBatch) error { return nil })
	calls["StreamLSN"] = c.StreamLSN(ctx, sdk.StreamRequest{}, func(uint64) error { return nil })
	for name, err := range calls {
		if sdk.KindOf(err) != sdk.KindFailedPrecondition {
			t.Errorf("%s before Configure: %v, want failed precondition", name, err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	c := configured(t, "random://?docs=10")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.ListData(ctx, sdk.Partition{Namespace: "random.ns0", Cursor: []byte("p1:0:0:10")}, nil); sdk.KindOf(err) != sdk.KindCanceled {
		t.Errorf("ListData: %v", err)
	}
	if _, err := c.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true}); sdk.KindOf(err) != sdk.KindCanceled {
		t.Errorf("GeneratePlan: %v", err)
	}
	if err := New().Configure(ctx, sdk.Config{URL: "random://"}); sdk.KindOf(err) != sdk.KindCanceled {
		t.Errorf("Configure: %v", err)
	}
}

func TestDatabaseNameSelectsEveryNamespace(t *testing.T) {
	c := New()
	ctx := context.Background()
	if err := c.Configure(ctx, sdk.Config{URL: "random://?namespaces=3&docs=10&partitions=1&updates=5"}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.GeneratePlan(ctx, sdk.PlanRequest{Namespaces: []string{"random"}, InitialSync: true, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range plan.Partitions {
		got[p.Namespace] = true
	}
	if len(got) != 3 || !got["random.ns0"] || !got["random.ns2"] {
		t.Fatalf("plan of database random covers %v", got)
	}
	if _, err := c.GeneratePlan(ctx, sdk.PlanRequest{Namespaces: []string{"other"}, InitialSync: true}); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Fatalf("unknown database: %v", err)
	}
}
