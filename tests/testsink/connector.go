package testsink

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// DBType is Info.DBType of the connector.
const DBType = "testsink"

// version is Info.Version; it changes with the store format.
const version = "1"

// pageBytes bounds a ListData page, together with Options.PageDocs. A page
// holds at least one document, however large.
const pageBytes = 4 << 20

// Connector is the testsink connector: a sink and a source over one Pebble
// store. Use New; serve it with sdk.Serve.
type Connector struct {
	// mu guards db and opts: calls hold it for reading, Configure and Close
	// for writing. Pebble itself is safe for concurrent use.
	mu   sync.RWMutex
	db   *pebble.DB
	opts Options
}

var (
	_ sdk.Source   = (*Connector)(nil)
	_ sdk.Sink     = (*Connector)(nil)
	_ sdk.IDGetter = (*Connector)(nil)
	_ sdk.Closer   = (*Connector)(nil)
)

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// Configure implements sdk.Connector: it parses the URL (see ParseURL) and
// opens the store, creating it when missing. Configuring an open connector
// again switches it to the new URL.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config) error {
	o, err := ParseURL(cfg.URL)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		if c.opts.Dir == o.Dir {
			c.opts = o
			return nil
		}
		err := c.db.Close()
		c.db = nil
		if err != nil {
			return fmt.Errorf("testsink: close store %s: %w", c.opts.Dir, err)
		}
	}
	db, err := openDB(o.Dir, false)
	if err != nil {
		return fmt.Errorf("testsink: open store %s (another process may hold it): %w", o.Dir, err)
	}
	c.db, c.opts = db, o
	return nil
}

// Close implements sdk.Closer: it closes the store. Later calls fail as if
// the connector were not configured.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Close()
	c.db = nil
	if err != nil {
		return fmt.Errorf("testsink: close store %s: %w", c.opts.Dir, err)
	}
	return nil
}

// acquire returns the open store and options, and the function ending the
// call.
func (c *Connector) acquire() (*pebble.DB, *Options, func(), error) {
	c.mu.RLock()
	if c.db == nil {
		c.mu.RUnlock()
		return nil, nil, nil, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return c.db, &c.opts, c.mu.RUnlock, nil
}

// Info implements sdk.Connector.
func (c *Connector) Info(context.Context) (sdk.Info, error) {
	_, o, done, err := c.acquire()
	if err != nil {
		return sdk.Info{}, err
	}
	defer done()
	return sdk.Info{
		ID:      "testsink:" + o.Dir,
		DBType:  DBType,
		Version: version,
		Source: &sdk.SourceCapabilities{
			MultiNamespacePlan: true,
			DefaultPlan:        true,
			GetByIDs:           true,
		},
		Sink: &sdk.SinkCapabilities{},
	}, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// check fails writes of ids listed in FatalIDs.
func (o *Options) check(ns string, id bson.RawValue) error {
	if len(o.FatalIDs) == 0 {
		return nil
	}
	s := plainID(id)
	if !slices.Contains(o.FatalIDs, s) {
		return nil
	}
	return sdk.Fatal(fmt.Errorf("%w: namespace %s, _id %s", ErrRejected, ns, s))
}

// commit commits b durably unless ctx is already done.
func commit(ctx context.Context, b *pebble.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("testsink: commit: %w", err)
	}
	return nil
}

func addCounters(b *pebble.Batch, ns, perNS, global string, n uint64, callCounter string) error {
	for _, kv := range []struct {
		key []byte
		n   uint64
	}{
		{counterKey(global), n},
		{nsCounterKey(ns, perNS), n},
		{counterKey(callCounter), 1},
	} {
		if err := addCounter(b, kv.key, kv.n); err != nil {
			return err
		}
	}
	return nil
}

// WriteData implements sdk.Sink: one synced batch upserting every document
// by (namespace, _id) and counting them. Safe for concurrent use.
func (c *Connector) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	db, o, done, err := c.acquire()
	if err != nil {
		return err
	}
	defer done()
	if err := sleep(ctx, o.Delay); err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	for i, d := range docs {
		id, err := docID(d)
		if err != nil {
			return sdk.Fatal(fmt.Errorf("testsink: WriteData %s: document %d: %w", ns, i, err))
		}
		if err := o.check(ns, id); err != nil {
			return err
		}
		if err := b.Set(docKey(ns, id), d, nil); err != nil {
			return err
		}
	}
	if err := addCounters(b, ns, counterDocs, counterDocs, uint64(len(docs)), counterDataCalls); err != nil {
		return err
	}
	return commit(ctx, b)
}

// WriteUpdates implements sdk.Sink: one synced batch applying the updates
// in order and counting them. Safe for concurrent use for different ids.
func (c *Connector) WriteUpdates(ctx context.Context, ns string, updates []sdk.Update) error {
	db, o, done, err := c.acquire()
	if err != nil {
		return err
	}
	defer done()
	if err := sleep(ctx, o.Delay); err != nil {
		return err
	}
	// Indexed, so a partial update sees the earlier updates of this call.
	b := db.NewIndexedBatch()
	defer b.Close()
	for i, u := range updates {
		if err := applyUpdate(b, o, ns, u); err != nil {
			if sdk.KindOf(err) != sdk.KindFatal {
				return err
			}
			return sdk.Fatal(fmt.Errorf("testsink: WriteUpdates %s: update %d (%s): %w", ns, i, u.Type, err))
		}
	}
	if err := addCounters(b, ns, counterUpdates, counterUpdates, uint64(len(updates)), counterUpdateCalls); err != nil {
		return err
	}
	return commit(ctx, b)
}

func applyUpdate(b *pebble.Batch, o *Options, ns string, u sdk.Update) error {
	if err := validID(u.ID); err != nil {
		return err
	}
	if err := o.check(ns, u.ID); err != nil {
		return err
	}
	key := docKey(ns, u.ID)
	switch u.Type {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		id, err := docID(u.Doc)
		if err != nil {
			return err
		}
		if id.Type != u.ID.Type || !bytes.Equal(id.Value, u.ID.Value) {
			return fmt.Errorf("document _id %s differs from the update's id %s", IDString(id), IDString(u.ID))
		}
		return b.Set(key, u.Doc, nil)
	case sdk.UpdateDelete:
		return b.Delete(key, nil)
	case sdk.UpdatePartial:
		cur, _, err := get(b, key)
		if err != nil {
			return err
		}
		doc, err := applyPartial(cur, u.ID, u.Doc, u.Unset)
		if err != nil {
			return fmt.Errorf("_id %s: %w", IDString(u.ID), err)
		}
		return b.Set(key, doc, nil)
	}
	return fmt.Errorf("unknown update type %d", u.Type)
}

// NamespaceMetadata implements sdk.Source with exact figures: the number of
// documents of ns and the sum of their sizes.
func (c *Connector) NamespaceMetadata(ctx context.Context, ns string) (sdk.NamespaceMetadata, error) {
	db, _, done, err := c.acquire()
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	defer done()
	var md sdk.NamespaceMetadata
	err = eachDoc(ctx, db, ns, nil, nil, func(_, doc []byte) (bool, error) {
		md.Count++
		md.SizeBytes += uint64(len(doc))
		return true, nil
	})
	return md, err
}

// GeneratePlan implements sdk.Source. With no namespaces it plans every
// namespace holding documents. Each namespace is cut by key range into
// partitions of about Options.PartitionDocs documents. Update partitions
// are not available.
func (c *Connector) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	if req.Updates {
		return sdk.Plan{}, sdk.Unimplemented("GeneratePlan for updates (testsink has no change stream)")
	}
	db, o, done, err := c.acquire()
	if err != nil {
		return sdk.Plan{}, err
	}
	defer done()
	if !req.InitialSync {
		return sdk.Plan{}, nil
	}
	nss := req.Namespaces
	if len(nss) == 0 {
		if nss, err = listNamespaces(ctx, db); err != nil {
			return sdk.Plan{}, err
		}
	}
	var plan sdk.Plan
	seen := map[string]bool{}
	for _, ns := range nss {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		parts, err := partitionNS(ctx, db, ns, o.PartitionDocs)
		if err != nil {
			return sdk.Plan{}, err
		}
		plan.Partitions = append(plan.Partitions, parts...)
	}
	return plan, nil
}

// partitionNS cuts ns into key ranges of about per documents each.
func partitionNS(ctx context.Context, r pebble.Reader, ns string, per int) ([]sdk.Partition, error) {
	var n int
	if err := eachDoc(ctx, r, ns, nil, nil, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		return nil, err
	}
	k := 1
	if per > 0 && n > per {
		k = (n + per - 1) / per
	}
	// Cut before the documents at positions i*n/k, i = 1..k-1.
	cuts := make([][]byte, 0, k-1)
	positions := make([]int, 0, k+1)
	positions = append(positions, 0)
	if k > 1 {
		next, pos := 1, 0
		err := eachDoc(ctx, r, ns, nil, nil, func(idk, _ []byte) (bool, error) {
			if pos == next*n/k {
				cuts = append(cuts, bytes.Clone(idk))
				positions = append(positions, pos)
				next++
			}
			pos++
			return next < k, nil
		})
		if err != nil {
			return nil, err
		}
	}
	positions = append(positions, n)
	parts := make([]sdk.Partition, 0, len(cuts)+1)
	for i := 0; i <= len(cuts); i++ {
		var r keyRange
		if i > 0 {
			r.lo = cuts[i-1]
		}
		if i < len(cuts) {
			r.hi = cuts[i]
		}
		parts = append(parts, sdk.Partition{
			Namespace:      ns,
			Cursor:         r.encode(),
			EstimatedCount: uint64(positions[i+1] - positions[i]),
		})
	}
	return parts, nil
}

// ListData implements sdk.Source. The cursor is the last key returned, so it
// stays valid across restarts; documents inserted behind it after it was
// taken are not read.
func (c *Connector) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	db, o, done, err := c.acquire()
	if err != nil {
		return sdk.Page{}, err
	}
	defer done()
	r, err := decodeRange(p.Cursor)
	if err != nil {
		return sdk.Page{}, sdk.InvalidArgument("testsink: partition of %s: %v", p.Namespace, err)
	}
	after, err := decodeAfter(cursor)
	if err != nil {
		return sdk.Page{}, sdk.InvalidArgument("testsink: cursor of a partition of %s: %v", p.Namespace, err)
	}
	lower := r.lo
	if after != nil {
		// The smallest key after `after`.
		succ := append(bytes.Clone(after), 0)
		if lower == nil || bytes.Compare(succ, lower) > 0 {
			lower = succ
		}
	}
	var page sdk.Page
	var size int
	var last []byte
	more := false
	err = eachDoc(ctx, db, p.Namespace, lower, r.hi, func(idk, doc []byte) (bool, error) {
		if len(page.Docs) >= o.PageDocs || (len(page.Docs) > 0 && size+len(doc) > pageBytes) {
			more = true
			return false, nil
		}
		page.Docs = append(page.Docs, bytes.Clone(doc))
		size += len(doc)
		last = bytes.Clone(idk)
		return true, nil
	})
	if err != nil {
		return sdk.Page{}, err
	}
	if more {
		page.NextCursor = encodeAfter(last)
	}
	return page, nil
}

// GetByIDs implements sdk.IDGetter.
func (c *Connector) GetByIDs(ctx context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	db, _, done, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer done()
	for i, id := range ids {
		if err := validID(id); err != nil {
			return nil, sdk.InvalidArgument("testsink: GetByIDs %s: id %d: %v", ns, i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return getDocs(db, ns, ids)
}
