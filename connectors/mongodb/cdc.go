package mongodb

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

const (
	// heartbeatInterval is how often an idle stream sends a heartbeat; the
	// protocol asks for at least one every 5 seconds.
	heartbeatInterval = 2 * time.Second
	// awaitTime is how long one getMore of a stream waits for changes.
	awaitTime = time.Second
	// ferretAwaitTime is awaitTime against FerretDB, whose tailable cursors
	// rescan the oplog while they wait and were seen to skip entries under
	// concurrent writes when the wait was short.
	ferretAwaitTime = 10 * time.Second
	// maxBatchUpdates and maxBatchBytes bound one UpdateBatch.
	maxBatchUpdates = 1000
	maxBatchBytes   = 8 << 20
)

// AckUpdates does nothing: change streams and the oplog need no release.
func (c *Connector) AckUpdates(ctx context.Context, cursor []byte) error {
	if _, err := c.state(); err != nil {
		return err
	}
	if len(cursor) == 0 {
		return nil
	}
	_, err := decodeUpdates(cursor)
	return err
}

// StreamUpdates streams the changes of the namespaces (every collection
// outside admin, local and config when none) after the cursor, in the mode
// the cursor was captured in; an empty cursor starts at the current
// position.
func (c *Connector) StreamUpdates(ctx context.Context, req sdk.StreamRequest, send func(sdk.UpdateBatch) error) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	filter, err := newNSFilter(req.Namespaces)
	if err != nil {
		return err
	}
	var u updatesCursor
	if len(req.Cursor) == 0 {
		mode, err := st.cdcMode()
		if err != nil {
			return err
		}
		cur, err := st.captureUpdates(ctx, mode, req.Namespaces)
		if err != nil {
			return c.classify(err, "mongodb: capture the %s position", mode)
		}
		u, _ = decodeUpdates(cur)
	} else if u, err = decodeUpdates(req.Cursor); err != nil {
		return err
	}
	b := newBatcher(send, u.encode())
	// The first message states the starting position at once, with its
	// time, so that lag is known before the first change or heartbeat.
	if err := b.position(u.time()); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	wait := b.runHeartbeats(sctx, cancel)
	switch u.mode {
	case CDCChangeStream:
		err = st.streamChanges(sctx, u, filter, b)
	default:
		err = st.streamOplog(sctx, u, filter, b)
	}
	cancel()
	if hbErr := wait(); hbErr != nil {
		return hbErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.classify(err, "mongodb: %s", u.mode)
}

// captureUpdates returns the current position of the change stream or the
// oplog, to stream from later.
func (st *state) captureUpdates(ctx context.Context, mode CDCMode, nss []string) ([]byte, error) {
	if mode == CDCChangeStream {
		filter, err := newNSFilter(nss)
		if err != nil {
			return nil, err
		}
		return st.captureChangeStream(ctx, filter)
	}
	ts, err := st.newestOplogTS(ctx)
	if err != nil {
		return nil, err
	}
	return updatesCursor{mode: CDCOplog, ts: ts}.encode(), nil
}

// nsFilter selects the streamed namespaces.
type nsFilter struct {
	all  bool
	nss  map[string]bool
	dbs  map[string][]string // db -> sorted collections
	list []string
}

func newNSFilter(nss []string) (*nsFilter, error) {
	f := &nsFilter{nss: map[string]bool{}, dbs: map[string][]string{}}
	if len(nss) == 0 {
		f.all = true
		return f, nil
	}
	for _, ns := range nss {
		db, coll, ok := splitNamespace(ns)
		if !ok {
			return nil, sdk.InvalidArgument("mongodb: namespace %q is not of the form database.collection", ns)
		}
		if !f.nss[ns] {
			f.nss[ns] = true
			f.dbs[db] = append(f.dbs[db], coll)
			f.list = append(f.list, ns)
		}
	}
	for _, colls := range f.dbs {
		sort.Strings(colls)
	}
	sort.Strings(f.list)
	return f, nil
}

// has reports whether changes of ns are streamed.
func (f *nsFilter) has(ns string) bool {
	if f.all {
		db, _, _ := splitNamespace(ns)
		return !systemDatabases[db]
	}
	return f.nss[ns]
}

// hasDB reports whether a streamed namespace is in db.
func (f *nsFilter) hasDB(db string) bool {
	if f.all {
		return !systemDatabases[db]
	}
	return len(f.dbs[db]) > 0
}

// batcher groups consecutive updates of one namespace into batches and
// sends heartbeats. Its methods are safe for concurrent use: heartbeats
// come from a ticker while the stream waits on the server.
type batcher struct {
	mu      sync.Mutex
	send    func(sdk.UpdateBatch) error
	ns      string
	updates []sdk.Update
	bytes   int
	srcTime time.Time
	// cursor resumes after everything added so far.
	cursor []byte
	// last is when a batch was last sent; idle is set while the stream has
	// caught up with the server.
	last time.Time
	idle bool
}

func newBatcher(send func(sdk.UpdateBatch) error, start []byte) *batcher {
	return &batcher{send: send, cursor: start, last: time.Now()}
}

// add appends an update of ns at source time t.
func (b *batcher) add(ns string, u sdk.Update, t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.idle = false
	if len(b.updates) > 0 && ns != b.ns {
		if err := b.flushLocked(); err != nil {
			return err
		}
	}
	b.ns = ns
	b.updates = append(b.updates, u)
	b.bytes += len(u.Doc) + len(u.ID.Value)
	b.srcTime = t
	return nil
}

// advance records that everything up to cursor was added; it sends the
// batch when full.
func (b *batcher) advance(cursor []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cursor = cursor
	if len(b.updates) >= maxBatchUpdates || b.bytes >= maxBatchBytes {
		return b.flushLocked()
	}
	return nil
}

// flush sends the pending updates, if any: the server has no more for
// now.
func (b *batcher) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *batcher) flushLocked() error {
	if len(b.updates) == 0 {
		return nil
	}
	batch := sdk.UpdateBatch{Namespace: b.ns, Updates: b.updates, NextCursor: b.cursor, SourceTime: b.srcTime}
	b.updates, b.bytes = nil, 0
	b.last = time.Now()
	return b.send(batch)
}

// caughtUp flushes, marks the stream idle, and sends a heartbeat when one
// is due.
func (b *batcher) caughtUp(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushLocked(); err != nil {
		return err
	}
	b.idle = true
	return b.heartbeatLocked(now)
}

// position sends the current cursor with source time t (now when zero).
func (b *batcher) position(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = time.Now()
	if t.IsZero() {
		t = b.last
	}
	return b.send(sdk.UpdateBatch{NextCursor: b.cursor, SourceTime: t})
}

// tick sends a heartbeat when the stream is idle and one is due.
func (b *batcher) tick(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.idle {
		return nil
	}
	return b.heartbeatLocked(now)
}

func (b *batcher) heartbeatLocked(now time.Time) error {
	if now.Sub(b.last) < heartbeatInterval {
		return nil
	}
	b.last = now
	return b.send(sdk.UpdateBatch{NextCursor: b.cursor, SourceTime: now})
}

// runHeartbeats calls tick until ctx ends; a failed send cancels the
// stream through cancel and is returned by the returned function.
func (b *batcher) runHeartbeats(ctx context.Context, cancel context.CancelFunc) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(heartbeatInterval / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case now := <-t.C:
				if err := b.tick(now); err != nil {
					cancel()
					done <- err
					return
				}
			}
		}
	}()
	return func() error { return <-done }
}

// eventTime returns the time of a change: wall time when the server gives
// it, else the seconds of its timestamp.
func eventTime(wall bson.RawValue, ts bson.Timestamp) time.Time {
	if dt, ok := wall.DateTimeOK(); ok {
		return time.UnixMilli(dt)
	}
	return time.Unix(int64(ts.T), 0)
}

// historyLost returns the failed precondition for lost change history.
func historyLost(what string) error {
	return sdk.FailedPrecondition(fmt.Errorf("%w: %s; the copy can no longer be brought up to date: resync with --reset", ErrHistoryLost, what))
}

// namespaceChanged returns the fatal error for a dropped or renamed
// namespace.
func namespaceChanged(format string, args ...any) error {
	return sdk.Fatal(fmt.Errorf("%w: %s; the target no longer mirrors the source: check the source, then resync with --reset", ErrNamespaceChanged, fmt.Sprintf(format, args...)))
}
