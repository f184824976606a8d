package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
	"github.com/dsyncio/dsync/internal/testserver/pg"
)

// Cross-database flows between the mongodb connector (against an embedded
// FerretDB) and the postgres connector (against a throwaway PostgreSQL
// cluster), through the real binary: a copy, a check of the target with the
// target's own client, and `dsync verify` across the two databases, which
// must find them identical and then name a document changed behind dsync's
// back.

// xdbUsers and xdbEvents are the sizes of the two seeded collections.
const (
	xdbUsers  = 1200
	xdbEvents = 800
)

// xdbUserDoc is document i of app.users: an ObjectId _id, nested
// documents, arrays (of documents too), dates, binary of subtypes 0 and 4,
// every number type FerretDB stores (int32, int64, double: integral,
// fractional, huge, tiny) and nulls. Not negative zero: FerretDB 1.24 stores
// -0.0 as 0.0.
func xdbUserDoc(i int) bson.D {
	var oid bson.ObjectID
	copy(oid[:], fmt.Sprintf("%012d", i))
	created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 97 * time.Minute).Add(time.Duration(i%1000) * time.Millisecond)
	tags := bson.A{}
	for j := range i % 4 {
		tags = append(tags, fmt.Sprintf("tag%d", (i+j)%7))
	}
	score := []float64{float64(i) + 0.25, float64(i), 1e300, 5e-324, -1.5, -math.Pi * 1e-5}[i%6]
	uuid := make([]byte, 16)
	copy(uuid, fmt.Sprintf("uuid-%011d", i))
	var nick any
	if i%5 != 0 {
		nick = fmt.Sprintf("nick-%d-ü€", i)
	}
	return bson.D{
		{Key: "_id", Value: oid},
		{Key: "name", Value: fmt.Sprintf("user %d", i)},
		{Key: "age", Value: int32(18 + i%60)},
		{Key: "visits", Value: int64(i) * 1_000_000_007},
		{Key: "score", Value: score},
		{Key: "active", Value: i%3 == 0},
		{Key: "nick", Value: nick},
		{Key: "created", Value: bson.NewDateTimeFromTime(created)},
		{Key: "address", Value: bson.D{
			{Key: "city", Value: []string{"Oslo", "Lyon", "Porto"}[i%3]},
			{Key: "zip", Value: int32(1000 + i)},
			{Key: "geo", Value: bson.D{{Key: "lat", Value: 59.9 + float64(i%10)/100}, {Key: "lng", Value: 10.75}}},
		}},
		{Key: "tags", Value: tags},
		{Key: "orders", Value: bson.A{
			bson.D{{Key: "sku", Value: fmt.Sprintf("sku-%d", i%17)}, {Key: "qty", Value: int32(i % 5)}, {Key: "at", Value: bson.NewDateTimeFromTime(created.Add(time.Hour))}},
			bson.D{{Key: "sku", Value: "gift"}, {Key: "qty", Value: int64(1)}, {Key: "price", Value: 9.5}},
		}},
		{Key: "avatar", Value: bson.Binary{Subtype: 0, Data: []byte(fmt.Sprintf("\x00\xffpng-%d", i))}},
		{Key: "uuid", Value: bson.Binary{Subtype: 4, Data: uuid}},
		{Key: "empty", Value: bson.D{}},
		{Key: "none", Value: bson.A{}},
	}
}

// xdbEventDoc is document i of app.events: int32, int64 and string ids in
// one collection, so the document table's _id column cannot stay bigint.
// (FerretDB refuses arrays nested directly in arrays.)
func xdbEventDoc(i int) bson.D {
	var id any
	switch i % 4 {
	case 0, 1:
		id = int32(i)
	case 2:
		id = int64(i) + 1<<40
	default:
		id = fmt.Sprintf("ev-%05d", i)
	}
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "kind", Value: []string{"click", "view", "buy"}[i%3]},
		{Key: "at", Value: bson.NewDateTimeFromTime(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour))},
		{Key: "payload", Value: bson.D{
			{Key: "n", Value: int32(i)},
			{Key: "list", Value: bson.A{int32(1), 2.5, "x", nil, true, bson.D{{Key: "k", Value: int64(-1)}}}},
			{Key: "raw", Value: bson.Binary{Subtype: 0x80, Data: []byte{byte(i), 0, 1}}},
		}},
	}
}

// xdbSeed inserts n documents made by doc into db.coll.
func xdbSeed(t *testing.T, ctx context.Context, client *mongo.Client, db, coll string, n int, doc func(int) bson.D) {
	t.Helper()
	docs := make([]any, 0, 500)
	for i := range n {
		docs = append(docs, doc(i))
		if len(docs) == cap(docs) || i == n-1 {
			if _, err := client.Database(db).Collection(coll).InsertMany(ctx, docs); err != nil {
				t.Fatalf("seed %s.%s: %v", db, coll, err)
			}
			docs = docs[:0]
		}
	}
}

func xdbMongo(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect to FerretDB: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// xdbCanon is a document's canonical Extended JSON (every BSON type
// explicit) with the keys of every embedded document sorted: equal for two
// documents that differ at most in field order.
func xdbCanon(t testing.TB, d bson.D) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(xdbSorted(d), true, false)
	if err != nil {
		t.Fatalf("marshal %v: %v", d, err)
	}
	return string(b)
}

func xdbSorted(v any) any {
	switch v := v.(type) {
	case bson.D:
		out := make(bson.D, len(v))
		for i, e := range v {
			out[i] = bson.E{Key: e.Key, Value: xdbSorted(e.Value)}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	case bson.A:
		out := make(bson.A, len(v))
		for i, e := range v {
			out[i] = xdbSorted(e)
		}
		return out
	}
	return v
}

// xdbNormalize turns a seeded document into what reading it back yields
// (bson.D and bson.A everywhere).
func xdbNormalize(t testing.TB, d bson.D) bson.D {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var out bson.D
	if err := bson.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// xdbLogOnFailure prints the end of dsync's log file when the test fails.
func xdbLogOnFailure(t *testing.T, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("end of %s:\n%s", path, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	})
}

// xdbQuery runs sql on url and returns the rows as text.
func xdbQuery(t testing.TB, url, sql string, args ...any) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := rows.RawValues()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "<null>"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// xdbDocTable reads a document table: the doc column of every row decoded
// from Extended JSON, by canonical _id.
func xdbDocTable(t testing.TB, url, table string) map[string]bson.D {
	t.Helper()
	out := map[string]bson.D{}
	for _, row := range xdbQuery(t, url, "SELECT doc::text FROM "+table) {
		var d bson.D
		if err := bson.UnmarshalExtJSON([]byte(row[0]), false, &d); err != nil {
			t.Fatalf("%s: doc %s is not Extended JSON: %v", table, row[0], err)
		}
		out[xdbID(t, d)] = d
	}
	return out
}

// xdbID is the canonical Extended JSON of a document's _id.
func xdbID(t testing.TB, d bson.D) string {
	t.Helper()
	for _, e := range d {
		if e.Key == "_id" {
			b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: e.Value}}, true, false)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSuffix(strings.TrimPrefix(string(b), `{"v":`), "}")
		}
	}
	t.Fatalf("no _id in %v", d)
	return ""
}

// xdbCompare fails the test unless got holds exactly the documents want
// (n of them, made by doc), field order aside.
func xdbCompare(t *testing.T, what string, got map[string]bson.D, n int, doc func(int) bson.D) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%s: %d documents, want %d", what, len(got), n)
	}
	bad := 0
	for i := range n {
		want := xdbNormalize(t, doc(i))
		id := xdbID(t, want)
		g, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s: _id %s missing", what, id)
		case xdbCanon(t, g) != xdbCanon(t, want):
			t.Errorf("%s: _id %s\n got %s\nwant %s", what, id, xdbCanon(t, g), xdbCanon(t, want))
		default:
			continue
		}
		if bad++; bad == 5 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

// xdbReportIDs returns the report's mismatches as "namespace kind id" with
// the id in canonical Extended JSON.
func xdbReportIDs(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		var l verifyReportLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("report line %q: %v", line, err)
		}
		if l.Type == "summary" {
			continue
		}
		var d bson.D
		if err := bson.UnmarshalExtJSON([]byte(`{"_id":`+string(l.ID)+`}`), false, &d); err != nil {
			t.Fatalf("id %s of report line: %v", l.ID, err)
		}
		out = append(out, fmt.Sprintf("%s %s %s", l.Namespace, l.Kind, xdbID(t, d)))
	}
	return out
}

// FerretDB → PostgreSQL document tables: every document arrives with its
// BSON types, verify finds the two databases identical, and a document
// changed in PostgreSQL is named by verify.
func TestCrossFerretToPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	muri := ferret.Start(t)
	c := pg.Start(t)
	purl := c.CreateDB("target")
	client := xdbMongo(t, muri)
	xdbSeed(t, ctx, client, "app", "users", xdbUsers, xdbUserDoc)
	xdbSeed(t, ctx, client, "app", "events", xdbEvents, xdbEventDoc)

	dir := t.TempDir()
	xdbLogOnFailure(t, dir+"/log")
	mustRun(t, runTimeout, "sync", muri, purl, "--mode", "initial", "--state-dir", dir+"/state",
		"--progress", "none", "--log-file", dir+"/log")

	// Namespace app.users is table app.users: one row per document, _id
	// column typed after the ids (ObjectIds as 24 hex digits; a mix of
	// numbers and strings as jsonb).
	cols := xdbQuery(t, purl, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'app' ORDER BY table_name, ordinal_position`)
	wantCols := [][]string{{"events", "_id", "jsonb"}, {"events", "doc", "jsonb"}, {"users", "_id", "text"}, {"users", "doc", "jsonb"}}
	if !slices.EqualFunc(cols, wantCols, slices.Equal) {
		t.Errorf("document tables: columns %q, want %q", cols, wantCols)
	}
	xdbCompare(t, "app.users", xdbDocTable(t, purl, "app.users"), xdbUsers, xdbUserDoc)
	xdbCompare(t, "app.events", xdbDocTable(t, purl, "app.events"), xdbEvents, xdbEventDoc)
	if row := xdbQuery(t, purl, `SELECT doc->>'name', doc->'address'->>'city', doc->'age' FROM app.users WHERE _id = $1`,
		bson.ObjectID([12]byte([]byte("000000000007"))).Hex()); len(row) != 1 || !slices.Equal(row[0], []string{"user 7", "Lyon", "25"}) {
		t.Errorf("jsonb operators on users 7: %q", row)
	}

	// jsonb keeps its keys in its own order (shorter keys first), not the
	// document's: without --ignore-field-order every document would differ
	// by field order. Numbers keep their BSON types through the Extended
	// JSON the sink writes ($numberLong, 2.0 for an integral double), so
	// --numeric-equivalence is not needed and not given: a type change
	// must still count as a difference.
	vargs := verifyCmd(dir, muri, purl, "--ignore-field-order", "--report", dir+"/report.jsonl")
	r := run(t, runTimeout, vargs...)
	if r.code != 0 || !strings.Contains(r.stdout, "result: identical") {
		t.Fatalf("verify FerretDB vs PostgreSQL after the copy: want exit 0:\n%s", r)
	}
	for _, ns := range []string{fmt.Sprintf("app.users %d 0 0 0", xdbUsers), fmt.Sprintf("app.events %d 0 0 0", xdbEvents)} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), ns) {
			t.Errorf("verify summary lacks %q:\n%s", ns, r.stdout)
		}
	}
	// The flag is needed: without it, field order differs.
	r = run(t, runTimeout, verifyCmd(dir, muri, purl, "--namespace", "app.users")...)
	if r.code != 1 || !strings.Contains(r.stdout, "field order differs") {
		t.Errorf("verify without --ignore-field-order: want exit 1 with field order differences:\n%s", r)
	}

	// A document changed in PostgreSQL: a value, and a type (int32 age
	// becomes a double 30.0 in the jsonb, read back as a double).
	changed := bson.ObjectID([12]byte([]byte("000000000042"))).Hex()
	c.Exec("target", fmt.Sprintf(`UPDATE app.users SET doc = jsonb_set(doc, '{address,city}', '"Bergen"') WHERE _id = '%s'`, changed))
	c.Exec("target", `UPDATE app.events SET doc = jsonb_set(doc, '{payload,n}', '5.0') WHERE doc->'_id' = '5'`)
	r = run(t, runTimeout, vargs...)
	if r.code != 1 {
		t.Fatalf("verify after changing two documents in PostgreSQL: want exit 1:\n%s", r)
	}
	for _, s := range []string{
		`app.users _id {"$oid":"` + changed + `"}: different: address.city value differs`,
		"app.events _id 5: different: payload.n type differs (int in A, double in B)",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("verify output does not name %q:\n%s", s, r.stdout)
		}
	}
	got := xdbReportIDs(t, dir+"/report.jsonl")
	want := []string{`app.events different {"$numberInt":"5"}`, `app.users different {"$oid":"` + changed + `"}`}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("report: %q, want %q", got, want)
	}
}

// xdbPGSchema is the source schema of TestCrossPostgresToFerret: an int
// key and a composite key, and the common column types (NULLs included).
// Not numeric: it maps to Decimal128, which FerretDB 1.24 does not
// implement (it drops the connection of an insert that holds one).
var xdbPGSchema = []string{
	`CREATE SCHEMA shop`,
	`CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy')`,
	`CREATE TABLE shop.items (
		id int PRIMARY KEY,
		small smallint, big bigint, ratio real, weight double precision,
		ok boolean, name text, code varchar(10), pad char(5),
		data bytea, ref uuid,
		created timestamptz, local timestamp, day date,
		attrs jsonb, raw json,
		tags text[], nums int[], mood shop.mood, span interval, note text)`,
	`INSERT INTO shop.items SELECT i,
		(i % 300)::smallint, i::bigint * 10000000019, i / 8.0, i * 0.1,
		i % 2 = 0, 'item ' || i || ' ✓', 'c' || i, 'p' || (i % 10),
		decode(lpad(to_hex(i), 8, '0') || '00ff', 'hex'), md5(i::text)::uuid,
		timestamptz '2024-05-01 10:00:00+00' + i * interval '1 minute 1.001 seconds' + (i % 2) * interval '0.000456 seconds',
		timestamp '2001-02-03 04:05:06' + i * interval '1 hour',
		date '1999-12-31' + i,
		jsonb_build_object('n', i, 'half', i / 2.0, 'list', jsonb_build_array(i, 'x', null, true), 'sub', jsonb_build_object('k', 'v')),
		('{"b": 1, "a": [' || i || ']}')::json,
		ARRAY['t' || (i % 3), 'u'], ARRAY[i, -i, NULL],
		(ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::shop.mood,
		i * interval '1 day 2 hours',
		CASE WHEN i % 4 = 0 THEN NULL ELSE 'note ' || i END
		FROM generate_series(1, 1000) i`,
	`CREATE TABLE shop.stock (region text, id int, qty int NOT NULL, updated timestamptz, PRIMARY KEY (region, id))`,
	`INSERT INTO shop.stock SELECT r, i, i * 3, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
		FROM unnest(ARRAY['eu', 'us', 'apac']) r, generate_series(1, 100) i`,
}

// PostgreSQL → FerretDB: rows become documents with the documented type
// mapping (composite keys as embedded _id documents, the lossless metadata
// field where a value has no exact BSON form), and verify finds the two
// databases identical, then names a document changed in FerretDB.
func TestCrossPostgresToFerret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pg.Start(t)
	purl := c.CreateDB("src")
	c.Exec("src", xdbPGSchema...)
	muri := ferret.Start(t)
	client := xdbMongo(t, muri)

	dir := t.TempDir()
	xdbLogOnFailure(t, dir+"/log")
	mustRun(t, runTimeout, "sync", purl, muri, "--mode", "initial", "--state-dir", dir+"/state",
		"--progress", "none", "--log-file", dir+"/log")

	for coll, n := range map[string]int64{"items": 1000, "stock": 300} {
		got, err := client.Database("shop").Collection(coll).CountDocuments(ctx, bson.D{})
		if err != nil || got != n {
			t.Errorf("shop.%s in FerretDB: %d documents (%v), want %d", coll, got, err, n)
		}
	}
	// Two documents in full, field order included: the key columns in
	// _id, the other columns in table order, the values the documented
	// mapping gives, and in _dsync_pg the PostgreSQL text of the values
	// that have no exact BSON form (a timestamp with microseconds, jsonb
	// whose numbers are not written as BSON would print them).
	for _, tc := range []struct {
		coll string
		id   any
		want string
	}{
		{"items", int32(7), `{"_id": {"$numberInt":"7"},"small": {"$numberInt":"7"},"big": {"$numberLong":"70000000133"},` +
			`"ratio": {"$numberDouble":"0.875"},"weight": {"$numberDouble":"0.7"},"ok": false,"name": "item 7 ✓","code": "c7","pad": "p7   ",` +
			`"data": {"$binary":{"base64":"AAAABwD/","subType":"00"}},"ref": {"$binary":{"base64":"jxTkX87qFnpaNt7dS+olQw==","subType":"04"}},` +
			`"created": {"$date":{"$numberLong":"1714558027007"}},"local": {"$date":{"$numberLong":"981198306000"}},"day": {"$date":{"$numberLong":"947203200000"}},` +
			`"attrs": {"n": {"$numberInt":"7"},"sub": {"k": "v"},"half": {"$numberDouble":"3.5"},"list": [{"$numberInt":"7"},"x",null,true]},` +
			`"raw": {"b": {"$numberInt":"1"},"a": [{"$numberInt":"7"}]},"tags": ["t1","u"],"nums": [{"$numberInt":"7"},{"$numberInt":"-7"},null],` +
			`"mood": "ok","span": "7 days 14:00:00","note": "note 7",` +
			`"_dsync_pg": {"created": "2024-05-01 10:07:07.007456+00","attrs": "{\"n\": 7, \"sub\": {\"k\": \"v\"}, \"half\": 3.5000000000000000, \"list\": [7, \"x\", null, true]}"}}`},
		{"stock", bson.D{{Key: "region", Value: "eu"}, {Key: "id", Value: int32(3)}},
			`{"_id": {"region": "eu","id": {"$numberInt":"3"}},"qty": {"$numberInt":"9"},"updated": {"$date":{"$numberLong":"1704067203000"}}}`},
	} {
		raw, err := client.Database("shop").Collection(tc.coll).FindOne(ctx, bson.D{{Key: "_id", Value: tc.id}}).Raw()
		if err != nil {
			t.Errorf("shop.%s _id %v: %v", tc.coll, tc.id, err)
		} else if raw.String() != tc.want {
			t.Errorf("shop.%s _id %v in FerretDB:\n got %s\nwant %s", tc.coll, tc.id, raw, tc.want)
		}
	}

	// No flag is needed: FerretDB keeps field order and BSON types, and
	// _dsync_pg is stored in FerretDB as an ordinary field, which its
	// source returns like any other, so both sides have the same one
	// (--exclude-field _dsync_pg would only hide a lost or stale value).
	vargs := verifyCmd(dir, purl, muri, "--report", dir+"/report.jsonl")
	r := run(t, runTimeout, vargs...)
	if r.code != 0 || !strings.Contains(r.stdout, "result: identical") {
		t.Fatalf("verify PostgreSQL vs FerretDB after the copy: want exit 0:\n%s", r)
	}
	for _, ns := range []string{"shop.items 1000 0 0 0", "shop.stock 300 0 0 0"} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), ns) {
			t.Errorf("verify summary lacks %q:\n%s", ns, r.stdout)
		}
	}

	// Changes in FerretDB: a value under a composite key, a type (int32 to
	// int64), the lossless text of a timestamp, and a deleted document.
	items, stock := client.Database("shop").Collection("items"), client.Database("shop").Collection("stock")
	set := func(coll *mongo.Collection, id any, field string, v any) {
		t.Helper()
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: v}}}})
		if err != nil || res.ModifiedCount != 1 {
			t.Fatalf("update %s _id %v: %v (%+v)", coll.Name(), id, err, res)
		}
	}
	set(stock, bson.D{{Key: "region", Value: "us"}, {Key: "id", Value: int32(42)}}, "qty", int32(0))
	set(items, int32(8), "small", int64(8))
	set(items, int32(9), "_dsync_pg.created", "2024-05-01 10:09:09.009999+00")
	if res, err := items.DeleteOne(ctx, bson.D{{Key: "_id", Value: int32(10)}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete items 10: %v", err)
	}
	r = run(t, runTimeout, vargs...)
	if r.code != 1 {
		t.Fatalf("verify after changing FerretDB: want exit 1:\n%s", r)
	}
	for _, s := range []string{
		`shop.stock _id {"region":"us","id":42}: different: qty value differs`,
		"shop.items _id 8: different: small type differs (int in A, long in B)",
		"shop.items _id 9: different: _dsync_pg.created value differs",
		"shop.items _id 10: missing in B",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("verify output lacks %q:\n%s", s, r.stdout)
		}
	}
	got := xdbReportIDs(t, dir+"/report.jsonl")
	want := []string{
		`shop.items different {"$numberInt":"8"}`,
		`shop.items different {"$numberInt":"9"}`,
		`shop.items missing {"$numberInt":"10"}`,
		`shop.stock different {"region":"us","id":{"$numberInt":"42"}}`,
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("report: %q, want %q", got, want)
	}
}

// xdbFerretDocs reads every document of db.coll, by canonical _id.
func xdbFerretDocs(t testing.TB, ctx context.Context, client *mongo.Client, db, coll string) map[string]bson.D {
	t.Helper()
	cur, err := client.Database(db).Collection(coll).Find(ctx, bson.D{})
	if err != nil {
		t.Fatalf("read %s.%s: %v", db, coll, err)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatalf("read %s.%s: %v", db, coll, err)
	}
	out := map[string]bson.D{}
	for _, d := range docs {
		out[xdbID(t, d)] = d
	}
	return out
}

// xdbChange makes change number i to app.users and app.events: inserts,
// $set of nested fields, $unset, $push, replacements and deletes.
func xdbChange(ctx context.Context, client *mongo.Client, i int) error {
	users, events := client.Database("app").Collection("users"), client.Database("app").Collection("events")
	uid := xdbUserDoc(i * 7 % xdbCDCUsers)[0].Value
	var err error
	switch i % 6 {
	case 0:
		_, err = users.InsertOne(ctx, xdbUserDoc(100_000+i))
	case 1:
		_, err = users.UpdateOne(ctx, bson.D{{Key: "_id", Value: uid}}, bson.D{{Key: "$set", Value: bson.D{
			{Key: "address.city", Value: fmt.Sprintf("city %d", i)}, {Key: "visits", Value: int64(-i)}}}})
	case 2:
		_, err = users.UpdateOne(ctx, bson.D{{Key: "_id", Value: uid}}, bson.D{
			{Key: "$unset", Value: bson.D{{Key: "nick", Value: ""}}},
			{Key: "$push", Value: bson.D{{Key: "tags", Value: fmt.Sprintf("pushed %d", i)}}}})
	case 3:
		d := xdbUserDoc(i * 7 % xdbCDCUsers)
		_, err = users.ReplaceOne(ctx, bson.D{{Key: "_id", Value: uid}}, bson.D{d[0], {Key: "replaced", Value: int32(i)}, {Key: "at", Value: bson.DateTime(int64(i) * 1000)}})
	case 4:
		_, err = users.DeleteOne(ctx, bson.D{{Key: "_id", Value: uid}})
	case 5:
		if _, err = events.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("new-%d", i)}, {Key: "kind", Value: "cdc"}}); err == nil {
			_, err = events.DeleteOne(ctx, bson.D{{Key: "_id", Value: int32(i % xdbEvents / 4 * 4)}})
		}
	}
	return err
}

// xdbCDCUsers is the number of users seeded for TestCrossFerretOplogToPostgres.
const xdbCDCUsers = 600

// FerretDB with an oplog → PostgreSQL document tables in full mode: changes
// made during the copy and during CDC reach PostgreSQL, the run stops on
// SIGINT and its rerun cuts over with --until-lag 2s, and the tables then
// hold exactly FerretDB's documents.
func TestCrossFerretOplogToPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	muri := ferret.Start(t, ferret.WithOplog())
	c := pg.Start(t)
	purl := c.CreateDB("target")
	client := xdbMongo(t, muri)
	xdbSeed(t, ctx, client, "app", "users", xdbCDCUsers, xdbUserDoc)
	xdbSeed(t, ctx, client, "app", "events", xdbEvents, xdbEventDoc)

	dir := t.TempDir()
	xdbLogOnFailure(t, dir+"/log")
	args := []string{"sync", muri + "?pageDocs=100", purl, "--mode", "full", "--parallel", "2",
		"--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}
	p := start(t, args...)
	// Half of the changes while the copy runs (or has just ended), half
	// once the stream runs.
	const changes = 120
	for i := range changes / 2 {
		if err := xdbChange(ctx, client, i); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	p.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
	for i := changes / 2; i < changes; i++ {
		if err := xdbChange(ctx, client, i); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	// A cut-over happens once the lag has stayed low for a few seconds,
	// which it also does while changes trickle in (FerretDB's writes are
	// slow under load): the first run is stopped once every change is
	// made, and the same command with --until-lag 2s resumes the stream
	// and cuts over after applying the rest.
	p.signal(syscall.SIGINT)
	if r := p.wait(runTimeout); r.code != 0 {
		t.Fatalf("dsync sync --mode full stopped with SIGINT: %s", r)
	}
	p.sessionGone(10 * time.Second)
	r := mustRun(t, runTimeout, append(args, "--until-lag", "2s")...)
	if final := finalProgress(t, r.stdout); final.Phase != "done" || len(cutovers(r.stdout)) != 1 {
		t.Fatalf("the resumed run did not cut over:\n%s", r)
	}
	for _, coll := range []string{"users", "events"} {
		want, got := xdbFerretDocs(t, ctx, client, "app", coll), xdbDocTable(t, purl, "app."+coll)
		if len(got) != len(want) {
			t.Errorf("app.%s: %d rows in PostgreSQL, %d documents in FerretDB", coll, len(got), len(want))
		}
		bad := 0
		for id, w := range want {
			if g, ok := got[id]; !ok || xdbCanon(t, g) != xdbCanon(t, w) {
				t.Errorf("app.%s _id %s:\n got %s\nwant %s", coll, id, xdbCanon(t, g), xdbCanon(t, w))
				if bad++; bad == 5 {
					break
				}
			}
		}
	}
	// The same verdict from verify (jsonb's key order: see
	// TestCrossFerretToPostgres).
	if r := run(t, runTimeout, verifyCmd(dir, muri, purl, "--ignore-field-order")...); r.code != 0 {
		t.Errorf("verify after the cut-over: want exit 0:\n%s", r)
	}
}
