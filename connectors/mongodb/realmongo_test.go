package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// realURIEnv names a MongoDB replica set (or sharded cluster) to run the
// change-stream suite against, e.g.
// mongodb://localhost:27017/?replicaSet=rs0. The tests create and drop
// databases named dsync_test_*.
const realURIEnv = "DSYNC_TEST_MONGODB_URI"

// realIDs adds to mixedIDs the _id values FerretDB cannot store: Decimal128,
// NaN, infinities, MinKey, MaxKey, symbols and JavaScript code.
func realIDs(n int) []any {
	dec, _ := bson.ParseDecimal128("12345.6789")
	negDec, _ := bson.ParseDecimal128("-0.5")
	special := []any{
		bson.MinKey{}, bson.MaxKey{}, math.NaN(), math.Inf(1), math.Inf(-1),
		dec, negDec, bson.Symbol("sym"), bson.JavaScript("function() { return 1 }"),
	}
	return append(special, mixedIDs(n-len(special))...)
}

// The suite against a real replica set given in DSYNC_TEST_MONGODB_URI:
// plan coverage with every _id type, copy plus change-stream CDC (and
// forced oplog CDC) under concurrent changes with a resume, sink writes,
// reads by _id, and a drop stopping the stream.
func TestRealMongoDB(t *testing.T) {
	uri := os.Getenv(realURIEnv)
	if uri == "" {
		t.Skipf("%s is not set, so the change-stream tests against a real MongoDB replica set did NOT run "+
			"(CI leaves it unset unless it provides a replica set); set it to e.g. mongodb://localhost:27017/?replicaSet=rs0 to run them", realURIEnv)
	}
	cl := connect(t, uri)
	prefix := fmt.Sprintf("dsync_test_%d_", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		names, _ := cl.ListDatabaseNames(ctx, bson.D{})
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				_ = cl.Database(n).Drop(ctx)
			}
		}
	})
	c := configured(t, uri)
	if !c.st.Load().server.changeStreams() {
		t.Fatalf("%s is %s, which has no change streams: give a replica set or a sharded cluster", realURIEnv, c.st.Load().server.describe())
	}

	t.Run("plan_mixed_id_types", func(t *testing.T) {
		runPlanExactlyOnce(t, uri, prefix+"plan.c", realIDs(1200), 6)
	})
	t.Run("changestream_copy_and_cdc", func(t *testing.T) {
		runCDCExact(t, cdcSuite{uri: uri, db: prefix + "cs", mode: CDCChangeStream, ids: realIDs})
	})
	t.Run("oplog_copy_and_cdc", func(t *testing.T) {
		runCDCExact(t, cdcSuite{uri: uri, db: prefix + "op", mode: CDCOplog, ids: realIDs, query: "cdc=oplog"})
	})
	t.Run("sink_and_get_by_ids", func(t *testing.T) {
		ns := prefix + "sink.c"
		ctx := testCtx(t)
		ids := realIDs(200)
		if err := c.WriteData(ctx, ns, docsFor(ids, 1)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteData(ctx, ns, docsFor(ids, 2)); err != nil {
			t.Fatal(err)
		}
		req := make([]bson.RawValue, 0, len(ids)+1)
		for i := len(ids) - 1; i >= 0; i-- {
			req = append(req, rawID(ids[i]))
		}
		req = append(req, rawID("missing"))
		docs, err := c.GetByIDs(ctx, ns, req)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range docs[:len(ids)] {
			if d == nil || d.Lookup("v").Int32() != 2 || matchKey(d.Lookup("_id")) != matchKey(req[i]) {
				t.Errorf("GetByIDs result %d: %v, want version 2 of %s", i, d, req[i])
			}
		}
		if docs[len(ids)] != nil {
			t.Errorf("missing id returned %v", docs[len(ids)])
		}
	})
	t.Run("drop_stops_the_stream", func(t *testing.T) {
		ns := prefix + "drop.c"
		seed(t, cl, ns, []any{1}, 0)
		plan, err := c.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{ns}, Updates: true})
		if err != nil {
			t.Fatal(err)
		}
		db, coll, _ := splitNamespace(ns)
		if err := cl.Database(db).Collection(coll).Drop(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
		defer cancel()
		err = c.StreamUpdates(ctx, sdk.StreamRequest{Namespaces: []string{ns}, Cursor: plan.UpdatesPartitions[0].Cursor}, func(sdk.UpdateBatch) error { return nil })
		if !errors.Is(err, ErrNamespaceChanged) || sdk.KindOf(err) != sdk.KindFatal {
			t.Fatalf("stream over a dropped collection: %v, want fatal ErrNamespaceChanged", err)
		}
	})
}
