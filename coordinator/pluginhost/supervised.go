package pluginhost

import (
	"context"
	"fmt"
	"maps"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
)

// Connector is a supervised connector: it implements spi.Source, spi.Sink
// and the optional source interfaces by delegating to the plugin's current
// process. A call that fails because the process died returns an error
// wrapping ErrPluginDied, marked retryable, and the next call runs on a
// relaunched, reconfigured process; the caller resumes from its checkpoint.
// Calls the plugin does not implement fail with spi.KindUnimplemented (see
// Info for its capabilities). Safe for concurrent use.
type Connector struct{ p *Plugin }

var (
	_ spi.Source         = (*Connector)(nil)
	_ spi.Sink           = (*Connector)(nil)
	_ spi.UpdateStreamer = (*Connector)(nil)
	_ spi.UpdateAcker    = (*Connector)(nil)
	_ spi.LSNStreamer    = (*Connector)(nil)
	_ spi.IDGetter       = (*Connector)(nil)
	_ spi.IndexLister    = (*Connector)(nil)
	_ spi.IndexCreator   = (*Connector)(nil)
)

// Transform is a supervised transform implementing spi.Transform, with the
// same restart behaviour as Connector.
type Transform struct{ p *Plugin }

var _ spi.Transform = (*Transform)(nil)

// Connector returns the supervised connector, or nil for a transform.
func (p *Plugin) Connector() *Connector {
	if p.res.Role == RoleTransform {
		return nil
	}
	return &Connector{p: p}
}

// Transform returns the supervised transform, or nil for a connector.
func (p *Plugin) Transform() *Transform {
	if p.res.Role != RoleTransform {
		return nil
	}
	return &Transform{p: p}
}

// call runs f on the live instance and classifies its outcome.
func call[T any](ctx context.Context, p *Plugin, f func(*instance) (T, error)) (T, error) {
	inst, err := p.acquire(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f(inst)
	return v, p.done(ctx, inst, err)
}

// Configure implements spi.Connector. The plugin was configured by
// Host.Start and is reconfigured on every restart; calling Configure again
// with the same configuration is a no-op, and with another one fails with
// ErrAlreadyConfigured.
func (c *Connector) Configure(_ context.Context, cfg spi.Config) error {
	if cfg.URL == c.p.arg && maps.Equal(cfg.Settings, c.p.settings) {
		return nil
	}
	return spi.FailedPrecondition(fmt.Errorf("%w: %s", ErrAlreadyConfigured, c.p.desc))
}

// Info implements spi.Connector: the cached Info, no RPC.
func (c *Connector) Info(context.Context) (spi.Info, error) { return c.p.Info(), nil }

// NamespaceMetadata implements spi.Source.
func (c *Connector) NamespaceMetadata(ctx context.Context, ns string) (spi.NamespaceMetadata, error) {
	return call(ctx, c.p, func(i *instance) (spi.NamespaceMetadata, error) {
		return i.connector.NamespaceMetadata(ctx, ns)
	})
}

// GeneratePlan implements spi.Source.
func (c *Connector) GeneratePlan(ctx context.Context, req spi.PlanRequest) (spi.Plan, error) {
	return call(ctx, c.p, func(i *instance) (spi.Plan, error) { return i.connector.GeneratePlan(ctx, req) })
}

// ListData implements spi.Source.
func (c *Connector) ListData(ctx context.Context, part spi.Partition, cursor []byte) (spi.Page, error) {
	return call(ctx, c.p, func(i *instance) (spi.Page, error) { return i.connector.ListData(ctx, part, cursor) })
}

// StreamUpdates implements spi.UpdateStreamer. The first batch received
// counts as a successful call.
func (c *Connector) StreamUpdates(ctx context.Context, req spi.StreamRequest, send func(spi.UpdateBatch) error) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		first := true
		return struct{}{}, i.connector.StreamUpdates(ctx, req, func(b spi.UpdateBatch) error {
			if first {
				first = false
				c.p.succeeded(i)
			}
			return send(b)
		})
	})
	return err
}

// AckUpdates implements spi.UpdateAcker.
func (c *Connector) AckUpdates(ctx context.Context, cursor []byte) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		return struct{}{}, i.connector.AckUpdates(ctx, cursor)
	})
	return err
}

// StreamLSN implements spi.LSNStreamer. The first value received counts as
// a successful call.
func (c *Connector) StreamLSN(ctx context.Context, req spi.StreamRequest, send func(uint64) error) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		first := true
		return struct{}{}, i.connector.StreamLSN(ctx, req, func(n uint64) error {
			if first {
				first = false
				c.p.succeeded(i)
			}
			return send(n)
		})
	})
	return err
}

// GetByIDs implements spi.IDGetter.
func (c *Connector) GetByIDs(ctx context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	return call(ctx, c.p, func(i *instance) ([]bson.Raw, error) { return i.connector.GetByIDs(ctx, ns, ids) })
}

// WriteData implements spi.Sink.
func (c *Connector) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		return struct{}{}, i.connector.WriteData(ctx, ns, docs)
	})
	return err
}

// WriteUpdates implements spi.Sink.
func (c *Connector) WriteUpdates(ctx context.Context, ns string, updates []spi.Update) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		return struct{}{}, i.connector.WriteUpdates(ctx, ns, updates)
	})
	return err
}

// ListIndexes implements spi.IndexLister.
func (c *Connector) ListIndexes(ctx context.Context, ns string) ([]bson.Raw, error) {
	return call(ctx, c.p, func(i *instance) ([]bson.Raw, error) { return i.connector.ListIndexes(ctx, ns) })
}

// CreateIndexes implements spi.IndexCreator.
func (c *Connector) CreateIndexes(ctx context.Context, ns string, indexes []bson.Raw) error {
	_, err := call(ctx, c.p, func(i *instance) (struct{}, error) {
		return struct{}{}, i.connector.CreateIndexes(ctx, ns, indexes)
	})
	return err
}

// Configure implements spi.Transform like Connector.Configure: the same
// spec is a no-op, another one fails with ErrAlreadyConfigured.
func (t *Transform) Configure(_ context.Context, spec string) error {
	if spec == t.p.arg {
		return nil
	}
	return spi.FailedPrecondition(fmt.Errorf("%w: %s", ErrAlreadyConfigured, t.p.desc))
}

// TransformData implements spi.Transform.
func (t *Transform) TransformData(ctx context.Context, ns string, docs []bson.Raw) ([]spi.DataBatch, error) {
	return call(ctx, t.p, func(i *instance) ([]spi.DataBatch, error) { return i.transform.TransformData(ctx, ns, docs) })
}

// TransformUpdates implements spi.Transform.
func (t *Transform) TransformUpdates(ctx context.Context, ns string, updates []spi.Update) ([]spi.UpdatesBatch, error) {
	return call(ctx, t.p, func(i *instance) ([]spi.UpdatesBatch, error) {
		return i.transform.TransformUpdates(ctx, ns, updates)
	})
}
