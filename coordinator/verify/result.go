package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
)

// Result is the outcome of a verification.
type Result struct {
	// RunID identifies the run in the store ("" with CountOnly).
	RunID string
	// A and B describe the datasets (Options.ADisplay, BDisplay).
	A, B string
	// Resumed: the run continued one that had stopped.
	Resumed bool
	// Stopped: the context was cancelled before the end; the counts cover
	// what was done. Running the same verification again resumes it.
	Stopped bool
	// CountOnly: only counts were compared (NamespaceResult.CountA, CountB).
	CountOnly bool
	// Sample is set when only a sample of the partitions was verified.
	Sample *Sample
	// EstimatedCounts is Options.EstimatedCounts: count shortfalls are
	// warnings.
	EstimatedCounts bool
	// Recheck is Options.Recheck; Rechecks the attempts made.
	Recheck  time.Duration
	Rechecks int
	// Repair is Options.Repair.
	Repair bool
	// Namespaces are the namespace pairs in A's namespace order.
	Namespaces []NamespaceResult
	// Duration of this run (not of earlier runs of a resumed one).
	Duration time.Duration

	store *checkpoint.Store
	pairs []pairRec
}

// Sample describes a sampled run.
type Sample struct {
	Percent float64 `json:"percent"`
	Seed    uint64  `json:"seed"`
	// PartitionsA and PartitionsB are the partitions verified, PlannedA and
	// PlannedB those planned.
	PartitionsA int `json:"partitions_a"`
	PlannedA    int `json:"planned_a"`
	PartitionsB int `json:"partitions_b"`
	PlannedB    int `json:"planned_b"`
}

// NamespaceResult is the outcome of one namespace of A and its counterpart
// in B. Missing, Extra, Different and the per-id coverage counts are the
// open mismatches: those rechecks resolved (Resolved) or repair fixed
// (Repaired) are not in them.
type NamespaceResult struct {
	Namespace, BNamespace string
	// Compared is the number of A's documents compared with B (as returned
	// by A's scan, duplicates included); ScannedB the documents B's scan
	// returned.
	Compared, ScannedB uint64
	Missing, Extra     uint64
	Different          uint64
	// Duplicates and Unscanned count open per-id coverage problems.
	Duplicates, Unscanned uint64
	// Resolved are differences that rechecks found gone; Repaired those
	// that repair fixed, by Written and Deleted documents on B.
	Resolved, Repaired uint64
	Written, Deleted   uint64
	// Counts are the sides' count checks (nil with a sample, or before the
	// namespace is reconciled).
	Counts []CountCheck
	// Time is the time spent on the namespace: scans, summed over the
	// partitions read in parallel, and reconciliation.
	Time time.Duration
	// CountA and CountB are the sides' namespace counts (CountOnly).
	CountA, CountB uint64
}

// CountCheck compares the documents a side's scan returned with the
// side's own count of the namespace, taken when the run was planned and
// again after the scans.
type CountCheck struct {
	// Side is "A" or "B".
	Side string `json:"side"`
	// Distinct is the number of distinct ids the scan returned.
	Distinct uint64 `json:"distinct"`
	// Before and After are the side's counts.
	Before uint64 `json:"count_before"`
	After  uint64 `json:"count_after"`
	// Short: the scan returned fewer documents than both counts: it missed
	// documents the side holds (a coverage failure, or a warning with
	// EstimatedCounts).
	Short bool `json:"short"`
	// Over: the scan returned more distinct documents than both counts
	// (the counts are low estimates); never a failure.
	Over bool `json:"over"`
}

// failed reports whether the check fails the verification.
func (c CountCheck) failed(estimated bool) bool { return c.Short && !estimated }

// differences returns the number of open mismatches and failed checks of
// the namespace: zero when it is proven identical.
func (n NamespaceResult) differences(estimated, countOnly bool) uint64 {
	if countOnly {
		if n.CountA != n.CountB {
			return 1
		}
		return 0
	}
	d := n.Missing + n.Extra + n.Different + n.Duplicates + n.Unscanned
	for _, c := range n.Counts {
		if c.failed(estimated) {
			d++
		}
	}
	return d
}

// Differences returns the number of open mismatches (documents missing,
// extra or different, and per-id coverage problems) plus failed count
// checks; with CountOnly, the number of namespaces whose counts differ.
func (r *Result) Differences() uint64 {
	var d uint64
	for _, n := range r.Namespaces {
		d += n.differences(r.EstimatedCounts, r.CountOnly)
	}
	return d
}

// Identical reports whether the run finished and proved the sides equal
// (for a sample: equal within the sample; with CountOnly: equal counts).
func (r *Result) Identical() bool { return !r.Stopped && r.Differences() == 0 }

// Mismatch is one stored mismatch of one id.
type Mismatch struct {
	Namespace, BNamespace string
	ID                    bson.RawValue
	Kind                  Kind
	// Fields say how the documents differ (KindDifferent).
	Fields          []FieldDiff
	FieldsTruncated bool
	// Count is how many times a duplicate was returned.
	Count int
	// State is "open", "resolved" (a recheck found the documents equal)
	// or "repaired".
	State string
	// Rechecks is the number of rechecks of the id.
	Rechecks int
	// Repair is "written" or "deleted" when repair changed B for the id.
	Repair string
}

// Coverage reports whether the mismatch is a coverage problem rather than
// a difference of data.
func (m Mismatch) Coverage() bool { return diffRec{Kind: m.Kind}.coverage() }

// Mismatches calls fn for every stored mismatch, open or not, by namespace
// then id: data differences first, then per-id coverage problems. It
// streams from the store and must be called before the store is closed
// and before the run is started again. An error from fn stops it.
func (r *Result) Mismatches(fn func(Mismatch) error) error {
	if r.store == nil {
		return nil
	}
	for _, prefix := range []string{prefixDiff, prefixCov} {
		err := r.store.ScanVerify(r.RunID, prefix, func(key string, value []byte) error {
			pi, err := indexFromKey(key, prefix)
			if err != nil {
				return err
			}
			if pi >= len(r.pairs) {
				return fmt.Errorf("%w: key %q names namespace pair %d of %d", ErrCorrupt, key, pi, len(r.pairs))
			}
			var rec diffRec
			if err := decode(key, value, &rec); err != nil {
				return err
			}
			id, err := decodeID(idFromKey(key, fmt.Sprintf("%s%06d/", prefix, pi)))
			if err != nil {
				return err
			}
			state := rec.State
			if state == stateOpen {
				state = "open"
			}
			return fn(Mismatch{Namespace: r.pairs[pi].A, BNamespace: r.pairs[pi].B, ID: id, Kind: rec.Kind,
				Fields: rec.Fields, FieldsTruncated: rec.Truncated, Count: rec.Count, State: state,
				Rechecks: rec.Rechecks, Repair: rec.Repair})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// result builds the Result from the stored run.
func (v *Verifier) result(start time.Time, stopped bool) (*Result, error) {
	r := &Result{
		RunID: v.runID, A: v.display(sideA), B: v.display(sideB), Resumed: v.resumed, Stopped: stopped,
		EstimatedCounts: v.o.EstimatedCounts, Recheck: v.o.Recheck, Rechecks: v.meta.Rechecks, Repair: v.o.Repair,
		store: v.o.Store, pairs: v.pairs,
	}
	ns := make([]NamespaceResult, len(v.pairs))
	for i, p := range v.pairs {
		ns[i] = NamespaceResult{Namespace: p.A, BNamespace: p.B, Time: time.Duration(p.ReconcileMS) * time.Millisecond}
	}
	if v.o.SamplePercent > 0 {
		r.Sample = &Sample{Percent: v.o.SamplePercent, Seed: v.meta.Seed}
	}
	for si, parts := range v.parts {
		for _, p := range parts {
			if r.Sample != nil {
				if si == 0 {
					r.Sample.PlannedA++
				} else {
					r.Sample.PlannedB++
				}
			}
			if p.Skipped {
				continue
			}
			if r.Sample != nil {
				if si == 0 {
					r.Sample.PartitionsA++
				} else {
					r.Sample.PartitionsB++
				}
			}
			n := &ns[p.Pair]
			if si == 0 {
				n.Compared += p.Docs
			} else {
				n.ScannedB += p.Docs
			}
			n.Time += time.Duration(p.BusyMS) * time.Millisecond
		}
	}
	for i, p := range v.pairs {
		if p.Reconciled && r.Sample == nil {
			ns[i].Counts = []CountCheck{
				countCheck("A", p.DistinctA, p.CountBeforeA, p.CountAfterA),
				countCheck("B", p.DistinctB, p.CountBeforeB, p.CountAfterB),
			}
		}
	}
	err := r.Mismatches(func(m Mismatch) error {
		n := &ns[indexOfPair(v.pairs, m.Namespace)]
		switch m.State {
		case stateResolved:
			n.Resolved++
			return nil
		case stateRepaired:
			n.Repaired++
			if m.Repair == "deleted" {
				n.Deleted++
			} else {
				n.Written++
			}
			return nil
		}
		switch m.Kind {
		case KindMissing:
			n.Missing++
		case KindExtra:
			n.Extra++
		case KindDifferent:
			n.Different++
		case KindDuplicateA, KindDuplicateB:
			n.Duplicates++
		case KindUnscannedA, KindUnscannedB:
			n.Unscanned++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Namespaces = ns
	r.Duration = v.o.now().Sub(start)
	return r, nil
}

func indexOfPair(pairs []pairRec, a string) int {
	lo, hi := 0, len(pairs)
	for lo < hi {
		m := (lo + hi) / 2
		if pairs[m].A < a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func countCheck(s string, distinct, before, after uint64) CountCheck {
	return CountCheck{Side: s, Distinct: distinct, Before: before, After: after,
		Short: distinct < min(before, after), Over: distinct > max(before, after)}
}

// countOnly compares the sides' counts of each namespace pair.
func (v *Verifier) countOnly(ctx context.Context, start time.Time) (*Result, error) {
	r := &Result{A: v.display(sideA), B: v.display(sideB), CountOnly: true}
	m := v.o.Namespaces
	var pairs []pairRec
	if names := m.SourceNamespaces(); len(names) > 0 && allNamespaces(names) {
		for _, a := range names {
			pairs = append(pairs, pairRec{A: a, B: m.Map(a)})
		}
	} else {
		// Database entries or the zero map: the plans name the namespaces.
		pl, err := v.planPairs(ctx)
		if err != nil {
			return nil, err
		}
		pairs = pl.pairs
	}
	for _, p := range pairs {
		if err := v.countPair(ctx, &p, false); err != nil {
			return nil, err
		}
		r.Namespaces = append(r.Namespaces, NamespaceResult{Namespace: p.A, BNamespace: p.B, CountA: p.CountBeforeA, CountB: p.CountBeforeB})
	}
	r.Duration = v.o.now().Sub(start)
	return r, nil
}

func allNamespaces(names []string) bool {
	for _, n := range names {
		if !strings.Contains(n, ".") {
			return false
		}
	}
	return true
}
