package verify

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// openRec is a stored mismatch that stands.
type openRec struct {
	key string
	id  bson.RawValue
	rec diffRec
}

// eachOpen calls fn with the open records under prefix (prefixDiff or
// prefixCov) that want accepts, in batches of at most BatchDocs records of
// one namespace pair. The records come from one snapshot: fn may rewrite
// them without seeing them again.
func (v *Verifier) eachOpen(prefix string, want func(diffRec) bool, fn func(pi int, recs []openRec) error) error {
	var batch []openRec
	cur := -1
	err := v.o.Store.ScanVerify(v.runID, prefix, func(key string, value []byte) error {
		pi, err := indexFromKey(key, prefix)
		if err != nil {
			return err
		}
		if pi >= len(v.pairs) {
			return fmt.Errorf("%w: key %q names namespace pair %d of %d", ErrCorrupt, key, pi, len(v.pairs))
		}
		var rec diffRec
		if err := decode(key, value, &rec); err != nil {
			return err
		}
		if rec.State != stateOpen || !want(rec) {
			return nil
		}
		if pi != cur && len(batch) > 0 {
			if err := fn(cur, batch); err != nil {
				return err
			}
			batch = nil
		}
		cur = pi
		id, err := decodeID(idFromKey(key, fmt.Sprintf("%s%06d/", prefix, pi)))
		if err != nil {
			return err
		}
		batch = append(batch, openRec{key: key, id: id, rec: rec})
		if len(batch) >= v.o.BatchDocs {
			err := fn(cur, batch)
			batch = nil
			return err
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = fn(cur, batch)
	}
	return err
}

func anyRec(diffRec) bool { return true }

func unscanned(r diffRec) bool { return r.Kind == KindUnscannedA || r.Kind == KindUnscannedB }

// recheck waits Recheck and fetches every open mismatch again from both
// sides, up to RecheckAttempts times, stopping early once nothing is open
// or an attempt changed nothing (the remaining differences are stable).
func (v *Verifier) recheck(ctx context.Context) error {
	if v.o.Recheck <= 0 {
		return nil
	}
	for v.meta.Rechecks < v.o.RecheckAttempts {
		open := 0
		count := func(_ int, recs []openRec) error { open += len(recs); return nil }
		if err := v.eachOpen(prefixDiff, anyRec, count); err != nil {
			return err
		}
		if err := v.eachOpen(prefixCov, unscanned, count); err != nil {
			return err
		}
		if open == 0 {
			return nil
		}
		v.o.Logger.Info("rechecking differences after the settle time", "differences", open,
			"settle", v.o.Recheck, "attempt", v.meta.Rechecks+1, "of", v.o.RecheckAttempts)
		if err := sleep(ctx, v.o.Recheck); err != nil {
			return err
		}
		changed, err := v.recheckOnce(ctx)
		if err != nil {
			return err
		}
		v.meta.Rechecks++
		if err := v.o.Store.PutVerify(v.runID, keyMeta, mustJSON(v.meta)); err != nil {
			return err
		}
		if changed == 0 {
			return nil
		}
	}
	return nil
}

// recheckOnce compares every open mismatch again and returns how many
// changed (resolved, or another kind or other documents).
func (v *Verifier) recheckOnce(ctx context.Context) (int, error) {
	dc := v.cmp.newDoc()
	changed := 0
	process := func(pi int, recs []openRec) error {
		p := v.pairs[pi]
		a, b, err := v.fetchBoth(ctx, p, recs)
		if err != nil {
			return err
		}
		entries := make([]checkpoint.VerifyEntry, 0, len(recs))
		for i, o := range recs {
			r := o.rec
			if r.coverage() {
				// The document appeared while the scan ran: equal on both
				// sides now, it is no longer in question.
				r.Rechecks++
				if len(a[i]) > 0 && len(b[i]) > 0 {
					eq, err := dc.equal(a[i], b[i])
					if err != nil {
						return err
					}
					if eq {
						r.State = stateResolved
						changed++
					}
				}
			} else {
				n, err := v.classify(dc, a[i], b[i])
				if err != nil {
					return err
				}
				if n == nil {
					r.State = stateResolved
					r.Rechecks++
					changed++
				} else {
					if n.Kind != r.Kind || n.HashA != r.HashA || n.HashB != r.HashB {
						changed++
					}
					n.Rechecks = r.Rechecks + 1
					r = *n
				}
			}
			entries = append(entries, entry(o.key, r))
		}
		return v.o.Store.PutVerifyBatch(v.runID, entries)
	}
	if err := v.eachOpen(prefixDiff, anyRec, process); err != nil {
		return 0, err
	}
	if err := v.eachOpen(prefixCov, unscanned, process); err != nil {
		return 0, err
	}
	return changed, nil
}

// fetchBoth fetches the records' ids from both sides. Unlike the scan, it
// also asks a side whose plan lacked the namespace, which may have been
// created since, except A for a namespace A did not have.
func (v *Verifier) fetchBoth(ctx context.Context, p pairRec, recs []openRec) (a, b []bson.Raw, err error) {
	ids := make([]bson.RawValue, len(recs))
	for i, o := range recs {
		ids[i] = o.id
	}
	if a, err = v.fetch(ctx, sideA, p.A, p.AAbsent, ids); err != nil {
		return nil, nil, err
	}
	if b, err = v.fetch(ctx, sideB, p.B, false, ids); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// repair makes B equal to A for every open difference: A's document is
// written to B (insert or replace by id), or B's is deleted where A has
// none; then both are fetched again and compared. Coverage problems are
// not repairable and stay.
func (v *Verifier) repair(ctx context.Context) error {
	if !v.o.Repair {
		return nil
	}
	dc := v.cmp.newDoc()
	return v.eachOpen(prefixDiff, anyRec, func(pi int, recs []openRec) error {
		p := v.pairs[pi]
		ids := make([]bson.RawValue, len(recs))
		for i, o := range recs {
			ids[i] = o.id
		}
		a, err := v.fetch(ctx, sideA, p.A, p.AAbsent, ids)
		if err != nil {
			return err
		}
		var docs []bson.Raw
		var dels []spi.Update
		for i, d := range a {
			if len(d) > 0 {
				docs = append(docs, d)
			} else {
				dels = append(dels, spi.Update{ID: ids[i], Type: spi.UpdateDelete})
			}
		}
		for lo := 0; lo < len(docs); {
			hi, size := lo, 0
			for hi < len(docs) && (hi == lo || size+len(docs[hi]) <= v.o.BatchBytes) {
				size += len(docs[hi])
				hi++
			}
			chunk := docs[lo:hi]
			err := v.retry(ctx, "repair write", func(ctx context.Context) error { return v.sink.WriteData(ctx, p.B, chunk) })
			if err != nil {
				return fmt.Errorf("repair: write %d documents to B namespace %q: %w", len(chunk), p.B, err)
			}
			lo = hi
		}
		if len(dels) > 0 {
			err := v.retry(ctx, "repair delete", func(ctx context.Context) error { return v.sink.WriteUpdates(ctx, p.B, dels) })
			if err != nil {
				return fmt.Errorf("repair: delete %d documents from B namespace %q: %w", len(dels), p.B, err)
			}
		}
		b, err := v.fetch(ctx, sideB, p.B, false, ids)
		if err != nil {
			return err
		}
		entries := make([]checkpoint.VerifyEntry, 0, len(recs))
		failed := 0
		for i, o := range recs {
			r := o.rec
			action := "written"
			if len(a[i]) == 0 {
				action = "deleted"
			}
			n, err := v.classify(dc, a[i], b[i])
			if err != nil {
				return err
			}
			if n == nil {
				r.State = stateRepaired
			} else {
				failed++
				n.Rechecks = r.Rechecks
				r = *n
			}
			r.Repair = action
			entries = append(entries, entry(o.key, r))
		}
		if failed > 0 {
			v.o.Logger.Warn("repaired documents still differ from A (is B written concurrently?)", "namespace", p.B, "documents", failed)
		}
		return v.o.Store.PutVerifyBatch(v.runID, entries)
	})
}
