package ferret_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
)

// Two servers start side by side; WithOplog records writes in
// local.oplog.rs.
func TestStart(t *testing.T) {
	plain := ferret.Start(t)
	withOplog := ferret.Start(t, ferret.WithOplog())
	if plain == withOplog {
		t.Fatalf("both servers at %s", plain)
	}
	ctx := context.Background()
	cl, err := mongo.Connect(options.Client().ApplyURI(withOplog))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Disconnect(ctx) }()
	if _, err := cl.Database("a").Collection("b").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	n, err := cl.Database("local").Collection("oplog.rs").CountDocuments(ctx, bson.D{{Key: "ns", Value: "a.b"}, {Key: "op", Value: "i"}})
	if err != nil || n != 1 {
		t.Fatalf("oplog entries of the insert: %d, %v; want 1", n, err)
	}
}
