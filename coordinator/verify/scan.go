package verify

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// task is one partition of one side.
type task struct {
	s   side
	idx int
}

// scan reads every pending partition of both sides, Parallel at a time:
// A's pages are compared with B's documents fetched by id, B's pages only
// record which ids B's scan returned. Each page is checkpointed with its
// results in one atomic batch.
func (v *Verifier) scan(ctx context.Context) error {
	var tasks []task
	for _, s := range []side{sideA, sideB} {
		for i, p := range v.parts[sideIndex(s)] {
			if !p.Skipped && !p.Done {
				tasks = append(tasks, task{s, i})
			}
		}
	}
	return v.parallel(ctx, len(tasks), func(ctx context.Context, i int) error {
		return v.scanPartition(ctx, tasks[i].s, tasks[i].idx)
	})
}

// parallel runs fn for 0..n-1 on Parallel goroutines and returns the first
// error, after cancelling the others.
func (v *Verifier) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(v.o.Parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// docID returns the _id of a document read from side s, after checking
// that the document is valid BSON.
func docID(s side, ns string, doc bson.Raw) (bson.RawValue, error) {
	if err := bsoncore.Document(doc).Validate(); err != nil {
		return bson.RawValue{}, fmt.Errorf("%w: %s namespace %q returned invalid BSON: %v", ErrBadDocument, s, ns, err)
	}
	id, err := doc.LookupErr("_id")
	if err != nil {
		return bson.RawValue{}, fmt.Errorf("%w: %s namespace %q returned a document without _id", ErrBadDocument, s, ns)
	}
	return id, nil
}

// scanPartition reads one partition from its stored cursor to its end.
func (v *Verifier) scanPartition(ctx context.Context, s side, idx int) error {
	rec := &v.parts[sideIndex(s)][idx]
	pair := v.pairs[rec.Pair]
	src, _ := v.source(s)
	part := spi.Partition{Namespace: rec.Namespace, Cursor: rec.Def, EstimatedCount: rec.Estimated}
	dc := v.cmp.newDoc()
	for !rec.Done {
		t0 := v.o.now()
		var page spi.Page
		err := v.retry(ctx, "list data", func(ctx context.Context) (err error) {
			page, err = src.ListData(ctx, part, rec.Cursor)
			return err
		})
		if err != nil {
			return fmt.Errorf("read %s namespace %q (partition %d): %w", s, rec.Namespace, idx, err)
		}
		if len(page.NextCursor) > 0 && bytes.Equal(page.NextCursor, rec.Cursor) {
			return fmt.Errorf("%w: %s namespace %q (partition %d): ListData returned the cursor it was given, which would never end",
				ErrBadResponse, s, rec.Namespace, idx)
		}
		ids := make([]bson.RawValue, len(page.Docs))
		var bytes uint64
		for i, d := range page.Docs {
			if ids[i], err = docID(s, rec.Namespace, d); err != nil {
				return err
			}
			bytes += uint64(len(d))
		}
		entries := make([]checkpoint.VerifyEntry, 0, len(ids)+1)
		if s == sideA {
			if entries, err = v.compareWithB(ctx, dc, entries, rec.Pair, pair, page.Docs, ids); err != nil {
				return err
			}
		}
		next := *rec
		next.Seq++
		for i, id := range ids {
			entries = append(entries, checkpoint.VerifyEntry{Key: seenKey(rec.Pair, encodeID(id), s, idx, next.Seq, i)})
		}
		next.Cursor = page.NextCursor
		next.Done = len(page.NextCursor) == 0
		next.Docs += uint64(len(ids))
		next.Bytes += bytes
		next.BusyMS += v.o.now().Sub(t0).Milliseconds()
		entries = append(entries, entry(partKey(s, idx), next))
		if err := v.o.Store.PutVerifyBatch(v.runID, entries); err != nil {
			return err
		}
		*rec = next
		v.stats.page(rec.Pair, uint64(len(ids)), bytes, rec.Done)
	}
	return nil
}

// compareWithB fetches the page's ids from B, in batches bounded by
// BatchDocs and by BatchBytes of A's documents, and appends a record for
// every id that is missing in B or differs.
func (v *Verifier) compareWithB(ctx context.Context, dc *docComparer, entries []checkpoint.VerifyEntry,
	pi int, pair pairRec, docs []bson.Raw, ids []bson.RawValue) ([]checkpoint.VerifyEntry, error) {
	for lo := 0; lo < len(docs); {
		hi, size := lo, 0
		for hi < len(docs) && hi-lo < v.o.BatchDocs && (hi == lo || size+len(docs[hi]) <= v.o.BatchBytes) {
			size += len(docs[hi])
			hi++
		}
		got, err := v.fetch(ctx, sideB, pair.B, pair.BAbsent, ids[lo:hi])
		if err != nil {
			return nil, err
		}
		for j, b := range got {
			rec, err := v.classify(dc, docs[lo+j], b)
			if err != nil {
				return nil, fmt.Errorf("B namespace %q: %w", pair.B, err)
			}
			if rec != nil {
				entries = append(entries, entry(diffKey(pi, encodeID(ids[lo+j])), rec))
			}
		}
		lo = hi
	}
	return entries, nil
}

// classify compares A's and B's documents of one id (nil where missing)
// and returns the mismatch, or nil when they are equal or both missing.
func (v *Verifier) classify(dc *docComparer, a, b bson.Raw) (*diffRec, error) {
	if len(a) == 0 && len(b) == 0 {
		return nil, nil
	}
	if len(a) > 0 && len(b) > 0 {
		eq, err := dc.equal(a, b)
		if err != nil {
			return nil, err
		}
		if eq {
			return nil, nil
		}
	}
	rec := &diffRec{}
	var err error
	if rec.HashA, err = dc.hash(a); err != nil {
		return nil, err
	}
	if rec.HashB, err = dc.hash(b); err != nil {
		return nil, err
	}
	switch {
	case len(b) == 0:
		rec.Kind = KindMissing
	case len(a) == 0:
		rec.Kind = KindExtra
	default:
		rec.Kind = KindDifferent
		rec.Fields, rec.Truncated = v.cmp.diff(a, b)
	}
	return rec, nil
}
