package random_test

import (
	"context"
	"fmt"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
)

func Example() {
	ctx := context.Background()
	c := random.New()
	if err := c.Configure(ctx, sdk.Config{URL: "random://?namespaces=2&docs=10&partitions=2&size=200"}); err != nil {
		panic(err)
	}
	plan, err := c.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true})
	if err != nil {
		panic(err)
	}
	for _, p := range plan.Partitions {
		page, err := c.ListData(ctx, p, nil)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s: %d docs of %d bytes, first _id %d\n", p.Namespace, p.Cursor, len(page.Docs), len(page.Docs[0]), page.Docs[0].Lookup("_id").Int64())
	}
	// Output:
	// random.ns0 p1:0:0:5: 5 docs of 200 bytes, first _id 0
	// random.ns0 p1:0:5:10: 5 docs of 200 bytes, first _id 5
	// random.ns1 p1:1:0:5: 5 docs of 200 bytes, first _id 0
	// random.ns1 p1:1:5:10: 5 docs of 200 bytes, first _id 5
}

// A test of a sync computes what the sink must hold after the copy and
// every change event.
func ExampleOptions_ExpectedState() {
	o, err := random.ParseURL("random://?docs=100&updates=1000")
	if err != nil {
		panic(err)
	}
	want, err := o.ExpectedState()
	if err != nil {
		panic(err)
	}
	counts := map[sdk.UpdateType]int{}
	for e := range o.Events(0) {
		counts[e.Update.Type]++
	}
	fmt.Printf("%d documents after %d inserts, %d replaces, %d partial updates, %d deletes\n",
		len(want["random.ns0"]), counts[sdk.UpdateInsert], counts[sdk.UpdateReplace], counts[sdk.UpdatePartial], counts[sdk.UpdateDelete])
	// Output:
	// 259 documents after 288 inserts, 252 replaces, 331 partial updates, 129 deletes
}
