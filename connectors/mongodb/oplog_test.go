package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

// model is the state a sink would hold: documents by _id.
type model map[string]bson.Raw

func (m model) apply(u sdk.Update) {
	k := idKey(u.ID)
	switch u.Type {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		m[k] = u.Doc
	case sdk.UpdateDelete:
		delete(m, k)
	}
}

// event is what a change stream delivered, for comparison with the oplog.
type event struct {
	typ sdk.UpdateType
	id  string
}

// collector runs StreamUpdates in a goroutine and records its batches.
type collector struct {
	mu      sync.Mutex
	batches []sdk.UpdateBatch
	cancel  context.CancelFunc
	done    chan error
}

func stream(t *testing.T, c *Connector, nss []string, cursor []byte) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	col := &collector{cancel: cancel, done: make(chan error, 1)}
	go func() {
		col.done <- c.StreamUpdates(ctx, sdk.StreamRequest{Namespaces: nss, Cursor: cursor}, func(b sdk.UpdateBatch) error {
			if b.SourceTime.IsZero() || len(b.NextCursor) == 0 {
				return fmt.Errorf("batch without source time or cursor: %+v", b)
			}
			col.mu.Lock()
			col.batches = append(col.batches, b)
			col.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { col.stop(t) })
	return col
}

// stop cancels the stream and checks that it ended with ctx's error.
func (col *collector) stop(t *testing.T) {
	t.Helper()
	if col.cancel == nil {
		return
	}
	col.cancel()
	col.cancel = nil
	select {
	case err := <-col.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("StreamUpdates ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("StreamUpdates did not return within 10s of cancel")
	}
}

// waitFor waits until cond holds on the batches so far.
func (col *collector) waitFor(t *testing.T, what string, d time.Duration, cond func([]sdk.UpdateBatch) bool) []sdk.UpdateBatch {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		col.mu.Lock()
		bs := append([]sdk.UpdateBatch(nil), col.batches...)
		col.mu.Unlock()
		if cond(bs) {
			return bs
		}
		select {
		case err := <-col.done:
			t.Fatalf("waiting for %s: stream ended: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v (%d batches)", what, d, len(bs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasID(bs []sdk.UpdateBatch, id bson.RawValue) bool {
	for _, b := range bs {
		for _, u := range b.Updates {
			if idKey(u.ID) == idKey(id) {
				return true
			}
		}
	}
	return false
}

func rawID(v any) bson.RawValue {
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: v}})
	if err != nil {
		panic(err)
	}
	return copyValue(bson.Raw(doc).Lookup("_id"))
}

// mutate makes n random changes to ns across _id types, starting from the
// existing ids; fresh ids come from gen past the first skip.
func mutate(t *testing.T, cl *mongo.Client, ns string, existing []any, gen func(int) []any, skip, n int, seed int64) {
	t.Helper()
	db, cn, _ := splitNamespace(ns)
	coll := cl.Database(db).Collection(cn)
	rng := rand.New(rand.NewSource(seed))
	fresh := gen(skip + n)[skip:]
	live := append([]any(nil), existing...)
	ctx := testCtx(t)
	for i := range n {
		var err error
		switch r := rng.Intn(10); {
		case r < 3 || len(live) == 0:
			id := fresh[i]
			_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: int32(i)}, {Key: "new", Value: true}})
			live = append(live, id)
		case r < 6:
			id := live[rng.Intn(len(live))]
			_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: int32(i)}, {Key: "sub.x", Value: "y"}}}, {Key: "$unset", Value: bson.D{{Key: "pad", Value: ""}}}})
		case r < 8:
			id := live[rng.Intn(len(live))]
			_, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "_id", Value: id}, {Key: "replaced", Value: int32(i)}})
		default:
			k := rng.Intn(len(live))
			_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: live[k]}})
			live = append(live[:k], live[k+1:]...)
		}
		if err != nil {
			t.Errorf("mutate %s #%d: %v", ns, i, err)
			return
		}
	}
}

// oplogEvents returns the changes the oplog recorded for ns after ts.
func oplogEvents(t *testing.T, cl *mongo.Client, ns string, after bson.Timestamp) []event {
	t.Helper()
	cur, err := cl.Database("local").Collection("oplog.rs").Find(testCtx(t),
		bson.D{{Key: "ns", Value: ns}, {Key: "ts", Value: bson.D{{Key: "$gt", Value: after}}}},
		options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []event
	for cur.Next(testCtx(t)) {
		e, err := parseOplogEntry(cur.Current)
		if err != nil {
			t.Fatal(err)
		}
		switch e.op {
		case "i":
			out = append(out, event{sdk.UpdateInsert, idKey(e.o.Lookup("_id"))})
		case "u":
			out = append(out, event{sdk.UpdateReplace, idKey(e.o2.Lookup("_id"))})
		case "d":
			out = append(out, event{sdk.UpdateDelete, idKey(e.o.Lookup("_id"))})
		}
	}
	return out
}

// Copy plus oplog CDC under concurrent changes across _id types, stopped
// mid-stream and resumed by a new connector from the saved cursor, gives
// exactly the source: every oplog change of the namespace once, in order,
// and the same documents.
func TestOplogCopyAndCDCExact(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, true)
	runCDCExact(t, cdcSuite{uri: uri, db: "cdc", mode: CDCOplog, ids: mixedIDs, compareOplog: true})
}

// cdcSuite describes one run of the copy-and-CDC suite.
type cdcSuite struct {
	uri  string
	db   string
	mode CDCMode
	// ids returns n distinct _ids; the first ones seed the collection,
	// later ones are inserted by the changes.
	ids func(n int) []any
	// compareOplog checks the delivered changes against the oplog one by
	// one (servers whose oplog holds whole documents, i.e. FerretDB).
	compareOplog bool
	// query holds extra URL options.
	query string
}

func runCDCExact(t *testing.T, s cdcSuite) {
	cl := connect(t, s.uri)
	ns, other := s.db+".c", s.db+".other"
	ids := s.ids(300)
	seed(t, cl, ns, ids, 50)
	seed(t, cl, other, s.ids(20), 0)
	q := "partitionDocs=60&pageDocs=25"
	if s.query != "" {
		q += "&" + s.query
	}
	url := withQuery(s.uri, q)

	c1 := configured(t, url)
	info, err := c1.Info(testCtx(t))
	if err != nil || !info.Source.Updates {
		t.Fatalf("Info: %+v, %v; want the updates capability", info, err)
	}
	plan, err := c1.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{ns}, InitialSync: true, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.UpdatesPartitions) != 1 {
		t.Fatalf("plan has %d update partitions, want 1", len(plan.UpdatesPartitions))
	}
	start, err := decodeUpdates(plan.UpdatesPartitions[0].Cursor)
	if err != nil || start.mode != s.mode {
		t.Fatalf("update cursor %+v, %v; want mode %s", start, err, s.mode)
	}

	began := time.Now()
	// Changes run during the copy, then during the resumed stream.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); mutate(t, cl, ns, ids, s.ids, 300, 60, 1) }()
	go func() { defer wg.Done(); mutate(t, cl, other, s.ids(20), s.ids, 20, 30, 2) }()

	target := model{}
	for _, p := range plan.Partitions {
		for _, d := range readPartition(t, c1, p, nil) {
			target[idKey(d.Lookup("_id"))] = d
		}
	}
	t.Logf("copy done after %v", time.Since(began))

	var got []event
	apply := func(bs []sdk.UpdateBatch) []byte {
		var next []byte
		for _, b := range bs {
			if len(b.Updates) > 0 && b.Namespace != ns {
				t.Fatalf("batch of namespace %q, want %s", b.Namespace, ns)
			}
			for _, u := range b.Updates {
				target.apply(u)
				got = append(got, event{u.Type, idKey(u.ID)})
			}
			next = b.NextCursor
		}
		return next
	}
	col := stream(t, c1, plan.UpdatesPartitions[0].Namespaces, plan.UpdatesPartitions[0].Cursor)
	bs := col.waitFor(t, "a first batch", time.Minute, func(bs []sdk.UpdateBatch) bool {
		return len(bs) > 0 && len(bs[len(bs)-1].Updates) > 0
	})
	col.stop(t)
	saved := apply(bs)
	t.Logf("first stream: %d changes after %v", len(got), time.Since(began))
	wg.Wait()

	// More changes while a new connector resumes from the saved cursor.
	c2 := configured(t, url)
	col2 := stream(t, c2, []string{ns}, saved)
	end := rawID("end-marker")
	var current []any
	for _, d := range serverDocs(t, cl, ns) {
		current = append(current, d.Lookup("_id"))
	}
	mutate(t, cl, ns, current, s.ids, 400, 60, 3)
	db, coll, _ := splitNamespace(ns)
	if _, err := cl.Database(db).Collection(coll).InsertOne(testCtx(t), bson.D{{Key: "_id", Value: end}}); err != nil {
		t.Fatal(err)
	}
	bs = col2.waitFor(t, "the end marker", time.Minute, func(bs []sdk.UpdateBatch) bool { return hasID(bs, end) })
	col2.stop(t)
	apply(bs)
	t.Logf("second stream done after %v", time.Since(began))

	if s.compareOplog {
		want := oplogEvents(t, cl, ns, start.ts)
		if len(got) != len(want) {
			t.Errorf("stream delivered %d changes, the oplog holds %d", len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("change %d is %v, the oplog's is %v", i, got[i], want[i])
			}
		}
	}
	source := serverDocs(t, cl, ns)
	if len(source) != len(target) {
		t.Errorf("target has %d documents, source %d", len(target), len(source))
	}
	for k, d := range source {
		if string(target[k]) != string(d) {
			t.Errorf("_id %s: target %v, source %v", d.Lookup("_id"), target[k], d)
		}
	}
}

// With updates read back by _id (as for servers whose oplog does not hold
// the whole document), an updated document arrives as it is now, and an
// update of a document deleted since is skipped.
func TestOplogUpdateFetchesCurrentDocument(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, true)
	cl := connect(t, uri)
	seed(t, cl, "f.c", []any{"a", int64(2), bson.D{{Key: "x", Value: int32(1)}}}, 0)
	c := configured(t, uri)
	c.st.Load().fetchOplogUpdates = true
	plan, err := c.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{"f.c"}, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	coll := cl.Database("f").Collection("c")
	ctx := testCtx(t)
	set := func(id any, v int32) {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: v}}}}); err != nil {
			t.Fatal(err)
		}
	}
	set("a", 1)
	set(int64(2), 1)
	set(int64(2), 2)
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	set(bson.D{{Key: "x", Value: int32(1)}}, 7)

	col := stream(t, c, []string{"f.c"}, plan.UpdatesPartitions[0].Cursor)
	last := rawID(bson.D{{Key: "x", Value: int32(1)}})
	bs := col.waitFor(t, "all changes", time.Minute, func(bs []sdk.UpdateBatch) bool { return hasID(bs, last) })
	var got []string
	for _, b := range bs {
		for _, u := range b.Updates {
			s := fmt.Sprintf("%s %s", u.Type, u.ID)
			if u.Doc != nil {
				s += fmt.Sprintf(" v=%s", u.Doc.Lookup("v"))
			}
			got = append(got, s)
		}
	}
	want := []string{
		`update {"$numberLong":"2"} v={"$numberInt":"2"}`,
		`update {"$numberLong":"2"} v={"$numberInt":"2"}`,
		`delete "a"`,
		`update {"x": {"$numberInt":"1"}} v={"$numberInt":"7"}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
}

// A cursor older than the oldest oplog entry fails with a failed
// precondition that says to resync.
func TestOplogHistoryLost(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, true)
	cl := connect(t, uri)
	seed(t, cl, "h.c", []any{1, 2}, 0)
	c := configured(t, uri)
	old := updatesCursor{mode: CDCOplog, ts: bson.Timestamp{T: 1, I: 1}}.encode()
	err := c.StreamUpdates(testCtx(t), sdk.StreamRequest{Namespaces: []string{"h.c"}, Cursor: old}, func(sdk.UpdateBatch) error { return nil })
	if sdk.KindOf(err) != sdk.KindFailedPrecondition || !errors.Is(err, ErrHistoryLost) {
		t.Fatalf("StreamUpdates from a lost position: %v (kind %v), want a failed precondition wrapping ErrHistoryLost", err, sdk.KindOf(err))
	}
	t.Log(err)
}

// An idle stream sends heartbeats with the current time and a cursor that
// still resumes at the same place.
func TestOplogHeartbeat(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, true)
	cl := connect(t, uri)
	seed(t, cl, "hb.c", []any{1}, 0)
	c := configured(t, uri)
	plan, err := c.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{"hb.c"}, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	col := stream(t, c, []string{"hb.c"}, plan.UpdatesPartitions[0].Cursor)
	bs := col.waitFor(t, "the position and two heartbeats", 12*time.Second, func(bs []sdk.UpdateBatch) bool { return len(bs) >= 3 })
	if d := time.Since(begin); d > 2*5*time.Second {
		t.Errorf("two heartbeats took %v, want at most one per 5 s", d)
	}
	for i, b := range bs {
		if len(b.Updates) != 0 || b.Namespace != "" {
			t.Errorf("batch %d: namespace %q and %d updates, want none", i, b.Namespace, len(b.Updates))
		}
		if string(b.NextCursor) != string(plan.UpdatesPartitions[0].Cursor) {
			t.Errorf("batch %d: an idle stream moved the cursor", i)
		}
		switch {
		case i == 0:
			// The starting position, with its own time.
			if d := begin.Sub(b.SourceTime); d < 0 || d > time.Minute {
				t.Errorf("first batch: source time %v, want the time of the plan's position", b.SourceTime)
			}
		case time.Since(b.SourceTime) > 10*time.Second || b.SourceTime.Before(begin):
			t.Errorf("heartbeat source time %v is not the current time", b.SourceTime)
		}
	}
}

// Without change streams or an oplog, a plan with updates fails clearly,
// and Info does not claim updates.
func TestNoCDCFailsClearly(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	c := configured(t, uri)
	info, err := c.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Source.Updates {
		t.Errorf("Info claims updates on FerretDB without an oplog")
	}
	_, err = c.GeneratePlan(testCtx(t), sdk.PlanRequest{Updates: true})
	if sdk.KindOf(err) != sdk.KindFailedPrecondition || !errors.Is(err, ErrNoCDC) {
		t.Errorf("GeneratePlan with updates: %v, want a failed precondition wrapping ErrNoCDC", err)
	}
	c2 := configured(t, withQuery(uri, "cdc=changestream"))
	_, err = c2.GeneratePlan(testCtx(t), sdk.PlanRequest{Updates: true})
	if sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("cdc=changestream on FerretDB: %v, want a failed precondition", err)
	}
	t.Log(err)
}
