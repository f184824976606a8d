package random

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dsyncio/dsync/sdk"
)

// BenchmarkListData reads one large partition page by page; docs/s is the
// generation throughput a coordinator benchmark can at most see.
func BenchmarkListData(b *testing.B) {
	for _, size := range []int{0, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			c := configured(b, fmt.Sprintf("random://?docs=1000000000&partitions=1&size=%d", size))
			o, _ := c.Options()
			p := sdk.Partition{Namespace: "random.ns0", Cursor: partitionCursor{ns: 0, lo: 0, hi: o.Docs}.encode()}
			b.SetBytes(int64(o.DocSize()))
			b.ReportAllocs()
			var cursor []byte
			docs := 0
			b.ResetTimer()
			for docs < b.N {
				page, err := c.ListData(context.Background(), p, cursor)
				if err != nil {
					b.Fatal(err)
				}
				docs += len(page.Docs)
				cursor = page.NextCursor
			}
			b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

// BenchmarkStreamUpdates streams change events without a rate.
func BenchmarkStreamUpdates(b *testing.B) {
	c := configured(b, "random://?docs=100000&updates=1000000000000&size=1024")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	n := 0
	err := c.StreamUpdates(ctx, sdk.StreamRequest{}, func(batch sdk.UpdateBatch) error {
		n += len(batch.Updates)
		if n >= b.N {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
