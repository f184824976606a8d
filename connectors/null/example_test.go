package null_test

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/null"
	"github.com/dsyncio/dsync/sdk"
)

// A sink whose first two writes fail with retryable errors.
func Example() {
	ctx := context.Background()
	c := null.New()
	if err := c.Configure(ctx, sdk.Config{URL: "null://?fail=retryable:2"}); err != nil {
		panic(err)
	}
	doc, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}})
	for range 3 {
		err := c.WriteData(ctx, "db.coll", []bson.Raw{doc})
		fmt.Println(errors.Is(err, null.ErrInjected), sdk.IsRetryable(err))
	}
	fmt.Printf("%+v\n", c.Counts())
	// Output:
	// true true
	// true true
	// false false
	// {Docs:1 Updates:0 Bytes:14 Calls:3 Failures:2}
}
