package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// Verifier runs one verification. Create it with [New], run it once with
// [Verifier.Run]; [Verifier.Stats] may be called from any goroutine.
type Verifier struct {
	o     Options
	cmp   *comparer
	infoA spi.Info
	infoB spi.Info
	getA  spi.IDGetter
	getB  spi.IDGetter
	sink  spi.Sink

	runID   string
	meta    runMeta
	pairs   []pairRec
	parts   [2][]partRec // indexed by sideIndex
	resumed bool

	stats stats
}

func sideIndex(s side) int {
	if s == sideA {
		return 0
	}
	return 1
}

// New checks the options and returns a Verifier.
func New(o Options) (*Verifier, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{o: o, cmp: newComparer(o.IgnoreFieldOrder, o.NumericEquivalence, o.ExcludeFields)}
	v.stats.setPhase("plan")
	return v, nil
}

// Run verifies with the options o; see [Verifier.Run].
func Run(ctx context.Context, o Options) (*Result, error) {
	v, err := New(o)
	if err != nil {
		return nil, err
	}
	return v.Run(ctx)
}

// Stats returns the progress of the run.
func (v *Verifier) Stats() StatsSnapshot { return v.stats.snapshot() }

// RunID returns the run's id once Run has identified it, else "".
func (v *Verifier) RunID() string {
	v.stats.mu.Lock()
	defer v.stats.mu.Unlock()
	return v.stats.runID
}

// Run compares A with B and returns the result; see the package
// documentation for the algorithm. Cancelling ctx stops the run at the next
// page: the result then has Stopped set and a nil error, and running the
// same verification again resumes it. Errors wrap the package's sentinels
// or the connectors' errors (spi kinds are kept).
func (v *Verifier) Run(ctx context.Context) (*Result, error) {
	start := v.o.now()
	if err := v.connect(ctx); err != nil {
		return nil, err
	}
	if v.o.CountOnly {
		return v.countOnly(ctx, start)
	}
	v.runID = newRunOptions(v.infoA.ID, v.infoB.ID, &v.o).id()
	v.stats.setRun(v.runID)
	if err := v.load(ctx); err != nil {
		return v.stopped(ctx, start, err)
	}
	v.stats.setPairs(v.pairs, v.parts)
	steps := []struct {
		phase string
		run   func(context.Context) error
		next  string
	}{
		{phaseScan, v.scan, phaseReconcile},
		{phaseReconcile, v.reconcile, phaseRecheck},
		{phaseRecheck, v.recheck, phaseRepair},
		{phaseRepair, v.repair, phaseDone},
	}
	for _, st := range steps {
		if v.meta.Phase != st.phase {
			continue
		}
		v.stats.setPhase(st.phase)
		t0 := v.o.now()
		if err := st.run(ctx); err != nil {
			return v.stopped(ctx, start, err)
		}
		v.o.Logger.Info("verify phase done", "run", v.runID, "phase", st.phase, "took", v.o.now().Sub(t0).Round(time.Millisecond))
		v.meta.Phase = st.next
		if st.next == phaseDone {
			v.meta.Finished = v.o.now().UTC()
		}
		if err := v.o.Store.PutVerify(v.runID, keyMeta, mustJSON(v.meta)); err != nil {
			return nil, err
		}
	}
	v.stats.setPhase(phaseDone)
	return v.result(start, false)
}

// stopped turns an error caused by ctx's cancellation into a stopped
// result; other errors are returned as they are.
func (v *Verifier) stopped(ctx context.Context, start time.Time, err error) (*Result, error) {
	if ctx.Err() == nil || !(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || spi.KindOf(err) == spi.KindCanceled) {
		return nil, err
	}
	v.o.Logger.Info("verify stopped; run the same command again to resume", "run", v.runID)
	if len(v.pairs) == 0 {
		return &Result{RunID: v.runID, Stopped: true, A: v.display(sideA), B: v.display(sideB), Duration: v.o.now().Sub(start)}, nil
	}
	return v.result(start, true)
}

func (v *Verifier) display(s side) string {
	if s == sideA {
		if v.o.ADisplay != "" {
			return v.o.ADisplay
		}
		return v.infoA.ID
	}
	if v.o.BDisplay != "" {
		return v.o.BDisplay
	}
	return v.infoB.ID
}

// connect reads both connectors' Info and checks their capabilities.
func (v *Verifier) connect(ctx context.Context) error {
	var err error
	if v.infoA, err = v.o.A.Info(ctx); err != nil {
		return fmt.Errorf("info of A: %w", err)
	}
	if v.infoB, err = v.o.B.Info(ctx); err != nil {
		return fmt.Errorf("info of B: %w", err)
	}
	for _, c := range []struct {
		name string
		info spi.Info
		src  spi.Source
		get  *spi.IDGetter
		why  string
	}{
		{"A", v.infoA, v.o.A, &v.getA, "to look up B's documents that A's scan did not return"},
		{"B", v.infoB, v.o.B, &v.getB, "to look up A's documents in B"},
	} {
		if c.info.Source == nil {
			return fmt.Errorf("%w: %s (%s, %s)", ErrNotSource, c.name, c.info.ID, c.info.DBType)
		}
		if v.o.Namespaces.IsZero() && !c.info.Source.DefaultPlan {
			return fmt.Errorf("%w: %s (%s, %s) cannot plan every namespace; name the namespaces to verify", ErrUnsupported, c.name, c.info.ID, c.info.DBType)
		}
		if v.o.CountOnly {
			continue
		}
		g, ok := c.src.(spi.IDGetter)
		if !ok || !c.info.Source.GetByIDs {
			return fmt.Errorf("%w: %s (%s, %s) does not implement GetByIds, which verify needs %s (--count-only compares counts without it)",
				ErrNoGetByIDs, c.name, c.info.ID, c.info.DBType, c.why)
		}
		*c.get = g
	}
	if v.o.Repair {
		s, ok := v.o.B.(spi.Sink)
		if !ok || v.infoB.Sink == nil {
			return fmt.Errorf("%w: %s (%s) is a source-only connector", ErrNotSink, v.infoB.ID, v.infoB.DBType)
		}
		v.sink = s
	}
	return nil
}

// load resumes the stored run, or plans a new one.
func (v *Verifier) load(ctx context.Context) error {
	st := v.o.Store
	if v.o.Reset {
		if err := st.ResetVerify(v.runID); err != nil {
			return err
		}
	}
	b, err := st.GetVerify(v.runID, keyMeta)
	switch {
	case errors.Is(err, checkpoint.ErrKeyNotFound):
		return v.plan(ctx)
	case err != nil:
		return err
	}
	if err := decode(keyMeta, b, &v.meta); err != nil {
		return err
	}
	if v.meta.Schema != schemaVersion {
		return fmt.Errorf("%w: run %s was stored with schema %d; rerun with reset", ErrCorrupt, v.runID, v.meta.Schema)
	}
	if v.meta.Phase == phaseDone {
		v.o.Logger.Info("the previous verify of these datasets finished; starting a new one", "run", v.runID,
			"finished", v.meta.Finished)
		if err := st.ResetVerify(v.runID); err != nil {
			return err
		}
		return v.plan(ctx)
	}
	v.resumed = true
	if err := v.loadRecords(); err != nil {
		return err
	}
	var done, all int
	for _, side := range v.parts {
		for _, p := range side {
			if !p.Skipped {
				all++
				if p.Done {
					done++
				}
			}
		}
	}
	v.o.Logger.Info("resuming a stopped verify", "run", v.runID, "phase", v.meta.Phase, "started", v.meta.Created,
		"partitions_done", done, "partitions", all)
	return nil
}

// loadRecords reads the pairs and partitions of a stored run.
func (v *Verifier) loadRecords() error {
	st := v.o.Store
	v.pairs = make([]pairRec, 0, v.meta.Pairs)
	err := st.ScanVerify(v.runID, prefixPair, func(key string, value []byte) error {
		var p pairRec
		if err := decode(key, value, &p); err != nil {
			return err
		}
		v.pairs = append(v.pairs, p)
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range []side{sideA, sideB} {
		var parts []partRec
		err := st.ScanVerify(v.runID, partPrefix(s), func(key string, value []byte) error {
			var p partRec
			if err := decode(key, value, &p); err != nil {
				return err
			}
			if p.Pair < 0 || p.Pair >= len(v.pairs) {
				return fmt.Errorf("%w: %s names namespace pair %d of %d", ErrCorrupt, key, p.Pair, len(v.pairs))
			}
			parts = append(parts, p)
			return nil
		})
		if err != nil {
			return err
		}
		v.parts[sideIndex(s)] = parts
	}
	if len(v.pairs) != v.meta.Pairs || len(v.parts[0]) != v.meta.PartsA || len(v.parts[1]) != v.meta.PartsB {
		return fmt.Errorf("%w: run %s has %d pairs and %d+%d partitions stored, its meta says %d and %d+%d",
			ErrCorrupt, v.runID, len(v.pairs), len(v.parts[0]), len(v.parts[1]), v.meta.Pairs, v.meta.PartsA, v.meta.PartsB)
	}
	return nil
}

// source returns side s's source and id getter.
func (v *Verifier) source(s side) (spi.Source, spi.IDGetter) {
	if s == sideA {
		return v.o.A, v.getA
	}
	return v.o.B, v.getB
}

// fetch returns side s's documents of ids in namespace ns, in order, nil
// where missing. A namespace absent from the side's plan holds nothing and
// is not asked.
func (v *Verifier) fetch(ctx context.Context, s side, ns string, absent bool, ids []bson.RawValue) ([]bson.Raw, error) {
	if absent {
		return make([]bson.Raw, len(ids)), nil
	}
	_, g := v.source(s)
	var docs []bson.Raw
	err := v.retry(ctx, "get by ids", func(ctx context.Context) (err error) {
		docs, err = g.GetByIDs(ctx, ns, ids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get %d documents by id from %s namespace %q: %w", len(ids), s, ns, err)
	}
	if len(docs) != len(ids) {
		return nil, fmt.Errorf("%w: %s namespace %q returned %d documents for %d ids", ErrBadResponse, s, ns, len(docs), len(ids))
	}
	return docs, nil
}
