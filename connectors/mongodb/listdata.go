package mongodb

import (
	"context"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

const (
	// cacheEntries bounds the live server cursors kept between pages.
	cacheEntries = 256
	// cacheIdle closes a kept cursor nobody asked for in this long; servers
	// drop idle cursors after 10 minutes.
	cacheIdle = 5 * time.Minute
)

// ListData returns the next page of a partition, sorted by _id: at most
// PageDocs documents and PageBytes bytes (a larger document alone). The
// next cursor is the last _id returned plus the partition's upper bound,
// so a new process resumes with a keyset query; the live server cursor is
// kept between pages and used when the next call carries the cursor it
// returned, so a partition is normally read with a single query.
func (c *Connector) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Page{}, err
	}
	ns, r, hiRaw, err := decodePartition(p.Cursor)
	if err != nil {
		return sdk.Page{}, err
	}
	if ns != p.Namespace {
		return sdk.Page{}, sdk.InvalidArgument("mongodb: partition of namespace %q has the cursor of %q: pass the partition as planned", p.Namespace, ns)
	}
	coll, err := st.coll(ns)
	if err != nil {
		return sdk.Page{}, err
	}
	q := r
	if len(cursor) > 0 {
		last, err := decodePage(cursor, hiRaw)
		if err != nil {
			return sdk.Page{}, err
		}
		q = r.after(last)
	}
	key := string(p.Cursor) + "\x00" + string(cursor)
	lc := st.cache.take(key)
	if lc != nil {
		page, err := st.readPage(ctx, lc, string(p.Cursor), r.hi)
		if err == nil || !hasCode(err, codeCursorNotFound) {
			return page, c.classify(err, "mongodb: read %s", ns)
		}
		// The server dropped the cursor: reopen from the durable cursor.
	}
	lc, err = st.openPartition(ctx, coll, q)
	if err != nil {
		return sdk.Page{}, c.classify(err, "mongodb: read %s", ns)
	}
	page, err := st.readPage(ctx, lc, string(p.Cursor), r.hi)
	return page, c.classify(err, "mongodb: read %s", ns)
}

// liveCursor is an open server cursor over a partition and the document it
// read but did not return yet.
type liveCursor struct {
	cur     *mongo.Cursor
	pending bson.Raw
	key     string
	used    time.Time
}

func (st *state) openPartition(ctx context.Context, coll *mongo.Collection, r idRange) (*liveCursor, error) {
	fo := options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetBatchSize(int32(min(st.cc.opts.PageDocs, 1<<20)))
	if !st.server.ferret {
		fo.SetHint(bson.D{{Key: "_id", Value: 1}})
	}
	cur, err := coll.Find(ctx, r.filter(st.server.ferret), fo)
	if err != nil {
		return nil, err
	}
	return &liveCursor{cur: cur}, nil
}

// readPage reads one page from lc and keeps lc in the cache when the
// partition has more documents.
func (st *state) readPage(ctx context.Context, lc *liveCursor, partKey string, hi *bound) (sdk.Page, error) {
	o := st.cc.opts
	var docs []bson.Raw
	size := 0
	done := false
	take := func(d bson.Raw) bool {
		if len(docs) > 0 && size+len(d) > o.PageBytes {
			lc.pending = d
			return false
		}
		docs = append(docs, d)
		size += len(d)
		return len(docs) < o.PageDocs
	}
	more := true
	if lc.pending != nil {
		d := lc.pending
		lc.pending = nil
		more = take(d)
	}
	for more {
		if !lc.cur.Next(ctx) {
			if err := lc.cur.Err(); err != nil {
				_ = lc.cur.Close(context.WithoutCancel(ctx))
				return sdk.Page{}, err
			}
			done = true
			break
		}
		more = take(append(bson.Raw(nil), lc.cur.Current...))
	}
	if !done && lc.pending == nil && lc.cur.RemainingBatchLength() == 0 && lc.cur.ID() == 0 {
		done = true
	}
	if done {
		_ = lc.cur.Close(context.WithoutCancel(ctx))
		return sdk.Page{Docs: docs}, nil
	}
	last, err := docs[len(docs)-1].LookupErr("_id")
	if err != nil {
		_ = lc.cur.Close(context.WithoutCancel(ctx))
		return sdk.Page{}, sdk.Fatal(err)
	}
	next := encodePage(last, hi)
	st.cache.put(ctx, lc, partKey+"\x00"+string(next))
	return sdk.Page{Docs: docs, NextCursor: next}, nil
}

// cursorCache holds live cursors by (partition cursor, page cursor).
type cursorCache struct {
	mu      sync.Mutex
	entries map[string]*liveCursor
}

func newCursorCache() *cursorCache {
	return &cursorCache{entries: map[string]*liveCursor{}}
}

// take removes and returns the cursor stored under key, or nil.
func (c *cursorCache) take(key string) *liveCursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	lc := c.entries[key]
	if lc != nil {
		delete(c.entries, key)
		lc.key = key
		return lc
	}
	return nil
}

// put stores lc under key, closing expired entries and, when full, the
// least recently used one.
func (c *cursorCache) put(ctx context.Context, lc *liveCursor, key string) {
	now := time.Now()
	lc.key = key
	lc.used = now
	var drop []*liveCursor
	c.mu.Lock()
	var oldest *liveCursor
	for k, e := range c.entries {
		if now.Sub(e.used) > cacheIdle {
			delete(c.entries, k)
			drop = append(drop, e)
			continue
		}
		if oldest == nil || e.used.Before(oldest.used) {
			oldest = e
		}
	}
	if len(c.entries) >= cacheEntries && oldest != nil {
		delete(c.entries, oldest.key)
		drop = append(drop, oldest)
	}
	if prev := c.entries[key]; prev != nil {
		drop = append(drop, prev)
	}
	c.entries[key] = lc
	c.mu.Unlock()
	for _, e := range drop {
		_ = e.cur.Close(context.WithoutCancel(ctx))
	}
}

func (c *cursorCache) closeAll(ctx context.Context) {
	c.mu.Lock()
	entries := c.entries
	c.entries = map[string]*liveCursor{}
	c.mu.Unlock()
	for _, e := range entries {
		_ = e.cur.Close(ctx)
	}
}
