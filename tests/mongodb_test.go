package tests

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
)

// The MongoDB end-to-end tests run dsync between two embedded FerretDB
// servers started in the test process; dsync's plugins connect to them over
// loopback like to any MongoDB deployment.

const mongoDB = "mig"

// mongoBigDocs documents of mongoBigSize bytes each test the 16 MiB limit.
const (
	mongoBigDocs = 3
	mongoBigSize = 15 << 20
)

// mongoConnect returns a driver client for uri, disconnected when t ends.
func mongoConnect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cl
}

func mongoCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mongoURL adds dsync options to a FerretDB connection string.
func mongoURL(uri, query string) string {
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri + "?" + query
}

// mongoMixedID returns the i-th _id of a sequence cycling through every
// BSON type FerretDB accepts as _id; null, true and false come once, at the
// start. Numbers of different types never have equal values (MongoDB would
// take int32 1 and double 1.0 for the same _id).
func mongoMixedID(i int) any {
	switch i {
	case 0:
		return nil
	case 1:
		return true
	case 2:
		return false
	}
	switch i % 10 {
	case 0:
		var oid bson.ObjectID
		oid[0], oid[1], oid[9], oid[10], oid[11] = 0x65, byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return oid
	case 1:
		return fmt.Sprintf("user-%06d", i)
	case 2:
		return int32(i*10 + 3)
	case 3:
		return int64(1)<<40 + int64(i)
	case 4:
		return float64(i) + 0.25
	case 5:
		u := make([]byte, 16)
		u[0], u[14], u[15] = 0x4a, byte(i>>8), byte(i)
		return bson.Binary{Subtype: bson.TypeBinaryUUID, Data: u}
	case 6:
		return bson.D{{Key: "region", Value: "eu"}, {Key: "n", Value: int32(i)}}
	case 7:
		return bson.DateTime(1_700_000_000_000 + int64(i)*1000)
	case 8:
		return bson.Timestamp{T: uint32(1_700_000_000 + i), I: 1}
	default:
		return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: []byte{byte(i >> 8), byte(i)}}
	}
}

// mongoTypesDoc is a document with most BSON types FerretDB stores: dates
// (before and after 1970), timestamps, binary subtypes (generic, UUID, MD5,
// user-defined), regular expressions, nested documents with arrays of
// documents, empty documents and arrays, null, booleans, every number type,
// strings outside ASCII and ObjectIds. Some fields come only in some
// documents.
func mongoTypesDoc(i int) bson.D {
	uuid := make([]byte, 16)
	uuid[0], uuid[15] = byte(i), 0x99
	d := bson.D{
		{Key: "_id", Value: bson.ObjectID{0x64, byte(i >> 8), byte(i), 1}},
		{Key: "seq", Value: int32(i)},
		{Key: "group", Value: fmt.Sprintf("g%d", i%7)},
		{Key: "when", Value: bson.DateTime(int64(i-100) * 86_400_000)},
		{Key: "ts", Value: bson.Timestamp{T: uint32(1_600_000_000 + i), I: uint32(i % 5)}},
		{Key: "uuid", Value: bson.Binary{Subtype: bson.TypeBinaryUUID, Data: uuid}},
		{Key: "raw", Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: []byte(fmt.Sprintf("\x00\xff%d", i))}},
		{Key: "md5", Value: bson.Binary{Subtype: bson.TypeBinaryMD5, Data: bytes.Repeat([]byte{byte(i)}, 16)}},
		{Key: "re", Value: bson.Regex{Pattern: fmt.Sprintf("^item-%d.*$", i), Options: "im"}},
		{Key: "big", Value: int64(1)<<53 + int64(i)},
		{Key: "ratio", Value: float64(i) / 7},
		{Key: "name", Value: fmt.Sprintf("Zoë №%d — 東京 🚀", i)},
		{Key: "ok", Value: i%2 == 0},
		{Key: "none", Value: nil},
		{Key: "empty", Value: bson.D{}},
		{Key: "list", Value: bson.A{}},
		{Key: "nested", Value: bson.D{
			{Key: "lines", Value: bson.A{
				bson.D{{Key: "sku", Value: "A-1"}, {Key: "qty", Value: int32(i % 4)}, {Key: "tags", Value: bson.A{"x", int32(i), 1.5, nil}}},
				bson.D{{Key: "sku", Value: "B-2"}, {Key: "dims", Value: bson.D{{Key: "w", Value: 1.25}, {Key: "h", Value: int64(i)}, {Key: "e", Value: bson.D{}}}}},
				bson.D{},
			}},
			{Key: "deep", Value: bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: bson.D{{Key: "c", Value: bson.A{bson.D{{Key: "d", Value: int32(i)}}}}}}}}}},
		}},
	}
	if i%3 == 0 {
		d = append(d, bson.E{Key: "ref", Value: bson.ObjectID{0x01, byte(i)}}, bson.E{Key: "custom", Value: bson.Binary{Subtype: 0x80, Data: []byte("custom")}})
	}
	if i%5 == 0 {
		d = append(d, bson.E{Key: "alt", Value: bson.A{bson.DateTime(0), bson.Regex{Pattern: "a|b"}, bson.Timestamp{T: 1, I: 1}}})
	}
	return d
}

// mongoInsert inserts docs into db.coll in batches.
func mongoInsert(t testing.TB, cl *mongo.Client, coll string, docs []any) {
	t.Helper()
	c := cl.Database(mongoDB).Collection(coll)
	for start := 0; start < len(docs); start += 500 {
		if _, err := c.InsertMany(mongoCtx(t), docs[start:min(start+500, len(docs))]); err != nil {
			t.Fatalf("seed %s.%s: %v", mongoDB, coll, err)
		}
	}
}

// mongoSeedInitial fills mig.mixed (mixed _id types), mig.types (BSON
// types) and mig.big (documents near 16 MiB), and creates a unique and a
// compound index on types and a sparse one on mixed.
func mongoSeedInitial(t testing.TB, cl *mongo.Client) {
	t.Helper()
	var mixed, types, big []any
	for i := range 400 {
		mixed = append(mixed, bson.D{{Key: "_id", Value: mongoMixedID(i)}, {Key: "n", Value: int32(i)}, {Key: "label", Value: fmt.Sprintf("doc %d", i)}})
	}
	for i := range 300 {
		types = append(types, mongoTypesDoc(i))
	}
	for i := range mongoBigDocs {
		pad := bytes.Repeat([]byte{'a' + byte(i)}, mongoBigSize)
		big = append(big, bson.D{{Key: "_id", Value: fmt.Sprintf("big-%d", i)}, {Key: "n", Value: int32(i)},
			{Key: "blob", Value: bson.Binary{Data: pad[:mongoBigSize/2]}}, {Key: "text", Value: string(pad[mongoBigSize/2:])}})
	}
	mongoInsert(t, cl, "mixed", mixed)
	mongoInsert(t, cl, "types", types)
	mongoInsert(t, cl, "big", big)
	db := cl.Database(mongoDB)
	for _, ix := range []struct {
		coll string
		spec bson.D
	}{
		{"types", bson.D{{Key: "key", Value: bson.D{{Key: "seq", Value: int32(1)}}}, {Key: "name", Value: "seq_unique"}, {Key: "unique", Value: true}}},
		{"types", bson.D{{Key: "key", Value: bson.D{{Key: "group", Value: int32(1)}, {Key: "when", Value: int32(-1)}}}, {Key: "name", Value: "group_when"}}},
		{"mixed", bson.D{{Key: "key", Value: bson.D{{Key: "label", Value: int32(1)}}}, {Key: "name", Value: "label_sparse"}, {Key: "sparse", Value: true}}},
	} {
		cmd := bson.D{{Key: "createIndexes", Value: ix.coll}, {Key: "indexes", Value: bson.A{ix.spec}}}
		if err := db.RunCommand(mongoCtx(t), cmd).Err(); err != nil {
			t.Fatalf("create index on %s: %v", ix.coll, err)
		}
	}
}

// mongoDocs returns a collection's documents by _id (the raw _id, type
// byte included, is the key) as raw bytes.
func mongoDocs(t testing.TB, cl *mongo.Client, coll string) map[string][]byte {
	t.Helper()
	ctx := mongoCtx(t)
	cur, err := cl.Database(mongoDB).Collection(coll).Find(ctx, bson.D{})
	if err != nil {
		t.Fatalf("read %s: %v", coll, err)
	}
	defer cur.Close(ctx)
	out := map[string][]byte{}
	for cur.Next(ctx) {
		id := cur.Current.Lookup("_id")
		key := string(append([]byte{byte(id.Type)}, id.Value...))
		if _, dup := out[key]; dup {
			t.Fatalf("%s: _id %s read twice", coll, id)
		}
		out[key] = slices.Clone(cur.Current)
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read %s: %v", coll, err)
	}
	return out
}

// mongoSame fails the test unless coll holds byte-identical documents on
// both sides; it returns the number of documents.
func mongoSame(t testing.TB, a, b *mongo.Client, coll string) int {
	t.Helper()
	da, db := mongoDocs(t, a, coll), mongoDocs(t, b, coll)
	var problems []string
	describe := func(key string) string {
		return bson.RawValue{Type: bson.Type(key[0]), Value: []byte(key[1:])}.String()
	}
	for k, doc := range da {
		other, ok := db[k]
		switch {
		case !ok:
			problems = append(problems, "missing in B: _id "+describe(k))
		case !bytes.Equal(doc, other):
			problems = append(problems, fmt.Sprintf("different: _id %s (%d bytes in A, %d in B)", describe(k), len(doc), len(other)))
		}
	}
	for k := range db {
		if _, ok := da[k]; !ok {
			problems = append(problems, "extra in B: _id "+describe(k))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Errorf("%s.%s: %d documents in A, %d in B, %d problems, first ones:\n  %s",
			mongoDB, coll, len(da), len(db), len(problems), strings.Join(problems[:min(10, len(problems))], "\n  "))
	}
	return len(da)
}

// mongoIndexes returns a collection's indexes as name → specification
// without the server's version field.
func mongoIndexes(t testing.TB, cl *mongo.Client, coll string) map[string]string {
	t.Helper()
	ctx := mongoCtx(t)
	cur, err := cl.Database(mongoDB).Collection(coll).Indexes().List(ctx)
	if err != nil {
		t.Fatalf("list indexes of %s: %v", coll, err)
	}
	defer cur.Close(ctx)
	out := map[string]string{}
	for cur.Next(ctx) {
		elems, err := cur.Current.Elements()
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, e := range elems {
			if e.Key() != "v" && e.Key() != "ns" {
				parts = append(parts, e.String())
			}
		}
		name, _ := cur.Current.Lookup("name").StringValueOK()
		out[name] = strings.Join(parts, ",")
	}
	return out
}

// mongoSameIndexes fails the test unless coll has the same indexes on both
// sides, and more than the _id index.
func mongoSameIndexes(t testing.TB, a, b *mongo.Client, coll string) {
	t.Helper()
	ia, ib := mongoIndexes(t, a, coll), mongoIndexes(t, b, coll)
	if len(ia) < 2 || fmt.Sprint(ia) != fmt.Sprint(ib) {
		t.Errorf("%s.%s indexes differ:\nA: %v\nB: %v", mongoDB, coll, ia, ib)
	}
}

// mongoCount returns the number of documents of the collections of mig
// (from collection statistics: a count would scan the documents).
func mongoCount(t testing.TB, cl *mongo.Client, colls ...string) int64 {
	t.Helper()
	var n int64
	for _, c := range colls {
		k, err := cl.Database(mongoDB).Collection(c).EstimatedDocumentCount(mongoCtx(t))
		if err != nil {
			t.Fatalf("count %s: %v", c, err)
		}
		n += k
	}
	return n
}

// mongoVerify runs `dsync verify A B`, which must exit 0 (identical).
func mongoVerify(t testing.TB, a, b, stateDir string) {
	t.Helper()
	r := run(t, runTimeout, "verify", a, b, "--state-dir", stateDir, "--progress", "none")
	t.Logf("dsync verify A B: exit %d after %s", r.code, r.elapsed.Round(time.Millisecond))
	if r.code != 0 {
		t.Errorf("dsync verify A B: want exit 0 (identical):\n%s", r)
	}
}

// `dsync sync --mode initial` between two FerretDB servers of three
// collections: mixed _id types, many BSON types, documents near 16 MiB.
// The coordinator is killed with SIGKILL mid-copy, the same command then
// completes, and B holds byte-identical documents and the same secondary
// indexes; `dsync verify A B` agrees.
func TestMongoInitialSync(t *testing.T) {
	a, b := ferret.Start(t), ferret.Start(t)
	ca, cb := mongoConnect(t, a), mongoConnect(t, b)
	mongoSeedInitial(t, ca)
	colls := []string{"mixed", "types", "big"}
	total := mongoCount(t, ca, colls...)

	dir := t.TempDir()
	src := mongoURL(a, "partitionDocs=100&pageDocs=25")
	args := []string{"sync", src, b, "--mode", "initial", "--parallel", "1", "--writers", "2",
		"--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}

	p := start(t, args...)
	deadline := time.Now().Add(time.Minute)
	for mongoCount(t, cb, colls...) == 0 {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the copy wrote nothing before dsync ended or a minute passed: %s", p.res)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.signal(syscall.SIGKILL)
	if r := p.wait(10 * time.Second); r.code != -int(syscall.SIGKILL) {
		t.Fatalf("killed dsync exited with %d:\n%s", r.code, r)
	}
	p.sessionGone(10 * time.Second)
	killedAt := mongoCount(t, cb, colls...)
	if killedAt >= total {
		t.Fatalf("the copy was complete (%d documents) before the kill", killedAt)
	}
	t.Logf("killed mid-copy with %d of %d documents in B", killedAt, total)

	r := mustRun(t, runTimeout, args...)
	if final := finalProgress(t, r.stdout); final.Phase != "done" {
		t.Errorf("final phase %q, want done:\n%s", final.Phase, r)
	}
	t.Logf("rerun copied the rest in %s", r.elapsed.Round(time.Millisecond))
	for _, c := range colls {
		n := mongoSame(t, ca, cb, c)
		t.Logf("%s.%s: %d byte-identical documents", mongoDB, c, n)
	}
	mongoSameIndexes(t, ca, cb, "types")
	mongoSameIndexes(t, ca, cb, "mixed")
	mongoVerify(t, a, b, dir+"/verify")
}

// mongoWriter applies a random mix of inserts, updates, replaces and
// deletes across every _id type to mig.mixed and mig.accounts.
type mongoWriter struct {
	cl   *mongo.Client
	rng  *rand.Rand
	live map[string][]any // collection -> live _ids
	next int              // next new _id index
	ops  map[string]int
}

func (w *mongoWriter) pick(coll string) (int, any) {
	ids := w.live[coll]
	i := w.rng.IntN(len(ids))
	return i, ids[i]
}

func (w *mongoWriter) step(ctx context.Context) error {
	coll := "mixed"
	if w.rng.IntN(3) == 0 {
		coll = "accounts"
	}
	c := w.cl.Database(mongoDB).Collection(coll)
	filter := func(id any) bson.D { return bson.D{{Key: "_id", Value: id}} }
	switch r := w.rng.IntN(10); {
	case r < 4 || len(w.live[coll]) < 10:
		id := mongoMixedID(w.next)
		if coll == "accounts" {
			id = int64(w.next)
		}
		w.next++
		doc := bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(w.next)}, {Key: "label", Value: "inserted"},
			{Key: "at", Value: bson.DateTime(time.Now().UnixMilli())}, {Key: "tags", Value: bson.A{"new", int32(w.next % 5)}}}
		if _, err := c.InsertOne(ctx, doc); err != nil {
			return fmt.Errorf("insert %v: %w", id, err)
		}
		w.live[coll] = append(w.live[coll], id)
		w.ops["insert"]++
	case r < 7:
		_, id := w.pick(coll)
		upd := bson.D{{Key: "$set", Value: bson.D{{Key: "label", Value: fmt.Sprintf("updated %d", w.rng.IntN(1000))}, {Key: "extra", Value: bson.D{{Key: "k", Value: int64(w.rng.IntN(99))}}}}},
			{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(1)}}}}
		if _, err := c.UpdateOne(ctx, filter(id), upd); err != nil {
			return fmt.Errorf("update %v: %w", id, err)
		}
		w.ops["update"]++
	case r < 8:
		_, id := w.pick(coll)
		doc := bson.D{{Key: "_id", Value: id}, {Key: "replaced", Value: true}, {Key: "n", Value: int32(w.rng.IntN(1000))}}
		if _, err := c.ReplaceOne(ctx, filter(id), doc); err != nil {
			return fmt.Errorf("replace %v: %w", id, err)
		}
		w.ops["replace"]++
	default:
		i, id := w.pick(coll)
		if _, err := c.DeleteOne(ctx, filter(id)); err != nil {
			return fmt.Errorf("delete %v: %w", id, err)
		}
		w.live[coll] = slices.Delete(w.live[coll], i, i+1)
		w.ops["delete"]++
	}
	return nil
}

// Oplog CDC end to end: A records an oplog, `dsync sync` copies A to B and
// streams A's oplog while a writer inserts, updates, replaces and deletes
// documents of every _id type during and after the copy. The coordinator
// is killed during CDC; the same command with --until-lag 2s resumes and
// cuts over once the writer is done, and B then equals A byte for byte.
func TestMongoOplogCDC(t *testing.T) {
	const writes = 300
	a, b := ferret.Start(t, ferret.WithOplog()), ferret.Start(t)
	ca, cb := mongoConnect(t, a), mongoConnect(t, b)
	w := &mongoWriter{cl: ca, rng: rand.New(rand.NewPCG(7, 11)), live: map[string][]any{}, ops: map[string]int{}}
	var mixed, accounts []any
	for i := range 300 {
		id := mongoMixedID(i)
		mixed = append(mixed, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(i)}, {Key: "label", Value: fmt.Sprintf("doc %d", i)}})
		w.live["mixed"] = append(w.live["mixed"], id)
	}
	for i := range 500 {
		accounts = append(accounts, bson.D{{Key: "_id", Value: int64(i)}, {Key: "n", Value: int32(i)}, {Key: "label", Value: "account"},
			{Key: "owner", Value: bson.D{{Key: "name", Value: fmt.Sprintf("owner %d", i)}, {Key: "since", Value: bson.DateTime(int64(i) * 3_600_000)}}}})
		w.live["accounts"] = append(w.live["accounts"], int64(i))
	}
	w.next = 100_000
	mongoInsert(t, ca, "mixed", mixed)
	mongoInsert(t, ca, "accounts", accounts)

	dir := t.TempDir()
	src := mongoURL(a, "partitionDocs=150&pageDocs=50")
	args := []string{"sync", src, b, "--mode", "full", "--parallel", "2",
		"--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}

	p := start(t, args...)
	writerDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for range writes {
			if err := w.step(ctx); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
		writerDone <- nil
	}()
	p.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
	time.Sleep(time.Second)
	p.signal(syscall.SIGKILL)
	if r := p.wait(10 * time.Second); r.code != -int(syscall.SIGKILL) {
		t.Fatalf("killed dsync exited with %d:\n%s", r.code, r)
	}
	p.sessionGone(10 * time.Second)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer: %v", w.ops)

	r := mustRun(t, runTimeout, append(args, "--until-lag", "2s")...)
	if final := finalProgress(t, r.stdout); final.Phase != "done" || len(cutovers(r.stdout)) != 1 {
		t.Errorf("the resumed run did not cut over:\n%s", r)
	}
	t.Logf("resumed run cut over after %s", r.elapsed.Round(time.Millisecond))
	for _, c := range []string{"mixed", "accounts"} {
		n := mongoSame(t, ca, cb, c)
		t.Logf("%s.%s: %d byte-identical documents", mongoDB, c, n)
	}
	mongoVerify(t, a, b, dir+"/verify")
}
