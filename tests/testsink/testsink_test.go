package testsink_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/tests/testsink"
)

func raw(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idv(t testing.TB, v any) bson.RawValue {
	t.Helper()
	typ, val, err := bson.MarshalValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return bson.RawValue{Type: typ, Value: val}
}

// configure returns a connector configured on a fresh directory with the
// given URL query ("" or "?...").
func configure(t *testing.T, query string) (*testsink.Connector, string) {
	t.Helper()
	dir := t.TempDir()
	return configureDir(t, dir, query), dir
}

func configureDir(t *testing.T, dir, query string) *testsink.Connector {
	t.Helper()
	c := testsink.New()
	if err := c.Configure(context.Background(), sdk.Config{URL: "testsink://" + dir + query}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// inspect closes c and opens its store for inspection.
func inspect(t *testing.T, c *testsink.Connector, dir string) *testsink.Store {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err := testsink.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func docs(t *testing.T, s *testsink.Store, ns string) map[string]bson.Raw {
	t.Helper()
	d, err := s.Docs(ns)
	if err != nil {
		t.Fatalf("Docs(%q): %v", ns, err)
	}
	return d
}

func counters(t *testing.T, s *testsink.Store) testsink.Counters {
	t.Helper()
	c, err := s.Counters()
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	return c
}

func TestParseURL(t *testing.T) {
	valid := []struct {
		url  string
		want testsink.Options
	}{
		{"testsink:///data/x", testsink.Options{Dir: "/data/x", PartitionDocs: testsink.DefaultPartitionDocs, PageDocs: testsink.DefaultPageDocs}},
		{"TESTSINK:///data/x/", testsink.Options{Dir: "/data/x", PartitionDocs: testsink.DefaultPartitionDocs, PageDocs: testsink.DefaultPageDocs}},
		{"testsink:///data/with%20space", testsink.Options{Dir: "/data/with space", PartitionDocs: testsink.DefaultPartitionDocs, PageDocs: testsink.DefaultPageDocs}},
		{
			"testsink:///d?fail=fatal-id:42&fail=fatal-id:abc&delay=5ms&partition-docs=7&page-docs=3",
			testsink.Options{Dir: "/d", FatalIDs: []string{"42", "abc"}, Delay: 5 * time.Millisecond, PartitionDocs: 7, PageDocs: 3},
		},
		{"testsink:///d?delay=0s", testsink.Options{Dir: "/d", PartitionDocs: testsink.DefaultPartitionDocs, PageDocs: testsink.DefaultPageDocs}},
	}
	for _, tt := range valid {
		got, err := testsink.ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}

	invalid := []struct {
		url, want string
	}{
		{"", "scheme"},
		{"file:///d", "scheme"},
		{"testsink:relative/dir", "absolute"},
		{"testsink://", "no store directory"},
		{"testsink://host/d", "three slashes"},
		{"testsink://user@/d", "user"},
		{"testsink:///d#frag", "fragment"},
		{"testsink:///d?bogus=1", `unknown option "bogus"`},
		{"testsink:///d?fail=crash", "unknown fail mode"},
		{"testsink:///d?fail=fatal-id:", "needs an id"},
		{"testsink:///d?delay=soon", "not a duration"},
		{"testsink:///d?delay=-1s", "negative"},
		{"testsink:///d?delay=1s&delay=2s", "given 2 times"},
		{"testsink:///d?partition-docs=0", "positive integer"},
		{"testsink:///d?partition-docs=x", "positive integer"},
		{"testsink:///d?page-docs=-3", "positive integer"},
		{"testsink:///d?page-docs=1&page-docs=2", "given 2 times"},
		{"testsink:///d?a=%zz", "invalid URL query"},
		{"testsink://[::1", "invalid URL"},
	}
	for _, tt := range invalid {
		_, err := testsink.ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", tt.url)
			continue
		}
		if k := sdk.KindOf(err); k != sdk.KindInvalidArgument {
			t.Errorf("ParseURL(%q): kind %v, want invalid argument", tt.url, k)
		}
		if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
			t.Errorf("ParseURL(%q) = %q, want one line containing %q", tt.url, msg, tt.want)
		}
	}
}

func TestOptionsURLRoundTrip(t *testing.T) {
	opts := []testsink.Options{
		{Dir: "/tmp/a b/c", PartitionDocs: testsink.DefaultPartitionDocs, PageDocs: testsink.DefaultPageDocs},
		{Dir: "/x", FatalIDs: []string{"1", "a:b&c"}, Delay: time.Second, PartitionDocs: 3, PageDocs: 9},
	}
	for _, o := range opts {
		got, err := testsink.ParseURL(o.URL())
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", o.URL(), err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", o.URL(), got, o)
		}
	}
	if got, want := testsink.URL("/data/x"), "testsink:///data/x"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}

func TestConfigureInvalidURL(t *testing.T) {
	c := testsink.New()
	err := c.Configure(context.Background(), sdk.Config{URL: "testsink://relative/path"})
	if sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Fatalf("Configure = %v (kind %v), want invalid argument", err, sdk.KindOf(err))
	}
	if _, err := c.Info(context.Background()); !errors.Is(err, sdk.ErrNotConfigured) {
		t.Errorf("Info after failed Configure = %v, want ErrNotConfigured", err)
	}
}

func TestNotConfigured(t *testing.T) {
	ctx := context.Background()
	c := testsink.New()
	calls := map[string]func() error{
		"Info":              func() error { _, err := c.Info(ctx); return err },
		"WriteData":         func() error { return c.WriteData(ctx, "ns", nil) },
		"WriteUpdates":      func() error { return c.WriteUpdates(ctx, "ns", nil) },
		"NamespaceMetadata": func() error { _, err := c.NamespaceMetadata(ctx, "ns"); return err },
		"GeneratePlan":      func() error { _, err := c.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true}); return err },
		"ListData":          func() error { _, err := c.ListData(ctx, sdk.Partition{Namespace: "ns"}, nil); return err },
		"GetByIDs":          func() error { _, err := c.GetByIDs(ctx, "ns", nil); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, sdk.ErrNotConfigured) || sdk.KindOf(err) != sdk.KindFailedPrecondition {
			t.Errorf("%s before Configure = %v, want a failed precondition wrapping ErrNotConfigured", name, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close of an unconfigured connector: %v", err)
	}
}

func TestInfo(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "testsink:"+dir || info.DBType != testsink.DBType {
		t.Errorf("Info = %+v", info)
	}
	if info.Sink == nil || info.Source == nil || !info.Source.GetByIDs || !info.Source.DefaultPlan ||
		!info.Source.MultiNamespacePlan || info.Source.Updates || info.Source.AckUpdates || info.Source.LSNStream {
		t.Errorf("capabilities = source %+v, sink %+v", info.Source, info.Sink)
	}

	// The same directory, written differently, is the same dataset.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	again := configureDir(t, dir+"/", "?delay=1ms")
	info2, err := again.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info2.ID != info.ID {
		t.Errorf("ID changed from %q to %q for the same directory", info.ID, info2.ID)
	}
	other, _ := configure(t, "")
	info3, err := other.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info3.ID == info.ID {
		t.Errorf("two directories share the ID %q", info.ID)
	}
}

func TestWriteDataUpsertsAndCounts(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	v1 := []bson.Raw{
		raw(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: int32(1)}}),
		raw(t, bson.D{{Key: "_id", Value: int32(2)}, {Key: "v", Value: int32(1)}}),
		raw(t, bson.D{{Key: "_id", Value: int32(3)}, {Key: "v", Value: int32(1)}}),
	}
	// Field order and types are kept byte for byte.
	v2 := raw(t, bson.D{{Key: "v", Value: int64(2)}, {Key: "_id", Value: int32(2)}})
	for _, batch := range [][]bson.Raw{v1, v1, {v2}} {
		if err := c.WriteData(ctx, "db.c", batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteData(ctx, "db.other", v1[:1]); err != nil {
		t.Fatal(err)
	}
	s := inspect(t, c, dir)
	got := docs(t, s, "db.c")
	want := map[string]bson.Raw{
		testsink.IDOf(int32(1)): v1[0],
		testsink.IDOf(int32(2)): v2,
		testsink.IDOf(int32(3)): v1[2],
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Docs = %v, want %v", got, want)
	}
	nss, err := s.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"db.c", "db.other"}; !reflect.DeepEqual(nss, want) {
		t.Errorf("Namespaces = %q, want %q", nss, want)
	}
	wantCounters := testsink.Counters{
		DocsWritten: 8,
		DataCalls:   4,
		Namespaces: map[string]testsink.NamespaceCounters{
			"db.c":     {DocsWritten: 7},
			"db.other": {DocsWritten: 1},
		},
	}
	if got := counters(t, s); !reflect.DeepEqual(got, wantCounters) {
		t.Errorf("Counters = %+v, want %+v", got, wantCounters)
	}
	if n, err := s.Count("db.c"); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
	doc, ok, err := s.Get("db.c", idv(t, int32(2)))
	if err != nil || !ok || string(doc) != string(v2) {
		t.Errorf("Get = %v, %v, %v; want %v", doc, ok, err, v2)
	}
	if _, ok, err := s.Get("db.c", idv(t, int32(9))); err != nil || ok {
		t.Errorf("Get(missing) = %v, %v", ok, err)
	}
}

func TestWriteDataRejectsDocumentsWithoutID(t *testing.T) {
	c, _ := configure(t, "")
	err := c.WriteData(context.Background(), "ns", []bson.Raw{raw(t, bson.D{{Key: "x", Value: int32(1)}})})
	if err == nil || sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), "no _id") {
		t.Errorf("WriteData without _id = %v", err)
	}
}

func TestIDsAreTypeDistinct(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	ids := []any{int32(1), int64(1), 1.0, "1", bson.D{{Key: "a", Value: int32(1)}}, bson.A{int32(1)}, true, bson.Null{}, bson.MinKey{}}
	var batch []bson.Raw
	for i, id := range ids {
		batch = append(batch, raw(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: int32(i)}}))
	}
	if err := c.WriteData(ctx, "ns", batch); err != nil {
		t.Fatal(err)
	}
	var rvs []bson.RawValue
	for _, id := range ids {
		rvs = append(rvs, idv(t, id))
	}
	got, err := c.GetByIDs(ctx, "ns", rvs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if string(got[i]) != string(batch[i]) {
			t.Errorf("GetByIDs(%#v) = %v, want %v", ids[i], got[i], batch[i])
		}
	}
	s := inspect(t, c, dir)
	stored := docs(t, s, "ns")
	if len(stored) != len(ids) {
		t.Fatalf("stored %d documents, want %d: %v", len(stored), len(ids), stored)
	}
	for i, id := range ids {
		if string(stored[testsink.IDOf(id)]) != string(batch[i]) {
			t.Errorf("Docs[IDOf(%#v)] = %v, want %v", id, stored[testsink.IDOf(id)], batch[i])
		}
	}
	if a, b := testsink.IDOf(int32(1)), testsink.IDOf("1"); a != `{"$numberInt":"1"}` || b != `"1"` {
		t.Errorf("IDOf(int32(1)) = %s, IDOf(\"1\") = %s", a, b)
	}
}

func TestWriteUpdates(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	doc := func(id any, kvs ...bson.E) bson.Raw {
		return raw(t, append(bson.D{{Key: "_id", Value: id}}, kvs...))
	}
	upd := func(typ sdk.UpdateType, id any, d bson.Raw, unset ...string) sdk.Update {
		return sdk.Update{ID: idv(t, id), Type: typ, Doc: d, Unset: unset}
	}
	set := func(kvs ...bson.E) bson.Raw { return raw(t, kvs) }
	if err := c.WriteData(ctx, "ns", []bson.Raw{
		doc(int32(1), bson.E{Key: "a", Value: int32(1)}),
		doc(int32(2), bson.E{Key: "a", Value: int32(2)}),
		doc(int32(3), bson.E{Key: "sub", Value: bson.D{{Key: "x", Value: int32(1)}, {Key: "y", Value: int32(1)}}}),
	}); err != nil {
		t.Fatal(err)
	}
	ups := []sdk.Update{
		upd(sdk.UpdateReplace, int32(1), doc(int32(1), bson.E{Key: "b", Value: "replaced"})),
		upd(sdk.UpdateDelete, int32(2), nil),
		upd(sdk.UpdateDelete, int32(404), nil),                                         // missing: fine
		upd(sdk.UpdateReplace, int32(4), doc(int32(4), bson.E{Key: "r", Value: true})), // missing: inserted
		upd(sdk.UpdatePartial, int32(3), set(bson.E{Key: "sub.x", Value: int32(2)}, bson.E{Key: "sub.z.w", Value: "deep"}), "sub.y"),
		upd(sdk.UpdatePartial, int32(5), set(bson.E{Key: "p.q", Value: int32(5)})), // missing: created
		// Several updates of one id in one call apply in order.
		upd(sdk.UpdateInsert, int32(6), doc(int32(6), bson.E{Key: "n", Value: int32(0)})),
		upd(sdk.UpdatePartial, int32(6), set(bson.E{Key: "n", Value: int32(1)})),
		upd(sdk.UpdatePartial, int32(6), set(bson.E{Key: "m", Value: int32(1)}), "n"),
		upd(sdk.UpdateInsert, int32(7), doc(int32(7))),
		upd(sdk.UpdateDelete, int32(7), nil),
		upd(sdk.UpdatePartial, int32(8), nil, "nothing"), // missing, nothing set: just the _id
	}
	// Idempotent: replaying the same call gives the same state.
	for range 2 {
		if err := c.WriteUpdates(ctx, "ns", ups); err != nil {
			t.Fatal(err)
		}
	}
	s := inspect(t, c, dir)
	want := map[string]bson.Raw{
		testsink.IDOf(int32(1)): doc(int32(1), bson.E{Key: "b", Value: "replaced"}),
		testsink.IDOf(int32(3)): doc(int32(3), bson.E{Key: "sub", Value: bson.D{{Key: "x", Value: int32(2)}, {Key: "z", Value: bson.D{{Key: "w", Value: "deep"}}}}}),
		testsink.IDOf(int32(4)): doc(int32(4), bson.E{Key: "r", Value: true}),
		testsink.IDOf(int32(5)): doc(int32(5), bson.E{Key: "p", Value: bson.D{{Key: "q", Value: int32(5)}}}),
		testsink.IDOf(int32(6)): doc(int32(6), bson.E{Key: "m", Value: int32(1)}),
		testsink.IDOf(int32(8)): doc(int32(8)),
	}
	got := docs(t, s, "ns")
	for k, w := range want {
		if string(got[k]) != string(w) {
			t.Errorf("document %s = %v, want %v", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected document %s = %v", k, got[k])
		}
	}
	cs := counters(t, s)
	n := uint64(len(ups))
	if cs.UpdatesApplied != 2*n || cs.UpdateCalls != 2 || cs.Namespaces["ns"].UpdatesApplied != 2*n || cs.DocsWritten != 3 {
		t.Errorf("Counters = %+v, want %d updates in 2 calls after 3 documents", cs, 2*n)
	}
}

// TestWriteUpdatesReplayConverges replays a stream from an earlier position
// over a state that already holds its end, as the coordinator does after a
// restart: every suffix of the stream must lead to the same state.
func TestWriteUpdatesReplayConverges(t *testing.T) {
	ctx := context.Background()
	id := int32(1)
	doc := func(kvs ...bson.E) bson.Raw { return raw(t, append(bson.D{{Key: "_id", Value: id}}, kvs...)) }
	stream := []sdk.Update{
		{Type: sdk.UpdateInsert, Doc: doc(bson.E{Key: "a", Value: bson.D{{Key: "b", Value: int32(1)}}})},
		{Type: sdk.UpdatePartial, Doc: raw(t, bson.D{{Key: "a.b", Value: int32(2)}, {Key: "arr", Value: bson.A{int32(0)}}})},
		{Type: sdk.UpdateReplace, Doc: doc(bson.E{Key: "a", Value: int32(5)}, bson.E{Key: "arr", Value: bson.A{}})},
		{Type: sdk.UpdatePartial, Doc: raw(t, bson.D{{Key: "arr.2", Value: "x"}}), Unset: []string{"a"}},
		{Type: sdk.UpdateDelete},
		{Type: sdk.UpdatePartial, Doc: raw(t, bson.D{{Key: "a.c", Value: int32(3)}})},
	}
	for i := range stream {
		stream[i].ID = idv(t, id)
	}
	want := doc(bson.E{Key: "a", Value: bson.D{{Key: "c", Value: int32(3)}}})
	c, _ := configure(t, "")
	for _, u := range stream {
		if err := c.WriteUpdates(ctx, "ns", []sdk.Update{u}); err != nil {
			t.Fatal(err)
		}
	}
	for from := range stream {
		if err := c.WriteUpdates(ctx, "ns", stream[from:]); err != nil {
			t.Fatalf("replay from %d: %v", from, err)
		}
		got, err := c.GetByIDs(ctx, "ns", []bson.RawValue{idv(t, id)})
		if err != nil {
			t.Fatal(err)
		}
		if string(got[0]) != string(want) {
			t.Errorf("after replay from %d: %v, want %v", from, got[0], want)
		}
	}
}

func TestWriteUpdatesRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	c, _ := configure(t, "")
	tests := []struct {
		name string
		u    sdk.Update
		want string
	}{
		{"no id", sdk.Update{Type: sdk.UpdateDelete}, "empty _id"},
		{"unknown type", sdk.Update{ID: idv(t, int32(1)), Type: 99}, "unknown update type"},
		{"replace without document", sdk.Update{ID: idv(t, int32(1)), Type: sdk.UpdateReplace}, "invalid BSON"},
		{
			"replace with another _id",
			sdk.Update{ID: idv(t, int32(1)), Type: sdk.UpdateReplace, Doc: raw(t, bson.D{{Key: "_id", Value: "1"}})},
			"differs",
		},
	}
	for _, tt := range tests {
		// A good update before the bad one is not applied either.
		ups := []sdk.Update{{ID: idv(t, "good"), Type: sdk.UpdatePartial}, tt.u}
		err := c.WriteUpdates(ctx, "ns", ups)
		if err == nil || sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "update 1") {
			t.Errorf("%s: WriteUpdates = %v, want a fatal error about update 1 containing %q", tt.name, err, tt.want)
		}
	}
	got, err := c.GetByIDs(ctx, "ns", []bson.RawValue{idv(t, "good")})
	if err != nil || got[0] != nil {
		t.Errorf("a failed call left a document behind: %v, %v", got, err)
	}
}

func TestFailOption(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "?fail=fatal-id:42")
	good := raw(t, bson.D{{Key: "_id", Value: int32(41)}})
	for _, bad := range []any{int32(42), int64(42), "42"} {
		err := c.WriteData(ctx, "db.coll", []bson.Raw{good, raw(t, bson.D{{Key: "_id", Value: bad}})})
		if !errors.Is(err, testsink.ErrRejected) || sdk.KindOf(err) != sdk.KindFatal {
			t.Fatalf("WriteData with _id %#v = %v, want a fatal ErrRejected", bad, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "db.coll") || !strings.Contains(msg, "42") {
			t.Errorf("error %q does not name the namespace and the id", msg)
		}
		err = c.WriteUpdates(ctx, "db.coll", []sdk.Update{{ID: idv(t, bad), Type: sdk.UpdatePartial}})
		if !errors.Is(err, testsink.ErrRejected) || sdk.KindOf(err) != sdk.KindFatal {
			t.Errorf("WriteUpdates with _id %#v = %v, want a fatal ErrRejected", bad, err)
		}
	}
	// Other ids pass.
	if err := c.WriteData(ctx, "db.coll", []bson.Raw{raw(t, bson.D{{Key: "_id", Value: "420"}})}); err != nil {
		t.Fatal(err)
	}
	s := inspect(t, c, dir)
	got := docs(t, s, "db.coll")
	if len(got) != 1 || got[testsink.IDOf("420")] == nil {
		t.Errorf("stored %v, want only _id \"420\" (rejected calls store nothing)", got)
	}
	if cs := counters(t, s); cs.DocsWritten != 1 || cs.DataCalls != 1 || cs.UpdatesApplied != 0 {
		t.Errorf("Counters = %+v: rejected calls were counted", cs)
	}
}

func TestDelay(t *testing.T) {
	c, _ := configure(t, "?delay=60ms")
	doc := []bson.Raw{raw(t, bson.D{{Key: "_id", Value: int32(1)}})}
	start := time.Now()
	if err := c.WriteData(context.Background(), "ns", doc); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("WriteData took %v, want at least the 60ms delay", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := c.WriteUpdates(ctx, "ns", []sdk.Update{{ID: idv(t, int32(2)), Type: sdk.UpdateDelete}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteUpdates past its deadline = %v", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("cancelled WriteUpdates took %v", d)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	d1 := raw(t, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: int32(1)}})
	if err := c.WriteData(ctx, "ns", []bson.Raw{d1}); err != nil {
		t.Fatal(err)
	}
	// The store admits one process at a time, and this process already has
	// it open through c.
	if s, err := testsink.Open(dir); err == nil {
		_ = s.Close()
		t.Error("Open succeeded while the connector holds the store")
	}
	s := inspect(t, c, dir)
	if got := docs(t, s, "ns"); len(got) != 1 {
		t.Fatalf("after reopen: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Docs("ns"); err == nil {
		t.Error("Docs on a closed store succeeded")
	}

	c2 := configureDir(t, dir, "")
	got, err := c2.GetByIDs(ctx, "ns", []bson.RawValue{idv(t, "a"), idv(t, "b")})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0]) != string(d1) || got[1] != nil {
		t.Errorf("GetByIDs after reopen = %v", got)
	}
	if err := c2.WriteUpdates(ctx, "ns", []sdk.Update{{ID: idv(t, "b"), Type: sdk.UpdatePartial}}); err != nil {
		t.Fatal(err)
	}
	s2 := inspect(t, c2, dir)
	want := testsink.Counters{
		DocsWritten: 1, UpdatesApplied: 1, DataCalls: 1, UpdateCalls: 1,
		Namespaces: map[string]testsink.NamespaceCounters{"ns": {DocsWritten: 1, UpdatesApplied: 1}},
	}
	if cs := counters(t, s2); !reflect.DeepEqual(cs, want) {
		t.Errorf("Counters = %+v, want %+v", cs, want)
	}
}

func TestOpenMissingStore(t *testing.T) {
	_, err := testsink.Open(filepath.Join(t.TempDir(), "none"))
	if !errors.Is(err, testsink.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
	_, err = testsink.Open(t.TempDir()) // exists, but holds no store
	if !errors.Is(err, testsink.ErrNotExist) {
		t.Errorf("Open(empty dir) = %v, want ErrNotExist", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	c, dir := configure(t, "")
	const workers, calls, perCall = 8, 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := fmt.Sprintf("ns%d", w%2)
			for i := range calls {
				var batch []bson.Raw
				for j := range perCall {
					batch = append(batch, raw(t, bson.D{{Key: "_id", Value: fmt.Sprintf("w%d-%d", w, j)}, {Key: "i", Value: int32(i)}}))
				}
				if err := c.WriteData(ctx, ns, batch); err != nil {
					errs <- err
					return
				}
				if err := c.WriteUpdates(ctx, ns, []sdk.Update{{ID: idv(t, fmt.Sprintf("w%d-u", w)), Type: sdk.UpdatePartial, Doc: raw(t, bson.D{{Key: "i", Value: int32(i)}})}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := inspect(t, c, dir)
	cs := counters(t, s)
	if cs.DocsWritten != workers*calls*perCall || cs.DataCalls != workers*calls ||
		cs.UpdatesApplied != workers*calls || cs.UpdateCalls != workers*calls {
		t.Errorf("Counters = %+v", cs)
	}
	for _, ns := range []string{"ns0", "ns1"} {
		got := docs(t, s, ns)
		unique := uint64(len(got) - workers/2) // minus the partial-update documents
		if unique != workers/2*perCall {
			t.Errorf("%s holds %d documents", ns, len(got))
		}
		if recopied := cs.Namespaces[ns].DocsWritten - unique; recopied != workers/2*perCall*(calls-1) {
			t.Errorf("%s: %d re-copied documents", ns, recopied)
		}
	}
}

// readAll reads every partition of plan, reconnecting to the store after
// the first page of each partition to prove that cursors are durable.
func readAll(t *testing.T, dir, query string, pageDocs int, c *testsink.Connector, plan sdk.Plan) (*testsink.Connector, map[string]map[string]int) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]map[string]int{}
	for _, p := range plan.Partitions {
		var cursor []byte
		for page := 0; ; page++ {
			pg, err := c.ListData(ctx, p, cursor)
			if err != nil {
				t.Fatalf("ListData(%s, page %d): %v", p.Namespace, page, err)
			}
			if len(pg.Docs) > pageDocs {
				t.Errorf("page of %d documents, want at most %d", len(pg.Docs), pageDocs)
			}
			for _, d := range pg.Docs {
				if seen[p.Namespace] == nil {
					seen[p.Namespace] = map[string]int{}
				}
				seen[p.Namespace][testsink.IDString(d.Lookup("_id"))]++
			}
			if len(pg.NextCursor) == 0 {
				break
			}
			cursor = pg.NextCursor
			if page == 0 {
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				c = configureDir(t, dir, query)
			}
		}
	}
	return c, seen
}

func TestSourceReadsBackEverythingOnce(t *testing.T) {
	ctx := context.Background()
	const query = "?partition-docs=1000&page-docs=300"
	c, dir := configure(t, query)
	counts := map[string]int{"a.big": 2500, "a.small": 7, "b\x00weird": 1}
	for ns, n := range counts {
		var batch []bson.Raw
		for i := range n {
			// Mixed id types, so partitions cut across types.
			var id any = int64(i)
			if i%3 == 0 {
				id = fmt.Sprint(i)
			}
			batch = append(batch, raw(t, bson.D{{Key: "_id", Value: id}, {Key: "ns", Value: ns}}))
		}
		if err := c.WriteData(ctx, ns, batch); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := c.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	perNS := map[string]int{}
	estimated := map[string]uint64{}
	for _, p := range plan.Partitions {
		perNS[p.Namespace]++
		estimated[p.Namespace] += p.EstimatedCount
	}
	if want := map[string]int{"a.big": 3, "a.small": 1, "b\x00weird": 1}; !reflect.DeepEqual(perNS, want) {
		t.Errorf("partitions per namespace = %v, want %v", perNS, want)
	}
	for ns, n := range counts {
		if estimated[ns] != uint64(n) {
			t.Errorf("%s: estimated %d documents, want %d", ns, estimated[ns], n)
		}
		md, err := c.NamespaceMetadata(ctx, ns)
		if err != nil || md.Count != uint64(n) || md.SizeBytes == 0 {
			t.Errorf("NamespaceMetadata(%q) = %+v, %v", ns, md, err)
		}
	}
	c, seen := readAll(t, dir, query, 300, c, plan)
	for ns, n := range counts {
		if len(seen[ns]) != n {
			t.Errorf("%s: read %d distinct documents, want %d", ns, len(seen[ns]), n)
		}
		for id, k := range seen[ns] {
			if k != 1 {
				t.Errorf("%s: document %s read %d times", ns, id, k)
			}
		}
	}

	// An explicit plan; a namespace without documents reads as empty.
	plan, err = c.GeneratePlan(ctx, sdk.PlanRequest{Namespaces: []string{"a.small", "none", "a.small"}, InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Partitions) != 2 {
		t.Fatalf("plan = %+v, want one partition for each distinct namespace", plan)
	}
	pg, err := c.ListData(ctx, plan.Partitions[1], nil)
	if err != nil || len(pg.Docs) != 0 || pg.NextCursor != nil {
		t.Errorf("ListData(none) = %+v, %v", pg, err)
	}
	// An empty partition cursor means the whole namespace.
	pg, err = c.ListData(ctx, sdk.Partition{Namespace: "a.small"}, nil)
	if err != nil || len(pg.Docs) != 7 {
		t.Errorf("ListData(whole a.small) = %d documents, %v", len(pg.Docs), err)
	}
	if _, err := c.ListData(ctx, sdk.Partition{Namespace: "a.small", Cursor: []byte("junk")}, nil); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("ListData with a bad partition cursor = %v", err)
	}
	if _, err := c.ListData(ctx, plan.Partitions[0], []byte{1, 2, 3}); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("ListData with a bad cursor = %v", err)
	}
	if plan, err := c.GeneratePlan(ctx, sdk.PlanRequest{}); err != nil || len(plan.Partitions)+len(plan.UpdatesPartitions) != 0 {
		t.Errorf("GeneratePlan with nothing asked = %+v, %v", plan, err)
	}
	if _, err := c.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true, Updates: true}); sdk.KindOf(err) != sdk.KindUnimplemented {
		t.Errorf("GeneratePlan for updates = %v, want unimplemented", err)
	}
}

func TestListDataPagesByBytes(t *testing.T) {
	ctx := context.Background()
	c, _ := configure(t, "")
	big := strings.Repeat("x", 1500<<10)
	for i := range 6 {
		if err := c.WriteData(ctx, "ns", []bson.Raw{raw(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "p", Value: big}})}); err != nil {
			t.Fatal(err)
		}
	}
	var cursor []byte
	var sizes []int
	for {
		pg, err := c.ListData(ctx, sdk.Partition{Namespace: "ns"}, cursor)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(pg.Docs))
		if cursor = pg.NextCursor; len(cursor) == 0 {
			break
		}
	}
	if want := []int{2, 2, 2}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("page sizes = %v, want %v (4 MiB pages)", sizes, want)
	}
}

func TestGetByIDs(t *testing.T) {
	ctx := context.Background()
	c, _ := configure(t, "")
	a := raw(t, bson.D{{Key: "_id", Value: "a"}})
	b := raw(t, bson.D{{Key: "_id", Value: "b"}})
	if err := c.WriteData(ctx, "ns", []bson.Raw{a, b}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetByIDs(ctx, "ns", []bson.RawValue{idv(t, "b"), idv(t, "x"), idv(t, "a"), idv(t, "b")})
	if err != nil {
		t.Fatal(err)
	}
	want := []bson.Raw{b, nil, a, b}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetByIDs = %v, want %v", got, want)
	}
	if got, err := c.GetByIDs(ctx, "other", []bson.RawValue{idv(t, "a")}); err != nil || got[0] != nil {
		t.Errorf("GetByIDs in another namespace = %v, %v", got, err)
	}
	if _, err := c.GetByIDs(ctx, "ns", []bson.RawValue{{}}); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("GetByIDs with an empty id = %v", err)
	}
}
