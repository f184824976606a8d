package coordinator

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
)

// transformDocs runs docs of sink namespace ns through the transforms in
// order. An output batch without a namespace keeps its input's. Documents in
// no output batch are dropped and counted.
func (r *run) transformDocs(ctx context.Context, ns string, docs []bson.Raw) ([]spi.DataBatch, error) {
	batches := []spi.DataBatch{{Namespace: ns, Docs: docs}}
	for i, t := range r.cfg.Transforms {
		var next []spi.DataBatch
		for _, b := range batches {
			if len(b.Docs) == 0 {
				continue
			}
			var out []spi.DataBatch
			err := retry(ctx, r.cfg.Retry, r.log, "transform", func(ctx context.Context) (err error) {
				out, err = t.TransformData(ctx, b.Namespace, b.Docs)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("transform %d (%s) of namespace %q: %w", i, r.cfg.TransformSpecs[i], b.Namespace, err)
			}
			for _, o := range out {
				if o.Namespace == "" {
					o.Namespace = b.Namespace
				}
				next = append(next, o)
			}
		}
		batches = next
	}
	n := 0
	for _, b := range batches {
		n += len(b.Docs)
	}
	if dropped := len(docs) - n; dropped > 0 {
		r.dropped.Add(uint64(dropped))
		r.stats.dropped.Add(int64(dropped))
	}
	return batches, nil
}

// transformUpdates is transformDocs for updates; order within each output
// namespace is the transforms' to keep.
func (r *run) transformUpdates(ctx context.Context, ns string, ups []spi.Update) ([]spi.UpdatesBatch, error) {
	batches := []spi.UpdatesBatch{{Namespace: ns, Updates: ups}}
	for i, t := range r.cfg.Transforms {
		var next []spi.UpdatesBatch
		for _, b := range batches {
			if len(b.Updates) == 0 {
				continue
			}
			var out []spi.UpdatesBatch
			err := retry(ctx, r.cfg.Retry, r.log, "transform", func(ctx context.Context) (err error) {
				out, err = t.TransformUpdates(ctx, b.Namespace, b.Updates)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("transform %d (%s) of updates of namespace %q: %w", i, r.cfg.TransformSpecs[i], b.Namespace, err)
			}
			for _, o := range out {
				if o.Namespace == "" {
					o.Namespace = b.Namespace
				}
				next = append(next, o)
			}
		}
		batches = next
	}
	return batches, nil
}
