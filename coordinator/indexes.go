package coordinator

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// indexes copies the secondary indexes of every copied namespace from the
// source to the sink, between the copy and CDC. A sink that cannot create
// indexes gets a warning per namespace that has some, never a silent skip.
func (r *run) indexes(parts []checkpoint.PartitionState) error {
	if !r.copyIndexes {
		return nil
	}
	lister, ok := r.cfg.Source.(spi.IndexLister)
	if !ok {
		return nil
	}
	creator, _ := r.cfg.Sink.(spi.IndexCreator)
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Namespace] || p.SinkNamespace == "" {
			continue
		}
		seen[p.Namespace] = true
		if r.stopping() {
			return nil
		}
		var specs []bson.Raw
		err := retry(r.readCtx, r.cfg.Retry, r.log, "list indexes", func(ctx context.Context) error {
			var err error
			specs, err = lister.ListIndexes(ctx, p.Namespace)
			return err
		})
		if err != nil {
			if r.stopping() {
				return nil
			}
			return fmt.Errorf("list indexes of source namespace %q: %w", p.Namespace, err)
		}
		if len(specs) == 0 {
			continue
		}
		names := indexNames(specs)
		if !r.sinkIndexes || creator == nil {
			r.log.Warn("the sink cannot create indexes; create them by hand", "namespace", p.SinkNamespace, "indexes", names)
			continue
		}
		err = retry(r.writeCtx, r.cfg.Retry, r.log, "create indexes", func(ctx context.Context) error {
			return creator.CreateIndexes(ctx, p.SinkNamespace, specs)
		})
		if err != nil {
			if r.stopping() {
				return nil
			}
			return fmt.Errorf("create indexes %v on sink namespace %q: %w", names, p.SinkNamespace, err)
		}
		r.log.Info("indexes copied", "namespace", p.SinkNamespace, "indexes", names)
	}
	return nil
}

func indexNames(specs []bson.Raw) []string {
	var names []string
	for _, s := range specs {
		if n, ok := s.Lookup("name").StringValueOK(); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
