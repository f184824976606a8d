package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/sdk"
)

// splitLargeEvents reports whether the server has
// $changeStreamSplitLargeEvent (7.0, and 6.0.9 onwards).
func (s serverInfo) splitLargeEvents() bool {
	return s.atLeast(7, 0) || (s.atLeast(6, 0, 9) && !s.atLeast(6, 1))
}

// changePipeline returns the change stream pipeline for the namespaces of
// f: a $match pushed to the server (events of the namespaces, renames onto
// them, drops of their databases, invalidations), then the splitting of
// events over 16 MiB where the server can.
func (st *state) changePipeline(f *nsFilter) mongo.Pipeline {
	var or bson.A
	if f.all {
		or = bson.A{bson.D{{Key: "ns.db", Value: bson.D{{Key: "$nin", Value: bson.A{"admin", "local", "config"}}}}}}
	} else {
		dbs := make([]string, 0, len(f.dbs))
		for db := range f.dbs {
			dbs = append(dbs, db)
		}
		sort.Strings(dbs)
		for _, db := range dbs {
			or = append(or,
				bson.D{{Key: "ns.db", Value: db}, {Key: "ns.coll", Value: bson.D{{Key: "$in", Value: f.dbs[db]}}}},
				bson.D{{Key: "to.db", Value: db}, {Key: "to.coll", Value: bson.D{{Key: "$in", Value: f.dbs[db]}}}},
			)
		}
		or = append(or, bson.D{{Key: "operationType", Value: "dropDatabase"}, {Key: "ns.db", Value: bson.D{{Key: "$in", Value: dbs}}}})
	}
	or = append(or, bson.D{{Key: "operationType", Value: "invalidate"}})
	p := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "$or", Value: or}}}}}
	if st.server.splitLargeEvents() {
		p = append(p, bson.D{{Key: "$changeStreamSplitLargeEvent", Value: bson.D{}}})
	}
	return p
}

// watch opens the change stream of f: on the database when every
// namespace is in one (which needs privileges on that database only), else
// on the whole deployment.
func (st *state) watch(ctx context.Context, f *nsFilter, opts *options.ChangeStreamOptionsBuilder) (*mongo.ChangeStream, error) {
	if !f.all && len(f.dbs) == 1 {
		for db := range f.dbs {
			return st.client.Database(db).Watch(ctx, st.changePipeline(f), opts)
		}
	}
	return st.client.Watch(ctx, st.changePipeline(f), opts)
}

// captureChangeStream opens a change stream and returns its post-batch
// resume token (or, on servers without one, the operation time) as an
// update cursor.
func (st *state) captureChangeStream(ctx context.Context, f *nsFilter) ([]byte, error) {
	cs, err := st.watch(ctx, f, options.ChangeStream().SetFullDocument(options.UpdateLookup))
	if err != nil {
		return nil, err
	}
	defer cs.Close(context.WithoutCancel(ctx))
	if tok := cs.ResumeToken(); tok != nil {
		return updatesCursor{mode: CDCChangeStream, token: append(bson.Raw(nil), tok...)}.encode(), nil
	}
	res, err := st.client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Raw()
	if err != nil {
		return nil, err
	}
	t, i, ok := res.Lookup("operationTime").TimestampOK()
	if !ok {
		return nil, errors.New("the server returned neither a resume token nor an operation time")
	}
	return updatesCursor{mode: CDCChangeStream, at: bson.Timestamp{T: t, I: i}}.encode(), nil
}

// streamChanges follows a change stream from u.
func (st *state) streamChanges(ctx context.Context, u updatesCursor, f *nsFilter, b *batcher) error {
	opts := options.ChangeStream().
		SetFullDocument(options.UpdateLookup).
		SetMaxAwaitTime(awaitTime).
		SetBatchSize(maxBatchUpdates)
	switch {
	case u.token != nil && st.server.atLeast(4, 2):
		opts.SetStartAfter(u.token)
	case u.token != nil:
		opts.SetResumeAfter(u.token)
	default:
		opts.SetStartAtOperationTime(&u.at)
	}
	cs, err := st.watch(ctx, f, opts)
	if err != nil {
		return changeStreamError(err)
	}
	defer cs.Close(context.WithoutCancel(ctx))
	var frags fragments
	inBatch := 0 // events of the current server batch
	for {
		if cs.TryNext(ctx) {
			inBatch++
			ev, complete, err := frags.add(append(bson.Raw(nil), cs.Current...))
			if err != nil {
				return sdk.Fatal(err)
			}
			if !complete {
				continue
			}
			ch, err := convertEvent(ev, f)
			if err != nil {
				return err
			}
			if ch.update != nil {
				if err := b.add(ch.ns, *ch.update, ch.time); err != nil {
					return err
				}
			}
			if err := b.advance(tokenCursor(cs.ResumeToken())); err != nil {
				return err
			}
			if cs.RemainingBatchLength() == 0 {
				// A batch smaller than asked for: the server had no more.
				var err error
				if inBatch < maxBatchUpdates {
					err = b.caughtUp(time.Now())
				} else {
					err = b.flush()
				}
				if err != nil {
					return err
				}
				inBatch = 0
			}
			continue
		}
		inBatch = 0
		if err := cs.Err(); err != nil {
			return changeStreamError(err)
		}
		if cs.ID() == 0 {
			return sdk.Retryable(errors.New("the server closed the change stream"))
		}
		if frags.pending() {
			// The resume token after part of an event would skip the rest.
			continue
		}
		if tok := cs.ResumeToken(); tok != nil {
			if err := b.advance(tokenCursor(tok)); err != nil {
				return err
			}
		}
		if err := b.caughtUp(time.Now()); err != nil {
			return err
		}
	}
}

func tokenCursor(tok bson.Raw) []byte {
	return updatesCursor{mode: CDCChangeStream, token: append(bson.Raw(nil), tok...)}.encode()
}

func changeStreamError(err error) error {
	if hasCode(err, codeChangeStreamHistory, codeChangeStreamFatal, codeCappedPositionLost) {
		return historyLost(fmt.Sprintf("the change stream cannot resume from the saved position (%v)", err))
	}
	return err
}

// change is one converted change event.
type change struct {
	ns     string
	update *sdk.Update // nil for events that change nothing here
	time   time.Time
}

// convertEvent turns a change event into an update. Inserts and replaces
// carry fullDocument; updates carry the post-image looked up by the server
// (an update of a document deleted since has none and is skipped: its
// delete follows); deletes carry documentKey. Drops, renames, dropDatabase
// and invalidate stop the stream with ErrNamespaceChanged. Other events
// (DDL shown by newer servers) are skipped.
func convertEvent(ev bson.Raw, f *nsFilter) (change, error) {
	op, _ := ev.Lookup("operationType").StringValueOK()
	nsDoc, _ := ev.Lookup("ns").DocumentOK()
	db, _ := nsDoc.Lookup("db").StringValueOK()
	coll, _ := nsDoc.Lookup("coll").StringValueOK()
	ns := db + "." + coll
	var ch change
	ch.ns = ns
	t, i, _ := ev.Lookup("clusterTime").TimestampOK()
	ch.time = eventTime(ev.Lookup("wallTime"), bson.Timestamp{T: t, I: i})
	switch op {
	case "drop":
		if f.has(ns) {
			return ch, namespaceChanged("collection %s was dropped", ns)
		}
		return ch, nil
	case "rename":
		to, _ := ev.Lookup("to").DocumentOK()
		toDB, _ := to.Lookup("db").StringValueOK()
		toColl, _ := to.Lookup("coll").StringValueOK()
		if f.has(ns) || f.has(toDB+"."+toColl) {
			return ch, namespaceChanged("collection %s was renamed to %s.%s", ns, toDB, toColl)
		}
		return ch, nil
	case "dropDatabase":
		if f.hasDB(db) {
			return ch, namespaceChanged("database %s was dropped", db)
		}
		return ch, nil
	case "invalidate":
		return ch, namespaceChanged("the change stream was invalidated")
	case "insert", "update", "replace", "delete":
	default:
		return ch, nil
	}
	if !f.has(ns) {
		return ch, nil
	}
	key, _ := ev.Lookup("documentKey").DocumentOK()
	id, err := key.LookupErr("_id")
	if err != nil {
		return ch, sdk.Fatal(fmt.Errorf("mongodb: %s event on %s without documentKey._id", op, ns))
	}
	u := sdk.Update{ID: copyValue(id)}
	if op == "delete" {
		u.Type = sdk.UpdateDelete
		ch.update = &u
		return ch, nil
	}
	doc, ok := ev.Lookup("fullDocument").DocumentOK()
	if !ok {
		if op == "update" {
			return ch, nil
		}
		return ch, sdk.Fatal(fmt.Errorf("mongodb: %s event on %s of _id %s without fullDocument", op, ns, id))
	}
	u.Type = sdk.UpdateReplace
	if op == "insert" {
		u.Type = sdk.UpdateInsert
	}
	u.Doc = doc
	ch.update = &u
	return ch, nil
}

// fragments reassembles events split by $changeStreamSplitLargeEvent.
type fragments struct {
	parts []bson.Raw
}

func (fr *fragments) pending() bool { return len(fr.parts) > 0 }

// add takes the next event or fragment and returns the whole event once
// its last fragment arrived: the fields of every fragment in order, with
// the _id (resume token) of the last.
func (fr *fragments) add(ev bson.Raw) (bson.Raw, bool, error) {
	se, ok := ev.Lookup("splitEvent").DocumentOK()
	if !ok {
		if fr.pending() {
			return nil, false, fmt.Errorf("mongodb: change event fragment %d was followed by an unsplit event", len(fr.parts))
		}
		return ev, true, nil
	}
	n, ok1 := se.Lookup("fragment").AsInt64OK()
	of, ok2 := se.Lookup("of").AsInt64OK()
	if !ok1 || !ok2 || n != int64(len(fr.parts))+1 || n > of {
		return nil, false, fmt.Errorf("mongodb: change event fragment %v out of order after %d fragments", se, len(fr.parts))
	}
	fr.parts = append(fr.parts, ev)
	if n < of {
		return nil, false, nil
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = appendRaw(out, "_id", ev.Lookup("_id"))
	for _, p := range fr.parts {
		elems, err := p.Elements()
		if err != nil {
			return nil, false, err
		}
		for _, e := range elems {
			if k := e.Key(); k != "_id" && k != "splitEvent" {
				out = append(out, e...)
			}
		}
	}
	fr.parts = nil
	out, err := bsoncore.AppendDocumentEnd(out, idx)
	return out, err == nil, err
}
