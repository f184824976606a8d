package mongodb

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

func rawDoc(d bson.D) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

func docsFor(ids []any, version int) []bson.Raw {
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		d := bson.D{{Key: "_id", Value: id}, {Key: "v", Value: int32(version)}}
		if version == 1 {
			d = append(d, bson.E{Key: "only_v1", Value: true})
		}
		out[i] = rawDoc(d)
	}
	return out
}

// WriteData is idempotent: writing a batch again, or new versions of part
// of it, replaces the documents (no merge) through the duplicate-key path.
func TestWriteDataIdempotent(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	c := configured(t, uri)
	ctx := testCtx(t)
	ids := mixedIDs(120)
	if err := c.WriteData(ctx, "sink.c", docsFor(ids, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteData(ctx, "sink.c", docsFor(ids, 1)); err != nil {
		t.Fatalf("second write of the same batch: %v", err)
	}
	// Half old ids with a new version, plus new ids.
	mixed := append(docsFor(ids[:60], 2), docsFor(mixedIDs(150)[120:], 2)...)
	if err := c.WriteData(ctx, "sink.c", mixed); err != nil {
		t.Fatalf("write of updated and new documents: %v", err)
	}
	got := serverDocs(t, cl, "sink.c")
	if len(got) != 150 {
		t.Fatalf("%d documents, want 150", len(got))
	}
	want := map[string]bson.Raw{}
	for _, d := range append(docsFor(ids, 1), mixed...) {
		want[idKey(d.Lookup("_id"))] = d
	}
	for k, d := range want {
		if string(got[k]) != string(d) {
			t.Errorf("_id %s: stored %v, want %v", d.Lookup("_id"), got[k], d)
		}
	}
	if err := c.WriteData(ctx, "sink.c", []bson.Raw{rawDoc(bson.D{{Key: "x", Value: 1}})}); sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), "no _id") {
		t.Errorf("document without _id: %v, want a fatal error", err)
	}
}

// A conflict with a unique secondary index is fatal and names the
// namespace and the _id.
func TestWriteDataUniqueConflict(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	coll := cl.Database("sink").Collection("u")
	ctx := testCtx(t)
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	c := configured(t, uri)
	if err := c.WriteData(ctx, "sink.u", []bson.Raw{rawDoc(bson.D{{Key: "_id", Value: "a"}, {Key: "email", Value: "x@example.com"}})}); err != nil {
		t.Fatal(err)
	}
	err := c.WriteData(ctx, "sink.u", []bson.Raw{rawDoc(bson.D{{Key: "_id", Value: "b"}, {Key: "email", Value: "x@example.com"}})})
	if err == nil || sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), "sink.u") || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("unique index conflict: %v (kind %v), want a fatal error naming sink.u and _id \"b\"", err, sdk.KindOf(err))
	}
	t.Log(err)
}

// WriteUpdates applies a mixed sequence in order, twice, across _id types;
// against FerretDB its bulks stay within the size FerretDB handles.
func TestWriteUpdatesOrderedAndCapped(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	c := configured(t, uri)
	ctx := testCtx(t)
	if n := c.st.Load().bulkSize(); n != FerretDBBulkSize {
		t.Fatalf("bulk size against FerretDB is %d, want %d", n, FerretDBBulkSize)
	}
	ids := mixedIDs(60)
	if err := c.WriteData(ctx, "up.c", docsFor(ids, 1)); err != nil {
		t.Fatal(err)
	}
	rid := func(v any) bson.RawValue { return rawID(v) }
	var ups []sdk.Update
	for i, id := range ids {
		r := rid(id)
		switch i % 6 {
		case 0: // partial, partial (merged), replace
			ups = append(ups,
				sdk.Update{ID: r, Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "a.b", Value: 1}})},
				sdk.Update{ID: r, Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "c", Value: 2}}), Unset: []string{"only_v1"}},
			)
		case 1: // delete then insert again
			ups = append(ups,
				sdk.Update{ID: r, Type: sdk.UpdateDelete},
				sdk.Update{ID: r, Type: sdk.UpdateInsert, Doc: rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "again", Value: true}})},
			)
		case 2: // replace then partial (applied to the replacement)
			ups = append(ups,
				sdk.Update{ID: r, Type: sdk.UpdateReplace, Doc: rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "r", Value: 1}, {Key: "s", Value: bson.D{{Key: "t", Value: 1}}}})},
				sdk.Update{ID: r, Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "s.u", Value: 2}, {Key: "r", Value: 3}}), Unset: []string{"s.t"}},
			)
		case 3: // delete
			ups = append(ups, sdk.Update{ID: r, Type: sdk.UpdateDelete})
		case 4: // partials on overlapping paths (two rounds)
			ups = append(ups,
				sdk.Update{ID: r, Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "p", Value: bson.D{{Key: "q", Value: 1}}}})},
				sdk.Update{ID: r, Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "p.z", Value: 2}})},
			)
		case 5: // partial of a missing _id inserts it; delete of a missing one succeeds
			ups = append(ups,
				sdk.Update{ID: rid(fmt.Sprintf("new-%d", i)), Type: sdk.UpdatePartial, Doc: rawDoc(bson.D{{Key: "n", Value: i}})},
				sdk.Update{ID: rid(fmt.Sprintf("gone-%d", i)), Type: sdk.UpdateDelete},
			)
		}
	}
	done := make(chan error, 1)
	go func() {
		err := c.WriteUpdates(ctx, "up.c", ups)
		if err == nil {
			err = c.WriteUpdates(ctx, "up.c", ups)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("WriteUpdates did not finish within 90s")
	}

	want := map[string]bson.Raw{}
	for i, id := range ids {
		k := idKey(rid(id))
		switch i % 6 {
		case 0:
			want[k] = rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "v", Value: int32(1)}, {Key: "a", Value: bson.D{{Key: "b", Value: int32(1)}}}, {Key: "c", Value: int32(2)}})
		case 1:
			want[k] = rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "again", Value: true}})
		case 2:
			want[k] = rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "r", Value: int32(3)}, {Key: "s", Value: bson.D{{Key: "u", Value: int32(2)}}}})
		case 4:
			want[k] = rawDoc(bson.D{{Key: "_id", Value: id}, {Key: "v", Value: int32(1)}, {Key: "only_v1", Value: true}, {Key: "p", Value: bson.D{{Key: "q", Value: int32(1)}, {Key: "z", Value: int32(2)}}}})
		case 5:
			want[k] = docsFor([]any{id}, 1)[0]
			want[idKey(rid(fmt.Sprintf("new-%d", i)))] = rawDoc(bson.D{{Key: "_id", Value: fmt.Sprintf("new-%d", i)}, {Key: "n", Value: int32(i)}})
		}
	}
	got := serverDocs(t, cl, "up.c")
	if len(got) != len(want) {
		t.Errorf("%d documents, want %d", len(got), len(want))
	}
	for k, d := range want {
		if string(got[k]) != string(d) {
			t.Errorf("_id %s:\n got %v\nwant %v", d.Lookup("_id"), got[k], d)
		}
	}
}

// GetByIDs keeps request order, repeats, and returns nil for missing ids;
// numbers match across numeric types as in MongoDB.
func TestGetByIDs(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	ids := mixedIDs(80)
	seed(t, cl, "g.c", ids, 0)
	c := configured(t, uri)
	var req []bson.RawValue
	var want []string
	for i := len(ids) - 1; i >= 0; i -= 3 {
		req = append(req, rawID(ids[i]))
		want = append(want, rawID(ids[i]).String())
		if i%9 == 0 {
			req = append(req, rawID("missing"), rawID(ids[i]))
			want = append(want, "<nil>", rawID(ids[i]).String())
		}
	}
	got, err := c.GetByIDs(testCtx(t), "g.c", req)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(req) {
		t.Fatalf("%d results for %d ids", len(got), len(req))
	}
	for i, d := range got {
		s := "<nil>"
		if d != nil {
			s = d.Lookup("_id").String()
		}
		if s != want[i] {
			t.Errorf("result %d: %s, want %s", i, s, want[i])
		}
	}
	// An int32 _id found by a double and an int64 of the same value.
	var n int32
	for _, id := range ids[10:] {
		if v, ok := id.(int32); ok {
			n = v
			break
		}
	}
	got, err = c.GetByIDs(testCtx(t), "g.c", []bson.RawValue{rawID(float64(n)), rawID(int64(n))})
	if err != nil || got[0] == nil || got[1] == nil {
		t.Errorf("GetByIDs of int32 %d as double and int64: %v, %v", n, got, err)
	}
	if got, err := c.GetByIDs(testCtx(t), "g.c", nil); err != nil || len(got) != 0 {
		t.Errorf("GetByIDs of no ids: %v, %v", got, err)
	}
}
