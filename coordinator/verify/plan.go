package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// plan asks both sides for copy partitions (never for update partitions:
// verify must not create change-stream resources), pairs A's namespaces
// with B's, takes the sides' counts, draws the sample and stores the run in
// one atomic batch before any data is read.
func (v *Verifier) plan(ctx context.Context) error {
	pl, err := v.planPairs(ctx)
	if err != nil {
		return err
	}
	v.pairs = pl.pairs
	keptA, keptB := pl.parts[0], pl.parts[1]
	for i := range v.pairs {
		if err := v.countPair(ctx, &v.pairs[i], false); err != nil {
			return err
		}
	}

	seed := v.o.SampleSeed
	if v.o.SamplePercent > 0 && seed == 0 {
		seed = rand.Uint64() | 1
	}
	v.meta = runMeta{
		Schema:   schemaVersion,
		Options:  newRunOptions(v.infoA.ID, v.infoB.ID, &v.o),
		ADisplay: v.display(sideA),
		BDisplay: v.display(sideB),
		Created:  v.o.now().UTC(),
		Phase:    phaseScan,
		Seed:     seed,
		Pairs:    len(v.pairs),
		PartsA:   len(keptA),
		PartsB:   len(keptB),
	}
	toRecs := func(s side, parts []spi.Partition, pairs []int) []partRec {
		recs := make([]partRec, len(parts))
		for i, p := range parts {
			recs[i] = partRec{Pair: pairs[i], Namespace: p.Namespace, Def: p.Cursor, Estimated: p.EstimatedCount}
		}
		if v.o.SamplePercent > 0 {
			sample(recs, s, seed, v.o.SamplePercent)
		}
		return recs
	}
	v.parts[0] = toRecs(sideA, keptA, pl.pairOf[0])
	v.parts[1] = toRecs(sideB, keptB, pl.pairOf[1])

	entries := []checkpoint.VerifyEntry{entry(keyMeta, v.meta)}
	for i, p := range v.pairs {
		entries = append(entries, entry(pairKey(i), p))
	}
	for _, s := range []side{sideA, sideB} {
		for i, p := range v.parts[sideIndex(s)] {
			entries = append(entries, entry(partKey(s, i), p))
		}
	}
	if err := v.o.Store.PutVerifyBatch(v.runID, entries); err != nil {
		return err
	}
	v.o.Logger.Info("planned verify", "run", v.runID, "namespaces", len(v.pairs),
		"partitions_a", len(keptA), "partitions_b", len(keptB))
	return nil
}

// planned is both sides' plans, paired.
type planned struct {
	// pairs are sorted by A's namespace.
	pairs []pairRec
	// parts are each side's partitions that belong to a pair, and pairOf
	// the index of that pair.
	parts  [2][]spi.Partition
	pairOf [2][]int
}

// planPairs plans both sides and pairs A's namespaces with B's: a pair for
// every namespace of A's plan that the mapping selects, and for every
// namespace of B's plan that a selected namespace maps to.
func (v *Verifier) planPairs(ctx context.Context) (planned, error) {
	m := v.o.Namespaces
	partsA, err := v.planSide(ctx, sideA, v.infoA, m.SourceNamespaces())
	if err != nil {
		return planned{}, err
	}
	partsB, err := v.planSide(ctx, sideB, v.infoB, targetNames(m))
	if err != nil {
		return planned{}, err
	}
	var names []string
	for _, p := range partsA {
		names = append(names, p.Namespace)
	}
	if err := m.Check(names); err != nil {
		return planned{}, err
	}
	inv := newInverse(m)
	byA := map[string]*pairRec{}
	pairOf := func(a, b string) *pairRec {
		p := byA[a]
		if p == nil {
			p = &pairRec{A: a, B: b, AAbsent: true, BAbsent: true}
			byA[a] = p
		}
		return p
	}
	var pl planned
	var aOf [2][]string // A namespace of each kept partition
	for _, p := range partsA {
		if !m.Selects(p.Namespace) {
			v.o.Logger.Warn("A planned a namespace outside the mapping; skipping it", "namespace", p.Namespace)
			continue
		}
		pairOf(p.Namespace, m.Map(p.Namespace)).AAbsent = false
		pl.parts[0] = append(pl.parts[0], p)
		aOf[0] = append(aOf[0], p.Namespace)
	}
	for _, p := range partsB {
		a, ok := inv.of(p.Namespace)
		if !ok || !m.Selects(a) || m.Map(a) != p.Namespace {
			v.o.Logger.Warn("B planned a namespace that no namespace of A maps to; skipping it", "namespace", p.Namespace)
			continue
		}
		pairOf(a, p.Namespace).BAbsent = false
		pl.parts[1] = append(pl.parts[1], p)
		aOf[1] = append(aOf[1], a)
	}
	names = names[:0]
	for a := range byA {
		names = append(names, a)
	}
	slices.Sort(names)
	index := map[string]int{}
	pl.pairs = make([]pairRec, len(names))
	for i, a := range names {
		index[a] = i
		pl.pairs[i] = *byA[a]
	}
	for s := range aOf {
		for _, a := range aOf[s] {
			pl.pairOf[s] = append(pl.pairOf[s], index[a])
		}
	}
	return pl, nil
}

// planSide asks side s for copy partitions of names (all when empty), one
// request per name when the side cannot plan several at once.
func (v *Verifier) planSide(ctx context.Context, s side, info spi.Info, names []string) ([]spi.Partition, error) {
	src, _ := v.source(s)
	req := spi.PlanRequest{InitialSync: true}
	var reqs []spi.PlanRequest
	if len(names) > 1 && !info.Source.MultiNamespacePlan {
		for _, ns := range names {
			r := req
			r.Namespaces = []string{ns}
			reqs = append(reqs, r)
		}
	} else {
		req.Namespaces = names
		reqs = []spi.PlanRequest{req}
	}
	var out []spi.Partition
	for _, r := range reqs {
		var p spi.Plan
		err := v.retry(ctx, "plan", func(ctx context.Context) (err error) {
			p, err = src.GeneratePlan(ctx, r)
			return err
		})
		if err != nil {
			what := "every namespace"
			if len(r.Namespaces) > 0 {
				what = strings.Join(r.Namespaces, ",")
			}
			return nil, fmt.Errorf("plan %s of %s: %w", what, s, err)
		}
		out = append(out, p.Partitions...)
	}
	return out, nil
}

// countPair reads both sides' counts of the pair, before the scan or, with
// after, once it is done. A side whose plan lacks the namespace counts 0.
func (v *Verifier) countPair(ctx context.Context, p *pairRec, after bool) error {
	for _, c := range []struct {
		s      side
		ns     string
		absent bool
		dst    *uint64
		dstAft *uint64
	}{
		{sideA, p.A, p.AAbsent, &p.CountBeforeA, &p.CountAfterA},
		{sideB, p.B, p.BAbsent, &p.CountBeforeB, &p.CountAfterB},
	} {
		if c.absent {
			continue
		}
		src, _ := v.source(c.s)
		var md spi.NamespaceMetadata
		err := v.retry(ctx, "namespace metadata", func(ctx context.Context) (err error) {
			md, err = src.NamespaceMetadata(ctx, c.ns)
			return err
		})
		if err != nil {
			return fmt.Errorf("count %s namespace %q: %w", c.s, c.ns, err)
		}
		if after {
			*c.dstAft = md.Count
		} else {
			*c.dst = md.Count
		}
	}
	return nil
}

// sample marks all but a share of percent of recs as skipped, at least one
// kept. The choice is a function of the seed, the side and the index.
func sample(recs []partRec, s side, seed uint64, percent float64) {
	if len(recs) == 0 {
		return
	}
	score := func(i int) uint64 {
		var b [17]byte
		binary.BigEndian.PutUint64(b[:], seed)
		b[8] = byte(s)
		binary.BigEndian.PutUint64(b[9:], uint64(i))
		sum := sha256.Sum256(b[:])
		return binary.BigEndian.Uint64(sum[:8])
	}
	// Keep the ceil(percent) share of partitions with the lowest scores.
	keep := min(len(recs), max(1, int(math.Ceil(float64(len(recs))*percent/100-1e-9))))
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		sa, sb := score(a), score(b)
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return a - b
	})
	for _, i := range order[keep:] {
		recs[i].Skipped = true
	}
}

// targetNames returns the B-side names to plan for mapping m: each entry's
// target (namespace or database), or nil (all) for the zero map.
func targetNames(m coordinator.NamespaceMap) []string {
	var out []string
	for _, e := range m.Entries() {
		src, dst, ok := strings.Cut(e, ":")
		if !ok {
			dst = src
		}
		out = append(out, dst)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// inverse maps B's namespaces back to A's under a mapping. The result must
// still be checked with the mapping itself: under "a:c" with
// "a.x:c.y", B's c.x inverts to a.x, which maps to c.y, not c.x.
type inverse struct {
	zero bool
	ns   map[string]string // target namespace -> source namespace
	db   map[string]string // target database -> source database
}

func newInverse(m coordinator.NamespaceMap) inverse {
	iv := inverse{zero: m.IsZero(), ns: map[string]string{}, db: map[string]string{}}
	for _, e := range m.Entries() {
		src, dst, ok := strings.Cut(e, ":")
		if !ok {
			dst = src
		}
		if strings.Contains(src, ".") {
			iv.ns[dst] = src
		} else {
			iv.db[dst] = src
		}
	}
	return iv
}

func (iv inverse) of(b string) (string, bool) {
	if iv.zero {
		return b, true
	}
	if a, ok := iv.ns[b]; ok {
		return a, true
	}
	db, coll, ok := strings.Cut(b, ".")
	if !ok {
		return "", false
	}
	if a, ok := iv.db[db]; ok {
		return a + "." + coll, true
	}
	return "", false
}
