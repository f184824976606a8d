package docdir_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"example.com/dsync-connector-docdir/docdir"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

// servePlugin makes the test binary serve the connector instead of running
// tests: the conformance kit starts it as dsync would start the real
// executable.
const servePlugin = "DOCDIR_SERVE_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(servePlugin) == "1" {
		sdk.Serve(sdk.Plugin{Connector: docdir.New()})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const seeded = 300

// seed writes seeded documents into namespace app.users of a fresh
// directory and returns its URL. Pages of 100 documents make the source
// cases resume inside a partition.
func seed(t sdktest.TB) string {
	url := "docdir://" + t.TempDir() + "?page=100"
	c := docdir.New()
	ctx := context.Background()
	if err := c.Configure(ctx, sdk.Config{URL: url}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	docs := make([]bson.Raw, seeded)
	for i := range docs {
		doc, err := bson.Marshal(bson.D{{Key: "_id", Value: int64(i)}, {Key: "name", Value: fmt.Sprintf("user %d", i)}})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		docs[i] = doc
	}
	if err := c.WriteData(ctx, "app.users", docs); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return url
}

func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Harness{
		Command: func() *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), servePlugin+"=1")
			return cmd
		},
		URL:                  seed,
		ExpectedCounts:       map[string]int{"app.users": seeded},
		ReadBackWithGetByIDs: true,
		Expect:               sdktest.Expect{Source: true, Sink: true, GetByIDs: true},
	})
}
