package mongodb

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
	"github.com/dsyncio/dsync/sdk"
)

// testCtx returns a context that ends with the test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect returns a driver client for uri, disconnected at the end of t.
func connect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cl
}

// configured returns a connector configured with url, closed at the end of
// t.
func configured(t testing.TB, url string) *Connector {
	t.Helper()
	c := New()
	if err := c.Configure(testCtx(t), sdk.Config{URL: url}); err != nil {
		t.Fatalf("Configure(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// withQuery appends options to a connection string.
func withQuery(uri, q string) string {
	switch {
	case q == "":
		return uri
	case strings.Contains(uri, "?"):
		return uri + "&" + q
	case strings.Count(uri, "/") == 2:
		return uri + "/?" + q
	}
	return uri + "?" + q
}

// mixedIDs returns n distinct _id values cycling through every BSON type
// FerretDB stores as _id, with the special values (null, booleans, NaN,
// infinities, empty string and document) once each.
func mixedIDs(n int) []any {
	ids := []any{nil, true, false, "", bson.D{}, int32(math.MinInt32), int64(math.MaxInt64), bson.Binary{Subtype: 0, Data: []byte{0}}}
	for i := 0; len(ids) < n; i++ {
		var v any
		switch i % 12 {
		case 0:
			var oid bson.ObjectID
			oid[0], oid[10], oid[11] = byte(i>>16), byte(i>>8), byte(i)
			v = oid
		case 1:
			v = fmt.Sprintf("s%06d", i)
		case 2:
			v = int32(i*12 - 5000)
		case 3:
			v = int64(i)*12 + 1<<40
		case 4:
			v = float64(i)*12 + 0.5
		case 5:
			v = bson.Binary{Subtype: 4, Data: []byte(fmt.Sprintf("uuid-%011d", i))}
		case 6:
			v = bson.D{{Key: "k", Value: int32(i)}, {Key: "s", Value: "x"}}
		case 7:
			v = bson.DateTime(int64(i) * 86_400_000)
		case 8:
			v = bson.Timestamp{T: uint32(i), I: 1}
		case 9:
			v = bson.Binary{Subtype: 0, Data: []byte{byte(i >> 8), byte(i)}}
		case 10:
			v = fmt.Sprintf("é-%d", i)
		case 11:
			v = bson.D{{Key: "a", Value: bson.A{int32(i)}}}
		}
		ids = append(ids, v)
	}
	return ids[:n]
}

// seed inserts one document per id into db.coll.
func seed(t testing.TB, cl *mongo.Client, ns string, ids []any, payload int) {
	t.Helper()
	db, coll, _ := splitNamespace(ns)
	docs := make([]any, len(ids))
	pad := make([]byte, payload)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	for i, id := range ids {
		docs[i] = bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(i)}, {Key: "pad", Value: string(pad)}}
	}
	for start := 0; start < len(docs); start += 1000 {
		if _, err := cl.Database(db).Collection(coll).InsertMany(testCtx(t), docs[start:min(start+1000, len(docs))]); err != nil {
			t.Fatalf("seed %s: %v", ns, err)
		}
	}
}

// startFerret starts FerretDB, with an oplog when asked.
func startFerret(t testing.TB, oplog bool) string {
	t.Helper()
	if oplog {
		return ferret.Start(t, ferret.WithOplog())
	}
	return ferret.Start(t)
}

// readPartition reads a whole partition, starting from cursor.
func readPartition(t testing.TB, c *Connector, p sdk.Partition, cursor []byte) []bson.Raw {
	t.Helper()
	var out []bson.Raw
	for {
		page, err := c.ListData(testCtx(t), p, cursor)
		if err != nil {
			t.Fatalf("ListData: %v", err)
		}
		out = append(out, page.Docs...)
		if len(page.NextCursor) == 0 {
			return out
		}
		cursor = page.NextCursor
	}
}

// serverDocs returns every document of ns by matchKey of its _id.
func serverDocs(t testing.TB, cl *mongo.Client, ns string) map[string]bson.Raw {
	t.Helper()
	db, coll, _ := splitNamespace(ns)
	cur, err := cl.Database(db).Collection(coll).Find(testCtx(t), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.Raw{}
	for cur.Next(testCtx(t)) {
		out[idKey(cur.Current.Lookup("_id"))] = append(bson.Raw(nil), cur.Current...)
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
