package mongodb

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// ev builds a change event as MongoDB 7.0 sends it with fullDocument:
// updateLookup.
func ev(op string, extra ...bson.E) bson.Raw {
	d := bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "8266A1B2C3000000012B022C0100296E5A1004" + strings.ToUpper(op)}}},
		{Key: "operationType", Value: op},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1718000000, I: 3}},
		{Key: "wallTime", Value: bson.DateTime(1718000000123)},
	}
	return rawDoc(append(d, extra...))
}

func nsE(db, coll string) bson.E {
	return bson.E{Key: "ns", Value: bson.D{{Key: "db", Value: db}, {Key: "coll", Value: coll}}}
}

func keyE(id any) bson.E {
	return bson.E{Key: "documentKey", Value: bson.D{{Key: "_id", Value: id}}}
}

func TestConvertEvent(t *testing.T) {
	t.Parallel()
	f, _ := newNSFilter([]string{"shop.orders", "shop.users"})
	oid := bson.NewObjectID()
	full := bson.D{{Key: "_id", Value: oid}, {Key: "total", Value: 12.5}, {Key: "items", Value: bson.A{"a", "b"}}}
	tests := []struct {
		name    string
		event   bson.Raw
		want    string // "" for no update
		wantErr error
	}{
		{"insert", ev("insert", nsE("shop", "orders"), keyE(oid), bson.E{Key: "fullDocument", Value: full}),
			fmt.Sprintf("shop.orders insert %s %s", rawID(oid), rawDoc(full)), nil},
		{"update with post-image", ev("update", nsE("shop", "orders"), keyE(oid),
			bson.E{Key: "updateDescription", Value: bson.D{{Key: "updatedFields", Value: bson.D{{Key: "total", Value: 12.5}}}, {Key: "removedFields", Value: bson.A{"x"}}, {Key: "truncatedArrays", Value: bson.A{}}}},
			bson.E{Key: "fullDocument", Value: full}),
			fmt.Sprintf("shop.orders update %s %s", rawID(oid), rawDoc(full)), nil},
		{"update of a document deleted since", ev("update", nsE("shop", "orders"), keyE(oid),
			bson.E{Key: "updateDescription", Value: bson.D{{Key: "updatedFields", Value: bson.D{{Key: "total", Value: 1}}}}},
			bson.E{Key: "fullDocument", Value: nil}), "", nil},
		{"replace", ev("replace", nsE("shop", "users"), keyE("u1"), bson.E{Key: "fullDocument", Value: bson.D{{Key: "_id", Value: "u1"}, {Key: "n", Value: "x"}}}),
			`shop.users update "u1" {"_id": "u1","n": "x"}`, nil},
		{"delete", ev("delete", nsE("shop", "users"), keyE(int64(7))), `shop.users delete {"$numberLong":"7"} `, nil},
		{"sharded document key", ev("delete", nsE("shop", "users"), bson.E{Key: "documentKey", Value: bson.D{{Key: "region", Value: "eu"}, {Key: "_id", Value: 3.5}}}),
			`shop.users delete {"$numberDouble":"3.5"} `, nil},
		{"other namespace", ev("insert", nsE("shop", "carts"), keyE(1), bson.E{Key: "fullDocument", Value: bson.D{{Key: "_id", Value: 1}}}), "", nil},
		{"index build is skipped", ev("createIndexes", nsE("shop", "orders")), "", nil},
		{"drop", ev("drop", nsE("shop", "orders")), "", ErrNamespaceChanged},
		{"drop elsewhere", ev("drop", nsE("shop", "carts")), "", nil},
		{"rename", ev("rename", nsE("shop", "orders"), bson.E{Key: "to", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "old_orders"}}}), "", ErrNamespaceChanged},
		{"rename onto a streamed collection", ev("rename", nsE("shop", "tmp"), bson.E{Key: "to", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "users"}}}), "", ErrNamespaceChanged},
		{"dropDatabase", ev("dropDatabase", bson.E{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}}}), "", ErrNamespaceChanged},
		{"dropDatabase elsewhere", ev("dropDatabase", bson.E{Key: "ns", Value: bson.D{{Key: "db", Value: "crm"}}}), "", nil},
		{"invalidate", ev("invalidate"), "", ErrNamespaceChanged},
		{"insert without fullDocument", ev("insert", nsE("shop", "orders"), keyE(1)), "", errAny},
		{"no documentKey", ev("delete", nsE("shop", "orders")), "", errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := convertEvent(tt.event, f)
			switch {
			case tt.wantErr == errAny:
				if err == nil || sdk.KindOf(err) != sdk.KindFatal {
					t.Fatalf("err %v, want a fatal error", err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || sdk.KindOf(err) != sdk.KindFatal {
					t.Fatalf("err %v, want fatal %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "--reset") {
					t.Errorf("message %q does not say how to recover", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			got := ""
			if ch.update != nil {
				got = fmt.Sprintf("%s %s %s %s", ch.ns, ch.update.Type, ch.update.ID, ch.update.Doc)
				if !ch.time.Equal(time.UnixMilli(1718000000123)) {
					t.Errorf("time %v, want the event's wallTime", ch.time)
				}
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// Without wallTime (before 6.0) the cluster time's seconds.
	ch, err := convertEvent(rawDoc(bson.D{{Key: "_id", Value: bson.D{}}, {Key: "operationType", Value: "delete"}, {Key: "clusterTime", Value: bson.Timestamp{T: 1718000000, I: 9}}, nsE("shop", "orders"), keyE(1)}), f)
	if err != nil || !ch.time.Equal(time.Unix(1718000000, 0)) {
		t.Errorf("time without wallTime: %v, %v", ch.time, err)
	}
	// Every namespace outside the system databases.
	all, _ := newNSFilter(nil)
	if ch, _ := convertEvent(ev("delete", nsE("x", "y"), keyE(1)), all); ch.update == nil {
		t.Errorf("default filter skipped x.y")
	}
	if ch, _ := convertEvent(ev("delete", nsE("config", "y"), keyE(1)), all); ch.update != nil {
		t.Errorf("default filter streamed config.y")
	}
}

var errAny = errors.New("any error")

// Events split by $changeStreamSplitLargeEvent are reassembled, with the
// resume token of the last fragment.
func TestSplitEventFragments(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1000)
	frag1 := rawDoc(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "8266-frag1"}}},
		{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: int32(1)}, {Key: "of", Value: int32(2)}}},
		{Key: "operationType", Value: "update"},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 1}},
		nsE("shop", "orders"), keyE("o1"),
		{Key: "updateDescription", Value: bson.D{{Key: "updatedFields", Value: bson.D{{Key: "blob", Value: big}}}}},
	})
	frag2 := rawDoc(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "8266-frag2"}}},
		{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: int32(2)}, {Key: "of", Value: int32(2)}}},
		{Key: "fullDocument", Value: bson.D{{Key: "_id", Value: "o1"}, {Key: "blob", Value: big}}},
	})
	var fr fragments
	if _, complete, err := fr.add(frag1); complete || err != nil {
		t.Fatalf("first fragment: complete=%v err=%v", complete, err)
	}
	if !fr.pending() {
		t.Fatal("no fragment pending after the first")
	}
	whole, complete, err := fr.add(frag2)
	if !complete || err != nil {
		t.Fatalf("last fragment: complete=%v err=%v", complete, err)
	}
	if tok := whole.Lookup("_id", "_data").StringValue(); tok != "8266-frag2" {
		t.Errorf("token %q, want the last fragment's", tok)
	}
	if _, err := whole.LookupErr("splitEvent"); err == nil {
		t.Error("reassembled event keeps splitEvent")
	}
	f, _ := newNSFilter([]string{"shop.orders"})
	ch, err := convertEvent(whole, f)
	if err != nil || ch.update == nil || ch.update.Type != sdk.UpdateReplace || ch.update.Doc.Lookup("blob").StringValue() != big {
		t.Fatalf("reassembled event gives %+v, %v", ch.update, err)
	}
	// Out of order or interrupted fragments are errors.
	var fr2 fragments
	if _, _, err := fr2.add(frag2); err == nil {
		t.Error("fragment 2 first: no error")
	}
	var fr3 fragments
	_, _, _ = fr3.add(frag1)
	if _, _, err := fr3.add(ev("delete", nsE("shop", "orders"), keyE(1))); err == nil {
		t.Error("unsplit event after fragment 1: no error")
	}
}

// Update cursors keep resume tokens, cluster times and oplog timestamps;
// foreign or damaged cursors are invalid arguments.
func TestUpdateCursors(t *testing.T) {
	t.Parallel()
	tok := rawDoc(bson.D{{Key: "_data", Value: "826A0F3C1D000000022B0229296E04"}})
	for _, u := range []updatesCursor{
		{mode: CDCChangeStream, token: tok},
		{mode: CDCChangeStream, at: bson.Timestamp{T: 5, I: 6}},
		{mode: CDCOplog, ts: bson.Timestamp{T: 7, I: 8}},
		{mode: CDCOplog},
	} {
		got, err := decodeUpdates(u.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.mode != u.mode || string(got.token) != string(u.token) || got.at != u.at || got.ts != u.ts {
			t.Errorf("round trip of %+v gives %+v", u, got)
		}
	}
	if got := (updatesCursor{mode: CDCChangeStream, token: tok}).time(); !got.Equal(time.Unix(0x6A0F3C1D, 0)) {
		t.Errorf("time of a resume token: %v, want its cluster time", got)
	}
	if string(tokenCursor(tok)) != string(updatesCursor{mode: CDCChangeStream, token: tok}.encode()) {
		t.Error("tokenCursor differs from the encoded token")
	}
	for _, bad := range [][]byte{nil, []byte("x"), rawDoc(bson.D{{Key: "v", Value: int32(9)}}), rawDoc(bson.D{{Key: "v", Value: int32(1)}, {Key: "m", Value: "binlog"}}), rawDoc(bson.D{{Key: "v", Value: int32(1)}, {Key: "m", Value: "oplog"}})} {
		if _, err := decodeUpdates(bad); sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("decodeUpdates(%x): %v, want an invalid argument", bad, err)
		}
	}
}

// Oplog entries of MongoDB (not FerretDB) map to updates: inserts and
// deletes directly, replacements in full, $v:1 and $v:2 updates by a read
// of the current document, applyOps unpacked, DDL on streamed namespaces
// fatal.
func TestConvertOplog(t *testing.T) {
	t.Parallel()
	st := &state{}
	f, _ := newNSFilter([]string{"app.c"})
	entry := func(op, ns string, o, o2 bson.D) oplogEntry {
		e := oplogEntry{op: op, ns: ns, ts: bson.Timestamp{T: 100, I: 1}, wall: bson.RawValue{}}
		e.o = rawDoc(o)
		if o2 != nil {
			e.o2 = rawDoc(o2)
		}
		return e
	}
	tests := []struct {
		name    string
		e       oplogEntry
		want    string
		wantErr error
	}{
		{"insert", entry("i", "app.c", bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}}, nil), `insert {"$numberInt":"1"} {"_id": {"$numberInt":"1"},"a": {"$numberInt":"1"}} fetch=false`, nil},
		{"delete", entry("d", "app.c", bson.D{{Key: "_id", Value: "k"}}, nil), `delete "k"  fetch=false`, nil},
		{"replacement", entry("u", "app.c", bson.D{{Key: "a", Value: 2}}, bson.D{{Key: "_id", Value: 1}}), `update {"$numberInt":"1"} {"_id": {"$numberInt":"1"},"a": {"$numberInt":"2"}} fetch=false`, nil},
		{"$v:1 modifier", entry("u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "a", Value: 3}}}}, bson.D{{Key: "_id", Value: 1}}), `update {"$numberInt":"1"}  fetch=true`, nil},
		{"$v:2 diff", entry("u", "app.c", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "a", Value: 4}}}}}}, bson.D{{Key: "_id", Value: 1}}), `update {"$numberInt":"1"}  fetch=true`, nil},
		{"FerretDB form on MongoDB is read", entry("u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 5}}}}, bson.D{{Key: "_id", Value: 1}}), `update {"$numberInt":"1"}  fetch=true`, nil},
		{"other namespace", entry("i", "app.d", bson.D{{Key: "_id", Value: 1}}, nil), ``, nil},
		{"noop", entry("n", "", bson.D{{Key: "msg", Value: "periodic noop"}}, nil), ``, nil},
		{"applyOps", entry("c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{
			bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 2}}}},
			bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.d"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 3}}}},
			bson.D{{Key: "op", Value: "d"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 4}}}},
		}}}, nil), `insert {"$numberInt":"2"} {"_id": {"$numberInt":"2"}} fetch=false; delete {"$numberInt":"4"}  fetch=false`, nil},
		{"create index", entry("c", "app.$cmd", bson.D{{Key: "createIndexes", Value: "c"}}, nil), ``, nil},
		{"drop", entry("c", "app.$cmd", bson.D{{Key: "drop", Value: "c"}}, nil), ``, ErrNamespaceChanged},
		{"drop elsewhere", entry("c", "app.$cmd", bson.D{{Key: "drop", Value: "d"}}, nil), ``, nil},
		{"dropDatabase", entry("c", "app.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil), ``, ErrNamespaceChanged},
		{"rename", entry("c", "admin.$cmd", bson.D{{Key: "renameCollection", Value: "app.c"}, {Key: "to", Value: "app.c2"}}, nil), ``, ErrNamespaceChanged},
		{"partial transaction", entry("c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{}}, {Key: "partialTxn", Value: true}}, nil), ``, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chs, err := st.convertOplog(nil, tt.e, tt.e, f)
			switch {
			case tt.wantErr == errAny:
				if sdk.KindOf(err) != sdk.KindFatal || err == nil {
					t.Fatalf("err %v, want fatal", err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			var parts []string
			for _, ch := range chs {
				parts = append(parts, fmt.Sprintf("%s %s %s fetch=%v", ch.update.Type, ch.update.ID, ch.update.Doc, ch.fetch))
				if !ch.time.Equal(time.Unix(100, 0)) {
					t.Errorf("time %v, want the entry's ts", ch.time)
				}
			}
			if got := strings.Join(parts, "; "); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// FerretDB logs the whole document: no read needed.
	fst := &state{server: serverInfo{ferret: true}}
	chs, _ := fst.convertOplog(nil, tests[5].e, tests[5].e, f)
	if len(chs) != 1 || chs[0].fetch || chs[0].update.Doc.Lookup("a").Int32() != 5 {
		t.Errorf("FerretDB update: %+v", chs)
	}
}
