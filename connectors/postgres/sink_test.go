package postgres

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

func mustRaw(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idOfAny(t testing.TB, v any) bson.RawValue {
	t.Helper()
	return mustRaw(t, bson.D{{Key: "_id", Value: v}}).Lookup("_id")
}

// TestSinkExistingTable writes MongoDB-style documents into a table with
// columns: natural values convert to the column types, a replace resets
// the columns a document lacks, partial updates change the row, and type
// errors are fatal and name the table and the _id.
func TestSinkExistingTable(t *testing.T) {
	url := newDB(t)
	exec(t, url, `CREATE TABLE people (id bigint PRIMARY KEY, name text, n numeric, at timestamptz, day date,
		tags text[], meta jsonb, flag boolean, u uuid, score real, cnt int, dflt text DEFAULT 'd', oid text)`)
	c := configured(t, url)
	oid, _ := bson.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	doc := bson.D{
		{Key: "_id", Value: int64(1)}, {Key: "name", Value: "Ann"}, {Key: "n", Value: dec("12.50")},
		{Key: "at", Value: bson.DateTime(1_700_000_000_123)}, {Key: "day", Value: bson.DateTime(1_700_006_400_000)},
		{Key: "tags", Value: bson.A{"a", "b c", nil}}, {Key: "meta", Value: bson.D{{Key: "k", Value: int32(1)}, {Key: "when", Value: bson.DateTime(0)}}},
		{Key: "flag", Value: true}, {Key: "u", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}},
		{Key: "score", Value: 0.5}, {Key: "cnt", Value: int32(7)}, {Key: "oid", Value: oid},
	}
	ctx := context.Background()
	if err := c.WriteData(ctx, "public.people", []bson.Raw{mustRaw(t, doc), mustRaw(t, bson.D{{Key: "_id", Value: int32(2)}, {Key: "name", Value: "Bob"}})}); err != nil {
		t.Fatal(err)
	}
	row := func(id int) string {
		return strings.Join(queryStrings(t, url, "SELECT name, n, at, day, tags, meta, flag, u, score, cnt, dflt, oid FROM people WHERE id = $1", id)[0], " | ")
	}
	want := `Ann | 12.50 | 2023-11-14 22:13:20.123+00 | 2023-11-15 | {a,"b c",NULL} | {"k": 1, "when": {"$date": "1970-01-01T00:00:00.000Z"}} | t | 00000000-0000-0000-0000-000000000000 | 0.5 | 7 | d | 65a1b2c3d4e5f60718293a4b`
	if got := row(1); got != want {
		t.Errorf("row 1:\n got %s\nwant %s", got, want)
	}
	if got := row(2); got != "Bob | NULL | NULL | NULL | NULL | NULL | NULL | NULL | NULL | NULL | d | NULL" {
		t.Errorf("row 2: %s", got)
	}
	// A replace without most fields resets them.
	exec(t, url, "UPDATE people SET dflt = 'changed' WHERE id = 1")
	if err := c.WriteData(ctx, "public.people", []bson.Raw{mustRaw(t, bson.D{{Key: "_id", Value: int64(1)}, {Key: "name", Value: "Ann 2"}, {Key: "meta", Value: bson.D{}}})}); err != nil {
		t.Fatal(err)
	}
	if got := row(1); got != "Ann 2 | NULL | NULL | NULL | NULL | {} | NULL | NULL | NULL | NULL | d | NULL" {
		t.Errorf("row 1 after a replace: %s", got)
	}

	// Changes in order, with partial updates: top-level ones become an
	// UPDATE, a dotted path into jsonb rewrites the row.
	ups := []sdk.Update{
		{ID: idOfAny(t, int64(3)), Type: sdk.UpdateInsert, Doc: mustRaw(t, bson.D{{Key: "_id", Value: int64(3)}, {Key: "name", Value: "C"}, {Key: "cnt", Value: int32(1)}})},
		{ID: idOfAny(t, int64(3)), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "cnt", Value: int32(2)}}), Unset: []string{"name"}},
		{ID: idOfAny(t, int64(1)), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "score", Value: 1.25}, {Key: "meta.deep.x", Value: "y"}})},
		{ID: idOfAny(t, int64(2)), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "cnt", Value: int32(5)}})},
		{ID: idOfAny(t, int64(2)), Type: sdk.UpdateDelete},
		{ID: idOfAny(t, int64(2)), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "cnt", Value: int32(6)}})},
		{ID: idOfAny(t, int64(4)), Type: sdk.UpdateDelete},
		{ID: idOfAny(t, int64(5)), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "cnt", Value: int32(6)}})},
		{ID: idOfAny(t, int64(6)), Type: sdk.UpdateReplace, Doc: mustRaw(t, bson.D{{Key: "_id", Value: int64(6)}, {Key: "tags", Value: bson.A{}}})},
	}
	for range 2 { // idempotent
		if err := c.WriteUpdates(ctx, "public.people", ups); err != nil {
			t.Fatal(err)
		}
	}
	got := flat(queryStrings(t, url, "SELECT id, name, cnt, score, meta, tags FROM people ORDER BY id"))
	wantRows := []string{
		`1,Ann 2,NULL,1.25,{"deep": {"x": "y"}},NULL`,
		`3,NULL,2,NULL,NULL,NULL`,
		`6,NULL,NULL,NULL,NULL,{}`,
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("after WriteUpdates:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}

	// Type errors are fatal and say where.
	for _, tc := range []struct {
		doc  bson.D
		want string
	}{
		{bson.D{{Key: "_id", Value: int64(9)}, {Key: "cnt", Value: "many"}}, `table "public"."people", _id 9`},
		{bson.D{{Key: "_id", Value: int64(9)}, {Key: "nope", Value: 1}}, `field "nope" has no column`},
		{bson.D{{Key: "_id", Value: "x"}, {Key: "name", Value: "s"}}, `_id "x"`},
		{bson.D{{Key: "_id", Value: int64(9)}, {Key: "cnt", Value: bson.D{}}}, `a BSON document cannot be stored in a column of type integer`},
		{bson.D{{Key: "_id", Value: int64(9)}, {Key: "cnt", Value: int64(math.MaxInt64)}}, "out of range"},
	} {
		err := c.WriteData(ctx, "public.people", []bson.Raw{mustRaw(t, bson.D{{Key: "_id", Value: int64(8)}}), mustRaw(t, tc.doc)})
		if err == nil || sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteData(%v): %v (kind %v); want a fatal error containing %q", tc.doc, err, sdk.KindOf(err), tc.want)
		}
	}
}

// TestSinkDocumentTable: a namespace without a table gets a document table
// whose _id type follows the first ids and widens to jsonb when needed;
// documents read back (GetByIDs and as a source) as written.
func TestSinkDocumentTable(t *testing.T) {
	url := newDB(t)
	c := configured(t, url)
	ctx := context.Background()
	oid1, _ := bson.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	oid2, _ := bson.ObjectIDFromHex("65a1b2c3d4e5f60718293a4c")
	docs := []bson.D{
		{{Key: "_id", Value: oid1}, {Key: "name", Value: "a"}, {Key: "n", Value: int64(1 << 40)}, {Key: "f", Value: 2.0}, {Key: "at", Value: bson.DateTime(1_700_000_000_000)},
			{Key: "sub", Value: bson.D{{Key: "z", Value: int32(1)}, {Key: "a", Value: bson.A{"x", nil, dec("1.50")}}}}},
		{{Key: "_id", Value: oid2}, {Key: "name", Value: "b"}},
	}
	var raws []bson.Raw
	for _, d := range docs {
		raws = append(raws, mustRaw(t, d))
	}
	if err := c.WriteData(ctx, "mongo.users", raws); err != nil {
		t.Fatal(err)
	}
	typ := func(ns string) string {
		s, n, _ := parseNamespace(ns)
		return queryOne(t, url, "SELECT format_type(atttypid, NULL) || ' ' || coalesce(obj_description(attrelid, 'pg_class'), '') FROM pg_attribute WHERE attrelid = $1::regclass AND attname = '_id'", quoteIdent(s)+"."+quoteIdent(n))
	}
	if got := typ("mongo.users"); got != "text dsync document table (_id: objectid)" {
		t.Errorf("mongo.users _id: %s", got)
	}
	if got := queryOne(t, url, "SELECT doc->>'name' FROM mongo.users WHERE _id = '65a1b2c3d4e5f60718293a4c'"); got != "b" {
		t.Errorf("query by hex _id: %q", got)
	}
	checkDocs := func(ns string, ds []bson.D) {
		t.Helper()
		ids := make([]bson.RawValue, len(ds)+1)
		for i, d := range ds {
			ids[i] = idOfAny(t, d[0].Value)
		}
		ids[len(ds)] = idOfAny(t, "missing")
		got, err := c.GetByIDs(ctx, ns, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range ds {
			if !sameDocUnordered(got[i], mustRaw(t, d)) {
				t.Errorf("%s: GetByIDs(%v) = %s, want %s", ns, d[0].Value, got[i], mustRaw(t, d))
			}
		}
		if got[len(ds)] != nil {
			t.Errorf("%s: a missing id returned %s", ns, got[len(ds)])
		}
	}
	checkDocs("mongo.users", docs)

	// An int id does not fit: the column becomes jsonb.
	docs = append(docs, bson.D{{Key: "_id", Value: int32(7)}, {Key: "name", Value: "int"}})
	if err := c.WriteData(ctx, "mongo.users", []bson.Raw{mustRaw(t, docs[2])}); err != nil {
		t.Fatal(err)
	}
	if got := typ("mongo.users"); got != "jsonb dsync document table (_id: jsonb)" {
		t.Errorf("mongo.users _id after an int id: %s", got)
	}
	checkDocs("mongo.users", docs)

	// Partial updates with dotted paths, then a source read of the table.
	ups := []sdk.Update{
		{ID: idOfAny(t, oid1), Type: sdk.UpdatePartial, Doc: mustRaw(t, bson.D{{Key: "sub.z", Value: int32(2)}, {Key: "new.deep.k", Value: "v"}, {Key: "sub.a.1", Value: "filled"}}), Unset: []string{"f", "sub.a.0"}},
		{ID: idOfAny(t, int32(7)), Type: sdk.UpdateDelete},
	}
	if err := c.WriteUpdates(ctx, "mongo.users", ups); err != nil {
		t.Fatal(err)
	}
	want0 := bson.D{{Key: "_id", Value: oid1}, {Key: "name", Value: "a"}, {Key: "n", Value: int64(1 << 40)}, {Key: "at", Value: bson.DateTime(1_700_000_000_000)},
		{Key: "sub", Value: bson.D{{Key: "z", Value: int32(2)}, {Key: "a", Value: bson.A{nil, "filled", dec("1.50")}}}},
		{Key: "new", Value: bson.D{{Key: "deep", Value: bson.D{{Key: "k", Value: "v"}}}}}}
	checkDocs("mongo.users", []bson.D{want0, docs[1]})
	read := readAll(t, c, plan(t, c, sdk.PlanRequest{Namespaces: []string{"mongo.users"}, InitialSync: true}))["mongo.users"]
	if len(read) != 2 || !sameDocUnordered(read[0], mustRaw(t, want0)) && !sameDocUnordered(read[1], mustRaw(t, want0)) {
		t.Errorf("ListData of the document table: %v", read)
	}

	for ns, want := range map[string]string{
		"mongo.nums":  "bigint",
		"mongo.strs":  "text",
		"mongo.mixed": "jsonb",
	} {
		var ids []any
		switch ns {
		case "mongo.nums":
			ids = []any{int32(1), int64(2)}
		case "mongo.strs":
			ids = []any{"a", "b"}
		case "mongo.mixed":
			ids = []any{"a", int32(1), 2.5, bson.D{{Key: "x", Value: int32(1)}}}
		}
		var ds []bson.D
		var rs []bson.Raw
		for _, id := range ids {
			d := bson.D{{Key: "_id", Value: id}, {Key: "v", Value: true}}
			ds = append(ds, d)
			rs = append(rs, mustRaw(t, d))
		}
		if err := c.WriteData(ctx, ns, rs); err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(typ(ns))[0]; got != want {
			t.Errorf("%s: _id column %s, want %s", ns, got, want)
		}
		checkDocs(ns, ds)
	}

	// A document table dsync did not create is not changed: an id that
	// does not fit is a fatal error.
	exec(t, url, "CREATE TABLE mine (_id bigint PRIMARY KEY, doc jsonb NOT NULL)")
	err := c.WriteData(ctx, "public.mine", []bson.Raw{mustRaw(t, bson.D{{Key: "_id", Value: "s"}})})
	if err == nil || sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), `_id "s"`) {
		t.Errorf("WriteData of a string id into a user's bigint document table: %v", err)
	}
}

// sameDocUnordered compares documents regardless of the order of fields of
// (embedded) documents: jsonb keeps its own key order.
func sameDocUnordered(a, b bson.Raw) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return canon(a) == canon(b)
}

func canon(d bson.Raw) string {
	elems, _ := d.Elements()
	var parts []string
	for _, e := range elems {
		parts = append(parts, e.Key()+"="+canonValue(e.Value()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func canonValue(v bson.RawValue) string {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		return canon(v.Document())
	case bson.TypeArray:
		vals, _ := v.Array().Values()
		var parts []string
		for _, x := range vals {
			parts = append(parts, canonValue(x))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return v.Type.String() + ":" + v.String()
}
