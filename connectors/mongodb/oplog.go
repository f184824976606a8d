package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

const (
	// oplogBatch is the getMore batch size of the oplog tail.
	oplogBatch = 1000
	// oplogRetry is the wait before reopening a tail that found nothing.
	oplogRetry = time.Second
)

func (st *state) oplog() *mongo.Collection {
	return st.client.Database("local").Collection("oplog.rs")
}

// newestOplogTS returns the timestamp of the newest oplog entry, or zero
// for an empty oplog.
func (st *state) newestOplogTS(ctx context.Context) (bson.Timestamp, error) {
	return st.edgeOplogTS(ctx, -1)
}

func (st *state) edgeOplogTS(ctx context.Context, dir int) (bson.Timestamp, error) {
	raw, err := st.oplog().FindOne(ctx, bson.D{}, options.FindOne().
		SetSort(bson.D{{Key: "$natural", Value: dir}}).
		SetProjection(bson.D{{Key: "ts", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.Timestamp{}, nil
	}
	if err != nil {
		return bson.Timestamp{}, err
	}
	t, i, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return bson.Timestamp{}, fmt.Errorf("oplog entry without ts: %v", raw)
	}
	return bson.Timestamp{T: t, I: i}, nil
}

// oplogFilter selects the entry at ts (to check that history since the
// cursor is still there) and every later entry that may concern f.
func oplogFilter(ts bson.Timestamp, f *nsFilter) bson.D {
	filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: ts}}}}
	if f.all {
		return filter
	}
	nss := bson.A{"admin.$cmd"}
	for _, ns := range f.list {
		nss = append(nss, ns)
	}
	for db := range f.dbs {
		nss = append(nss, db+".$cmd")
	}
	return append(filter, bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "ts", Value: ts}},
		bson.D{{Key: "ns", Value: bson.D{{Key: "$in", Value: nss}}}},
		bson.D{{Key: "op", Value: "n"}},
	}})
}

// streamOplog tails local.oplog.rs after u.ts. The tail is opened on
// ts >= u.ts with a batch of one, so that its first entry is the one at
// the cursor (servers such as FerretDB close a tailable cursor whose first
// batch is not full); that entry is skipped, and its absence means the
// history since the cursor is gone.
func (st *state) streamOplog(ctx context.Context, u updatesCursor, f *nsFilter, b *batcher) error {
	last := u.ts
	for {
		if !last.IsZero() {
			oldest, err := st.edgeOplogTS(ctx, 1)
			if err != nil {
				return err
			}
			if !oldest.IsZero() && oldest.After(last) {
				return historyLost(fmt.Sprintf("oplog history lost: the oldest oplog entry (%d.%d) is newer than the saved position (%d.%d)", oldest.T, oldest.I, last.T, last.I))
			}
		}
		cur, err := st.oplog().Find(ctx, oplogFilter(last, f), options.Find().
			SetCursorType(options.TailableAwait).
			SetBatchSize(1).
			SetMaxAwaitTime(st.oplogAwait()))
		if err != nil {
			return oplogError(err)
		}
		next, err := st.tail(ctx, cur, last, f, b)
		_ = cur.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		last = next
		// The tail ended (nothing at or after the cursor yet): wait, then
		// reopen.
		if err := b.caughtUp(time.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(oplogRetry):
		}
	}
}

func (st *state) oplogAwait() time.Duration {
	if st.server.ferret {
		return ferretAwaitTime
	}
	return awaitTime
}

// tail reads cur until the server closes it, returning the timestamp of
// the last entry handled.
func (st *state) tail(ctx context.Context, cur *mongo.Cursor, last bson.Timestamp, f *nsFilter, b *batcher) (bson.Timestamp, error) {
	first := !last.IsZero()
	// hw is the newest timestamp handled: the cursor. Entries may arrive
	// out of timestamp order on servers that commit them out of order.
	hw := last
	var pending []oplogEntry
	inBatch := 0 // entries of the current server batch
	for {
		if cur.TryNext(ctx) {
			inBatch++
			e, err := parseOplogEntry(cur.Current)
			if err != nil {
				return last, err
			}
			if first {
				first = false
				cur.SetBatchSize(oplogBatch)
				if e.ts.After(last) {
					return last, historyLost(fmt.Sprintf("oplog history lost: the entry at the saved position (%d.%d) is gone", last.T, last.I))
				}
				if cur.RemainingBatchLength() == 0 {
					inBatch = 0
					// Nothing newer than the cursor yet: the stream is idle.
					if newest, err := st.newestOplogTS(ctx); err == nil && !newest.After(last) {
						if err := b.caughtUp(time.Now()); err != nil {
							return last, err
						}
					}
				}
				continue
			}
			if e.ts.After(last) {
				last = e.ts
			}
			pending = append(pending, e)
			if cur.RemainingBatchLength() > 0 && len(pending) < oplogBatch {
				continue
			}
			if err := st.emitOplog(ctx, pending, f, b, &hw); err != nil {
				return last, err
			}
			pending = pending[:0]
			if cur.RemainingBatchLength() == 0 {
				// A batch smaller than asked for: the server had no more.
				var err error
				if inBatch < oplogBatch {
					err = b.caughtUp(time.Now())
				} else {
					err = b.flush()
				}
				if err != nil {
					return last, err
				}
				inBatch = 0
			}
			continue
		}
		inBatch = 0
		if err := cur.Err(); err != nil {
			return last, oplogError(err)
		}
		if err := st.emitOplog(ctx, pending, f, b, &hw); err != nil {
			return last, err
		}
		pending = pending[:0]
		if cur.ID() == 0 {
			return last, nil
		}
		if err := b.caughtUp(time.Now()); err != nil {
			return last, err
		}
	}
}

func oplogError(err error) error {
	if hasCode(err, codeCappedPositionLost) {
		return historyLost(fmt.Sprintf("oplog history lost while reading it (%v)", err))
	}
	return err
}

// oplogEntry is one parsed oplog entry.
type oplogEntry struct {
	ts   bson.Timestamp
	wall bson.RawValue
	op   string
	ns   string
	o    bson.Raw
	o2   bson.Raw
}

func parseOplogEntry(raw bson.Raw) (oplogEntry, error) {
	raw = append(bson.Raw(nil), raw...)
	var e oplogEntry
	t, i, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return e, sdk.Fatal(fmt.Errorf("mongodb: oplog entry without ts"))
	}
	e.ts = bson.Timestamp{T: t, I: i}
	e.wall = raw.Lookup("wall")
	e.op, _ = raw.Lookup("op").StringValueOK()
	e.ns, _ = raw.Lookup("ns").StringValueOK()
	e.o, _ = raw.Lookup("o").DocumentOK()
	e.o2, _ = raw.Lookup("o2").DocumentOK()
	return e, nil
}

// oplogChange is an update decoded from an oplog entry; fetch is set for
// updates whose document must be read from the collection.
type oplogChange struct {
	ns     string
	update sdk.Update
	fetch  bool
	ts     bson.Timestamp
	time   time.Time
}

// emitOplog converts entries to updates, reads the current documents of
// updated ids (one $in query per namespace), and adds them to b.
func (st *state) emitOplog(ctx context.Context, entries []oplogEntry, f *nsFilter, b *batcher, hw *bson.Timestamp) error {
	if len(entries) == 0 {
		return nil
	}
	var changes []oplogChange
	for _, e := range entries {
		var err error
		changes, err = st.convertOplog(changes, e, e, f)
		if err != nil {
			return err
		}
		// Entries that produce nothing still move the cursor.
		changes = append(changes, oplogChange{ts: e.ts})
	}
	fetch := map[string][]bson.RawValue{}
	for _, ch := range changes {
		if ch.fetch {
			fetch[ch.ns] = append(fetch[ch.ns], ch.update.ID)
		}
	}
	docs := map[string]map[string]bson.Raw{}
	for ns, ids := range fetch {
		coll, err := st.coll(ns)
		if err != nil {
			return err
		}
		docs[ns] = map[string]bson.Raw{}
		for start := 0; start < len(ids); start += getByIDsChunk {
			found, err := st.fetchByIDs(ctx, coll, ids[start:min(start+getByIDsChunk, len(ids))])
			if err != nil {
				return err
			}
			for k, d := range found {
				docs[ns][k] = d
			}
		}
	}
	for _, ch := range changes {
		if ch.ns == "" {
			if ch.ts.After(*hw) {
				*hw = ch.ts
			}
			if err := b.advance(updatesCursor{mode: CDCOplog, ts: *hw}.encode()); err != nil {
				return err
			}
			continue
		}
		u := ch.update
		if ch.fetch {
			d := docs[ch.ns][matchKey(u.ID)]
			if d == nil {
				continue // deleted since; its delete follows
			}
			u.Doc = d
		}
		if err := b.add(ch.ns, u, ch.time); err != nil {
			return err
		}
	}
	return nil
}

// convertOplog appends the changes of entry e (inner entries of applyOps
// carry the ts and wall time of their outer entry).
func (st *state) convertOplog(out []oplogChange, e, outer oplogEntry, f *nsFilter) ([]oplogChange, error) {
	at := eventTime(outer.wall, outer.ts)
	switch e.op {
	case "i", "u", "d":
		if !f.has(e.ns) {
			return out, nil
		}
	case "c":
		return st.convertCommand(out, e, outer, f)
	default: // n (no-op) and anything else
		return out, nil
	}
	ch := oplogChange{ns: e.ns, ts: outer.ts, time: at}
	switch e.op {
	case "i":
		id, err := e.o.LookupErr("_id")
		if err != nil {
			return out, sdk.Fatal(fmt.Errorf("mongodb: oplog insert into %s without _id", e.ns))
		}
		ch.update = sdk.Update{ID: id, Type: sdk.UpdateInsert, Doc: e.o}
	case "d":
		id, err := e.o.LookupErr("_id")
		if err != nil {
			return out, sdk.Fatal(fmt.Errorf("mongodb: oplog delete from %s without _id", e.ns))
		}
		ch.update = sdk.Update{ID: id, Type: sdk.UpdateDelete}
	case "u":
		id, err := e.o2.LookupErr("_id")
		if err != nil {
			return out, sdk.Fatal(fmt.Errorf("mongodb: oplog update of %s without o2._id", e.ns))
		}
		ch.update = sdk.Update{ID: id, Type: sdk.UpdateReplace}
		if doc, ok := st.wholeDocument(e.o, id); ok {
			ch.update.Doc = doc
		} else {
			ch.fetch = true
		}
	}
	return append(out, ch), nil
}

// wholeDocument returns the document an update entry states in full: a
// replacement (no operators), or FerretDB's {$v: 1, $set: <whole document
// with _id>}. Other updates ($v:1 modifiers, $v:2 diffs) need a read.
func (st *state) wholeDocument(o bson.Raw, id bson.RawValue) (bson.Raw, bool) {
	elems, err := o.Elements()
	if err != nil || len(elems) == 0 {
		return nil, false
	}
	operators := false
	for _, e := range elems {
		if k := e.Key(); len(k) > 0 && k[0] == '$' {
			operators = true
		}
	}
	if !operators {
		return withID(o, id), true
	}
	if !st.server.ferret || st.fetchOplogUpdates || len(elems) != 2 {
		return nil, false
	}
	v, ok := o.Lookup("$v").AsInt64OK()
	set, ok2 := o.Lookup("$set").DocumentOK()
	if !ok || !ok2 || v != 1 {
		return nil, false
	}
	if sid, err := set.LookupErr("_id"); err != nil || !sid.Equal(id) {
		return nil, false
	}
	return set, true
}

// convertCommand handles a command entry: drops and renames of streamed
// namespaces stop the stream; applyOps entries are unpacked; other
// commands (index builds, collection creation, ...) change no document.
func (st *state) convertCommand(out []oplogChange, e, outer oplogEntry, f *nsFilter) ([]oplogChange, error) {
	db, _, _ := splitNamespace(e.ns)
	if db == "" {
		db = e.ns[:max(0, len(e.ns)-len(".$cmd"))]
	}
	elems, err := e.o.Elements()
	if err != nil || len(elems) == 0 {
		return out, nil
	}
	cmd := elems[0]
	switch cmd.Key() {
	case "drop":
		coll, _ := cmd.Value().StringValueOK()
		if f.has(db + "." + coll) {
			return out, namespaceChanged("collection %s.%s was dropped", db, coll)
		}
	case "dropDatabase":
		if f.hasDB(db) {
			return out, namespaceChanged("database %s was dropped", db)
		}
	case "renameCollection":
		from, _ := cmd.Value().StringValueOK()
		to, _ := e.o.Lookup("to").StringValueOK()
		if f.has(from) || f.has(to) {
			return out, namespaceChanged("collection %s was renamed to %s", from, to)
		}
	case "applyOps":
		if _, ok := e.o.Lookup("partialTxn").BooleanOK(); ok {
			return out, sdk.Fatal(fmt.Errorf("mongodb: the oplog holds a multi-entry transaction, which oplog tailing does not support: use cdc=changestream"))
		}
		if _, ok := e.o.Lookup("prepare").BooleanOK(); ok {
			return out, sdk.Fatal(fmt.Errorf("mongodb: the oplog holds a prepared transaction, which oplog tailing does not support: use cdc=changestream"))
		}
		ops, ok := cmd.Value().ArrayOK()
		if !ok {
			return out, nil
		}
		vals, err := ops.Values()
		if err != nil {
			return out, err
		}
		for _, v := range vals {
			inner, ok := v.DocumentOK()
			if !ok {
				continue
			}
			ie, _ := parseInner(inner)
			out, err = st.convertOplog(out, ie, outer, f)
			if err != nil {
				return out, err
			}
		}
	case "commitTransaction":
		return out, sdk.Fatal(fmt.Errorf("mongodb: the oplog holds a prepared transaction, which oplog tailing does not support: use cdc=changestream"))
	}
	return out, nil
}

func parseInner(raw bson.Raw) (oplogEntry, error) {
	var e oplogEntry
	e.op, _ = raw.Lookup("op").StringValueOK()
	e.ns, _ = raw.Lookup("ns").StringValueOK()
	e.o, _ = raw.Lookup("o").DocumentOK()
	e.o2, _ = raw.Lookup("o2").DocumentOK()
	return e, nil
}
