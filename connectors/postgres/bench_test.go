package postgres

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// BenchmarkWriteData compares the two ways the sink can write a batch of
// new rows (insert) and of existing ones (upsert): one INSERT ... SELECT
// FROM unnest($1::text[], ...) ON CONFLICT statement, or COPY into a
// temporary table and an INSERT ... SELECT from it.
func BenchmarkWriteData(b *testing.B) {
	const batch = 1000
	for _, method := range []string{"unnest", "copy"} {
		for _, mode := range []string{"insert", "upsert"} {
			b.Run(fmt.Sprintf("method=%s/mode=%s", method, mode), func(b *testing.B) {
				url := newDB(b)
				exec(b, url, `CREATE TABLE bench (id bigint PRIMARY KEY, name text, n numeric, at timestamptz,
					tags text[], meta jsonb, flag boolean, score double precision, cnt int, note text)`)
				c := configured(b, url)
				if method == "copy" {
					st, _ := c.state()
					st.copyRows = 1
				}
				docs := func(from int64) []bson.Raw {
					out := make([]bson.Raw, batch)
					for i := range out {
						id := from + int64(i)
						out[i] = mustRaw(b, bson.D{
							{Key: "_id", Value: id}, {Key: "name", Value: fmt.Sprintf("name %d", id)},
							{Key: "n", Value: dec("1234.5678")}, {Key: "at", Value: bson.DateTime(1_700_000_000_000 + id)},
							{Key: "tags", Value: bson.A{"a", "b"}}, {Key: "meta", Value: bson.D{{Key: "k", Value: id}}},
							{Key: "flag", Value: id%2 == 0}, {Key: "score", Value: float64(id) / 3}, {Key: "cnt", Value: int32(id)},
							{Key: "note", Value: "some text that makes the row a little longer than it would be"},
						})
					}
					return out
				}
				var bytes int64
				for _, d := range docs(0) {
					bytes += int64(len(d))
				}
				b.SetBytes(bytes)
				ctx := context.Background()
				if mode == "upsert" {
					if err := c.WriteData(ctx, "public.bench", docs(0)); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					from := int64(0)
					if mode == "insert" {
						from = int64(i+1) * batch
					}
					if err := c.WriteData(ctx, "public.bench", docs(from)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
			})
		}
	}
}

// BenchmarkListData reads a table of 100k rows.
func BenchmarkListData(b *testing.B) {
	url := newDB(b)
	exec(b, url, `CREATE TABLE bench (id bigint PRIMARY KEY, name text, n numeric, at timestamptz, tags text[], meta jsonb)`,
		`INSERT INTO bench SELECT i, 'name ' || i, i / 7.0, now(), ARRAY['a', 'b'], jsonb_build_object('k', i) FROM generate_series(1, 100000) i`)
	c := configured(b, url)
	p := plan(b, c, sdk.PlanRequest{Namespaces: []string{"public.bench"}, InitialSync: true})
	b.ResetTimer()
	docs := 0
	for i := 0; i < b.N; i++ {
		for _, part := range p.Partitions {
			docs += len(readPartition(b, c, part, nil))
		}
	}
	b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkStreamUpdates streams the inserts of one large transaction.
func BenchmarkStreamUpdates(b *testing.B) {
	const rows = 100000
	url := newDB(b)
	exec(b, url, `CREATE TABLE bench (id bigint PRIMARY KEY, name text, n numeric, at timestamptz, tags text[], meta jsonb)`)
	c := configured(b, url)
	p := plan(b, c, sdk.PlanRequest{Namespaces: []string{"public.bench"}, Updates: true})
	exec(b, url, fmt.Sprintf(`INSERT INTO bench SELECT i, 'name ' || i, i / 7.0, now(), ARRAY['a', 'b'], jsonb_build_object('k', i)
		FROM generate_series(1, %d) i`, rows))
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		err := c.StreamUpdates(ctx, sdk.StreamRequest{Cursor: p.UpdatesPartitions[0].Cursor}, func(batch sdk.UpdateBatch) error {
			got += len(batch.Updates)
			if got >= rows {
				cancel()
			}
			return nil
		})
		cancel()
		if got < rows {
			b.Fatalf("streamed %d of %d: %v", got, rows, err)
		}
		n += got
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "changes/s")
}
