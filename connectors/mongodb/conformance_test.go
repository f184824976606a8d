package mongodb_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/connectors/mongodb"
	"github.com/dsyncio/dsync/internal/testserver/ferret"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

// servePluginEnv makes the test binary serve the connector as a plugin.
const servePluginEnv = "DSYNC_MONGODB_SERVE_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(servePluginEnv) == "1" {
		sdk.Serve(sdk.Plugin{Connector: mongodb.New()})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const conformanceDocs = 300

// The conformance kit against FerretDB with an oplog, the connector running
// as a real plugin subprocess (this test binary) with mutual TLS.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Harness{
		Command: func() *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), servePluginEnv+"=1")
			return cmd
		},
		URL: func(t sdktest.TB) string {
			uri := ferret.Start(t, ferret.WithOplog())
			withClient(t, uri, func(ctx context.Context, cl *mongo.Client) {
				docs := make([]any, conformanceDocs)
				for i := range docs {
					docs[i] = bson.D{{Key: "_id", Value: conformanceID(i)}, {Key: "n", Value: int32(i)}, {Key: "tags", Value: bson.A{"a", i}}}
				}
				if _, err := cl.Database("conf").Collection("items").InsertMany(ctx, docs); err != nil {
					t.Fatalf("seed: %v", err)
				}
			})
			return uri + "?partitionDocs=90&pageDocs=40"
		},
		ExpectedCounts: map[string]int{"conf.items": conformanceDocs},
		Mutate: func(t sdktest.TB, url string) []sdktest.Change {
			var changes []sdktest.Change
			withClient(t, url, func(ctx context.Context, cl *mongo.Client) {
				coll := cl.Database("conf").Collection("items")
				must := func(err error) {
					if err != nil {
						t.Fatalf("mutate: %v", err)
					}
				}
				_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "new-1"}, {Key: "n", Value: int32(-1)}})
				must(err)
				changes = append(changes, sdktest.Change{Namespace: "conf.items", ID: "new-1"})
				for _, i := range []int{3, 4, 5, 3} {
					_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: conformanceID(i)}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(1000)}}}})
					must(err)
					changes = append(changes, sdktest.Change{Namespace: "conf.items", ID: conformanceID(i)})
				}
				for _, i := range []int{6, 7} {
					_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: conformanceID(i)}})
					must(err)
					changes = append(changes, sdktest.Change{Namespace: "conf.items", ID: conformanceID(i), Delete: true})
				}
				_, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "new-1"}}, bson.D{{Key: "_id", Value: "new-1"}, {Key: "replaced", Value: true}})
				must(err)
				changes = append(changes, sdktest.Change{Namespace: "conf.items", ID: "new-1", Doc: bson.D{{Key: "_id", Value: "new-1"}, {Key: "replaced", Value: true}}})
			})
			return changes
		},
		ReadBackWithGetByIDs: true,
		Expect:               sdktest.Expect{Source: true, Sink: true, Updates: true, GetByIDs: true},
	})
}

// conformanceID gives documents _ids of several types.
func conformanceID(i int) any {
	switch i % 3 {
	case 0:
		return int64(i)
	case 1:
		return "s" + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune('A'+i/26%26))
	}
	var oid bson.ObjectID
	oid[10], oid[11] = byte(i>>8), byte(i)
	return oid
}

func withClient(t sdktest.TB, uri string, f func(context.Context, *mongo.Client)) {
	t.Helper()
	ctx := t.Context()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = cl.Disconnect(context.WithoutCancel(ctx)) }()
	f(ctx, cl)
}
