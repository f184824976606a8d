package testsink_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/sdk/sdktest"
	"github.com/dsyncio/dsync/tests/testsink"
)

// seed writes n documents into namespace ns of a new store in dir.
func seed(t sdktest.TB, dir, ns string, n int) {
	t.Helper()
	c := testsink.New()
	ctx := context.Background()
	if err := c.Configure(ctx, sdk.Config{URL: testsink.URL(dir)}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	defer c.Close()
	docs := make([]bson.Raw, n)
	for i := range docs {
		b, err := bson.Marshal(bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: fmt.Sprintf("doc %d", i)}})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		docs[i] = b
	}
	if err := c.WriteData(ctx, ns, docs); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func TestConformance(t *testing.T) {
	bin := testsink.BuildBinary(t, t.TempDir())
	sdktest.Run(t, sdktest.Harness{
		Command: func() *exec.Cmd { return exec.Command(bin) },
		URL: func(t sdktest.TB) string {
			dir := t.TempDir()
			seed(t, dir, "app.items", 700)
			return testsink.Options{Dir: dir, PageDocs: 50}.URL()
		},
		ExpectedCounts:       map[string]int{"app.items": 700},
		ReadBackWithGetByIDs: true,
		Expect:               sdktest.Expect{Source: true, Sink: true, GetByIDs: true},
	})
}
