package verify

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
)

// reconcile merges, for every namespace pair, the ids that A's scan and
// B's scan returned (both stored in key order under seenPrefix), Parallel
// pairs at a time. See the package documentation for what it proves.
func (v *Verifier) reconcile(ctx context.Context) error {
	var todo []int
	for i, p := range v.pairs {
		if !p.Reconciled {
			todo = append(todo, i)
		}
	}
	return v.parallel(ctx, len(todo), func(ctx context.Context, i int) error {
		return v.reconcilePair(ctx, todo[i])
	})
}

// group is the returns of one id by the two scans.
type group struct {
	id   string
	a, b int
}

// reconciler holds the state of one pair's reconciliation. Records are
// keyed by id, so redoing an interrupted reconciliation rewrites the same
// records.
type reconciler struct {
	v       *Verifier
	pi      int
	pair    *pairRec
	sampled bool
	dc      *docComparer

	distinctA, distinctB uint64
	bOnly                []string // ids only B's scan returned, waiting for a lookup
	entries              []checkpoint.VerifyEntry
}

func (v *Verifier) reconcilePair(ctx context.Context, pi int) error {
	t0 := v.o.now()
	p := v.pairs[pi]
	r := &reconciler{v: v, pi: pi, pair: &p, sampled: v.o.SamplePercent > 0, dc: v.cmp.newDoc()}
	var cur group
	err := v.o.Store.ScanVerify(v.runID, seenPrefix(pi), func(key string, _ []byte) error {
		id, s, err := parseSeenKey(key, pi)
		if err != nil {
			return err
		}
		if id != cur.id {
			if err := r.close(ctx, cur); err != nil {
				return err
			}
			cur = group{id: id}
		}
		switch s {
		case sideA:
			cur.a++
		case sideB:
			cur.b++
		default:
			return fmt.Errorf("%w: key %q", ErrCorrupt, key)
		}
		return ctx.Err()
	})
	if err == nil {
		err = r.close(ctx, cur)
	}
	if err == nil {
		err = r.lookupBOnly(ctx)
	}
	if err == nil {
		err = r.flush(0)
	}
	if err != nil {
		return fmt.Errorf("reconcile namespace %q: %w", p.A, err)
	}
	if err := v.countPair(ctx, &p, true); err != nil {
		return err
	}
	p.DistinctA, p.DistinctB = r.distinctA, r.distinctB
	p.Reconciled = true
	p.ReconcileMS = v.o.now().Sub(t0).Milliseconds()
	if err := v.o.Store.PutVerify(v.runID, pairKey(pi), mustJSON(p)); err != nil {
		return err
	}
	v.pairs[pi] = p
	return nil
}

// close settles one id once all its returns are known.
func (r *reconciler) close(ctx context.Context, g group) error {
	if g.id == "" {
		return nil
	}
	if g.a > 0 {
		r.distinctA++
	}
	if g.b > 0 {
		r.distinctB++
	}
	if g.a > 1 {
		r.add(covKey(r.pi, g.id, KindDuplicateA), diffRec{Kind: KindDuplicateA, Count: g.a})
	}
	if g.b > 1 {
		r.add(covKey(r.pi, g.id, KindDuplicateB), diffRec{Kind: KindDuplicateB, Count: g.b})
	}
	switch {
	case g.a > 0 && g.b == 0 && !r.sampled:
		// The forward pass looked the id up in B: if it found it, B holds a
		// document its own scan did not return.
		b, err := r.v.o.Store.GetVerify(r.v.runID, diffKey(r.pi, g.id))
		var rec diffRec
		switch {
		case errors.Is(err, checkpoint.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := decode(diffKey(r.pi, g.id), b, &rec); err != nil {
				return err
			}
		}
		if rec.Kind != KindMissing {
			r.add(covKey(r.pi, g.id, KindUnscannedB), diffRec{Kind: KindUnscannedB})
		}
	case g.a == 0 && g.b > 0:
		r.bOnly = append(r.bOnly, g.id)
		if len(r.bOnly) >= r.v.o.BatchDocs {
			return r.lookupBOnly(ctx)
		}
	}
	return r.flush(1000)
}

// lookupBOnly looks up in A (and again in B, for the document) the ids
// that only B's scan returned: absent from A they are extra; present, they
// are compared, and A's scan did not return a document A holds.
func (r *reconciler) lookupBOnly(ctx context.Context) error {
	if len(r.bOnly) == 0 {
		return nil
	}
	ids := make([]bson.RawValue, len(r.bOnly))
	for i, s := range r.bOnly {
		id, err := decodeID(s)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	a, err := r.v.fetch(ctx, sideA, r.pair.A, r.pair.AAbsent, ids)
	if err != nil {
		return err
	}
	b, err := r.v.fetch(ctx, sideB, r.pair.B, r.pair.BAbsent, ids)
	if err != nil {
		return err
	}
	for i, id := range r.bOnly {
		rec, err := r.v.classify(r.dc, a[i], b[i])
		if err != nil {
			return err
		}
		if rec != nil {
			r.add(diffKey(r.pi, id), *rec)
		}
		if len(a[i]) > 0 && !r.sampled {
			r.add(covKey(r.pi, id, KindUnscannedA), diffRec{Kind: KindUnscannedA})
		}
	}
	r.bOnly = r.bOnly[:0]
	return r.flush(0)
}

func (r *reconciler) add(key string, rec diffRec) {
	r.entries = append(r.entries, entry(key, rec))
}

// flush stores the pending records once there are more than n.
func (r *reconciler) flush(n int) error {
	if len(r.entries) <= n {
		return nil
	}
	if err := r.v.o.Store.PutVerifyBatch(r.v.runID, r.entries); err != nil {
		return err
	}
	r.entries = r.entries[:0]
	return nil
}
