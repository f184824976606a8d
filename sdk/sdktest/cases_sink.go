package sdktest

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

func (e *env) requireSink(info sdk.Info) {
	e.t.Helper()
	if info.Sink == nil {
		e.t.Skipf("the plugin is not a sink: GetInfo claims no sink capabilities")
	}
}

// canReadBack reports whether sink writes can be read back.
func (e *env) canReadBack() bool {
	return e.h.ReadBack != nil || e.h.ReadBackWithGetByIDs
}

// readBack reads the documents with ids from the sink.
func (e *env) readBack(p *instance, ns string, ids []bson.RawValue) []bson.Raw {
	e.t.Helper()
	if e.h.ReadBack != nil {
		docs := e.h.ReadBack(e.t, e.url, ns, ids)
		if len(docs) != len(ids) {
			e.t.Fatalf("Harness.ReadBack returned %d documents for %d ids", len(docs), len(ids))
		}
		return docs
	}
	docs, err := p.C.GetByIDs(e.ctx, ns, ids)
	if err != nil {
		e.t.Fatalf("read back what the sink wrote with GetByIds(%q) (Harness.ReadBackWithGetByIDs): %s", ns, describeErr(err))
	}
	return docs
}

// expectDocs reads ids back and compares them with want (nil: missing).
// looseOrder[i] compares document i without regard to field order.
func (e *env) expectDocs(p *instance, when, ns string, ids []bson.RawValue, want []bson.Raw, looseOrder []bool) {
	e.t.Helper()
	got := e.readBack(p, ns, ids)
	lim := newLimiter(e.t, "documents that differ "+when)
	for i, id := range ids {
		loose := e.h.IgnoreFieldOrder || (looseOrder != nil && looseOrder[i])
		if equalDocs(got[i], want[i], loose) {
			continue
		}
		switch {
		case want[i] == nil:
			lim.errorf("%s: id %s must not exist, but reads back as %s", when, idString(id), docString(got[i]))
		case got[i] == nil:
			lim.errorf("%s: id %s is missing; want %s", when, idString(id), docString(want[i]))
		default:
			lim.errorf("%s: id %s reads back as %s; want %s", when, idString(id), docString(got[i]), docString(want[i]))
		}
	}
	lim.done()
}

// expectListedOnce checks, for a sink that is also a source of the same
// data (Harness.ReadBackWithGetByIDs), that reading namespace ns through
// GeneratePlan and ListData lists every id at most once: a sink that
// appends instead of replacing passes a read-back by id but duplicates
// documents when dsync replays writes after a restart. When the namespace
// cannot be planned or read, the check is skipped and logged.
func (e *env) expectListedOnce(p *instance, info sdk.Info, when, ns string) {
	e.t.Helper()
	if e.h.ReadBack != nil || !e.h.ReadBackWithGetByIDs || info.Source == nil {
		return
	}
	plan, err := p.C.GeneratePlan(e.ctx, sdk.PlanRequest{Namespaces: []string{ns}, InitialSync: true})
	if err != nil {
		e.t.Logf("GeneratePlan(%q) of the sink namespace: %s; not checked for duplicates", ns, describeErr(err))
		return
	}
	counts := map[string]int{}
	ids := map[string]bson.RawValue{}
	var keys []string
	for _, part := range plan.Partitions {
		docs, _, _, err := readAll(e.ctx, p.C, part, nil)
		if err != nil {
			e.t.Logf("reading the sink namespace back: %v; not checked for duplicates", err)
			return
		}
		for _, d := range docs {
			id, ok := docID(d)
			if !ok {
				continue
			}
			k := idKey(id)
			if counts[k] == 0 {
				keys = append(keys, k)
				ids[k] = id
			}
			counts[k]++
		}
	}
	var dups []string
	for _, k := range keys {
		if n := counts[k]; n > 1 {
			dups = append(dups, fmt.Sprintf("_id %s %d times", idString(ids[k]), n))
		}
	}
	if len(dups) > 0 {
		shown := dups[:min(len(dups), 3)]
		if len(dups) > len(shown) {
			shown = append(shown, "...")
		}
		e.t.Errorf("%s: reading namespace %q back with ListData lists %d of its %d ids more than once (%s); WriteData must insert or replace by id, not append (dsync replays writes after a restart)",
			when, ns, len(dups), len(keys), strings.Join(shown, ", "))
	}
}

// sampleIDs are ids of several BSON types; numeric ones do not collide.
func sampleIDs() []bson.RawValue {
	oid, _ := bson.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	vals := []any{int32(1), int64(1<<40 + 2), "s-3", oid, "s-5", int32(6), int64(1<<41 + 7), "s-8", 9.5, "s-10"}
	ids := make([]bson.RawValue, len(vals))
	for i, v := range vals {
		ids[i] = mustID(v)
	}
	return ids
}

// sampleDoc is document i in version v; versions differ in values and in
// the set of fields, so that a replace is distinguishable from a merge.
func sampleDoc(id bson.RawValue, i, v int) bson.Raw {
	d := bson.D{
		{Key: "_id", Value: id},
		{Key: "v", Value: int32(v)},
		{Key: "name", Value: fmt.Sprintf("document %d, version %d", i, v)},
		{Key: "big", Value: int64(1<<40 + i*1000 + v)},
		{Key: "f", Value: 1.5 + float64(i)},
		{Key: "ok", Value: (i+v)%2 == 0},
		{Key: "at", Value: bson.DateTime(1_700_000_000_000 + int64(i)*1000)},
		{Key: "sub", Value: bson.D{
			{Key: "a", Value: int32(i)},
			{Key: "tags", Value: bson.A{"x", int32(v), bson.D{{Key: "k", Value: nil}}}},
		}},
	}
	if v == 1 {
		d = append(d, bson.E{Key: "bin", Value: bson.Binary{Data: []byte{1, 2, byte(i)}}})
	} else {
		d = append(d, bson.E{Key: "extra", Value: fmt.Sprintf("only in version %d", v)})
	}
	return mustDoc(d)
}

func sampleDocs(ids []bson.RawValue, v int) []bson.Raw {
	docs := make([]bson.Raw, len(ids))
	for i, id := range ids {
		docs[i] = sampleDoc(id, i, v)
	}
	return docs
}

// caseWriteDataIdempotent: WriteData inserts or replaces by id, and writing
// a batch twice gives the same end state.
func caseWriteDataIdempotent(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSink(info)
	ns := e.h.SinkNamespace
	ids := sampleIDs()
	v1, v2 := sampleDocs(ids, 1), sampleDocs(ids, 2)
	neverWritten := mustID("~sdktest-never-written")
	allIDs := append(append([]bson.RawValue{}, ids...), neverWritten)
	expect := func(when string, docs []bson.Raw) {
		if e.canReadBack() {
			e.expectDocs(p, when, ns, allIDs, append(append([]bson.Raw{}, docs...), nil), nil)
		}
	}

	for i := 1; i <= 2; i++ {
		if err := p.C.WriteData(e.ctx, ns, v1); err != nil {
			t.Fatalf("WriteData(%q, %d documents), write %d of the same batch: %s; writes must be idempotent", ns, len(v1), i, describeErr(err))
		}
	}
	expect("after writing one batch twice", v1)
	e.expectListedOnce(p, info, "after writing one batch twice", ns)
	if err := p.C.WriteData(e.ctx, ns, v2); err != nil {
		t.Fatalf("WriteData(%q) of new versions of the same ids: %s; WriteData inserts or replaces", ns, describeErr(err))
	}
	expect("after writing new versions of the same ids (replace, not merge)", v2)
	if err := p.C.WriteData(e.ctx, ns, v2); err != nil {
		t.Fatalf("WriteData(%q) of the new versions again: %s", ns, describeErr(err))
	}
	expect("after writing the new versions again", v2)
	e.expectListedOnce(p, info, "after writing new versions of the same ids, twice", ns)
	if !e.canReadBack() {
		t.Logf("neither Harness.ReadBack nor Harness.ReadBackWithGetByIDs is set: only checked that the writes succeed")
	}
}

// largeDocBytes is the size of each document of the large batch: above
// gRPC's default 4 MiB message limit on its own.
const largeDocBytes = 5 << 20

// caseWriteDataLarge: documents and batches larger than gRPC's default
// message limit pass (the protocol allows 64 MiB messages).
func caseWriteDataLarge(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSink(info)
	ns := e.h.SinkNamespace
	ids := []bson.RawValue{mustID("sdktest-large-1"), mustID("sdktest-large-2")}
	docs := make([]bson.Raw, len(ids))
	for i, id := range ids {
		payload := strings.Repeat(string(rune('a'+i)), largeDocBytes)
		docs[i] = mustDoc(bson.D{{Key: "_id", Value: id}, {Key: "payload", Value: payload}})
	}
	if err := p.C.WriteData(e.ctx, ns, docs); err != nil {
		t.Fatalf("WriteData(%q) of %d documents of %d MiB each: %s; plugins must accept gRPC messages up to 64 MiB", ns, len(docs), largeDocBytes>>20, describeErr(err))
	}
	if e.canReadBack() {
		e.expectDocs(p, "after writing large documents", ns, ids, docs, nil)
	} else {
		t.Logf("neither Harness.ReadBack nor Harness.ReadBackWithGetByIDs is set: only checked that the write succeeds")
	}
}

// caseWriteUpdatesOrdered: WriteUpdates applies changes in the given order,
// idempotently; deleting a missing id succeeds and replacing a missing id
// inserts it.
func caseWriteUpdatesOrdered(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSink(info)
	ns := e.h.SinkNamespace

	if err := p.C.WriteUpdates(e.ctx, ns+"_empty", []sdk.Update{{ID: mustID("sdktest-missing"), Type: sdk.UpdateDelete}}); err != nil {
		t.Errorf("WriteUpdates(%q) deleting an id of a namespace never written: %s; deleting a missing id must succeed", ns+"_empty", describeErr(err))
	}

	x, y, z, w, u := mustID("sdktest-x"), mustID("sdktest-y"), mustID("sdktest-z"), mustID("sdktest-w"), mustID("sdktest-u")
	doc := func(d bson.D) bson.Raw { return mustDoc(d) }
	e1 := func(k string, v any) bson.E { return bson.E{Key: k, Value: v} }
	ups := []sdk.Update{
		{ID: x, Type: sdk.UpdateInsert, Doc: doc(bson.D{e1("_id", x), e1("a", int32(1)), e1("b", int32(2))})},
		{ID: y, Type: sdk.UpdateInsert, Doc: doc(bson.D{e1("_id", y), e1("a", int32(1)), e1("b", int32(2)), e1("keep", "k")})},
		{ID: x, Type: sdk.UpdatePartial, Doc: doc(bson.D{e1("a", int32(10)), e1("c.d", int32(5))}), Unset: []string{"b"}},
		{ID: z, Type: sdk.UpdateInsert, Doc: doc(bson.D{e1("_id", z), e1("z", int32(1))})},
		{ID: x, Type: sdk.UpdateReplace, Doc: doc(bson.D{e1("_id", x), e1("r", int32(1))})},
		{ID: y, Type: sdk.UpdatePartial, Doc: doc(bson.D{e1("a", int32(2)), e1("n.x", int32(1))}), Unset: []string{"b"}},
		{ID: w, Type: sdk.UpdateDelete},
		{ID: x, Type: sdk.UpdateDelete},
		{ID: z, Type: sdk.UpdateDelete},
		{ID: u, Type: sdk.UpdateReplace, Doc: doc(bson.D{e1("_id", u), e1("u", int32(1))})},
		{ID: x, Type: sdk.UpdateInsert, Doc: doc(bson.D{e1("_id", x), e1("final", true)})},
		{ID: y, Type: sdk.UpdatePartial, Doc: doc(bson.D{e1("n.y", int32(2))})},
	}
	ids := []bson.RawValue{x, y, z, w, u}
	want := []bson.Raw{
		doc(bson.D{e1("_id", x), e1("final", true)}),
		doc(bson.D{e1("_id", y), e1("a", int32(2)), e1("keep", "k"), e1("n", bson.D{e1("x", int32(1)), e1("y", int32(2))})}),
		nil,
		nil,
		doc(bson.D{e1("_id", u), e1("u", int32(1))}),
	}
	// Where partial updates put new fields is not part of the protocol.
	loose := []bool{false, true, false, false, false}

	for i := 1; i <= 2; i++ {
		if err := p.C.WriteUpdates(e.ctx, ns, ups); err != nil {
			t.Fatalf("WriteUpdates(%q) of insert, partial update, replace, delete and insert again of one id, applying the batch for the %s time: %s", ns, ordinal(i), describeErr(err))
		}
		if e.canReadBack() {
			e.expectDocs(p, fmt.Sprintf("after applying the updates %s (in order, the last change of each id wins)", times(i)), ns, ids, want, loose)
		}
	}
	if !e.canReadBack() {
		t.Logf("neither Harness.ReadBack nor Harness.ReadBackWithGetByIDs is set: only checked that the writes succeed")
	}
}

func ordinal(i int) string {
	if i == 1 {
		return "first"
	}
	return "second"
}

func times(i int) string {
	if i == 1 {
		return "once"
	}
	return "twice"
}
