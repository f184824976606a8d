package coordinator

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// Flow runs one sync between a source and a sink. Create it with [New], read
// its progress with [Flow.Stats] from any goroutine, and call [Flow.Run] once.
type Flow struct {
	cfg   Config
	stats *Stats
	ran   atomic.Bool
	// srcCaps are the source's capabilities, known once the flow is open.
	srcCaps spi.SourceCapabilities
	// sinkIndexes reports whether the sink can create indexes.
	sinkIndexes bool
}

// Result describes a finished run.
type Result struct {
	// FlowID identifies the flow in the store; StateDir is Store.Dir().
	FlowID   string
	StateDir string
	// Resumed is true when the flow was found in the store.
	Resumed bool
	// Phase is the flow's stored phase at the end: copy, cdc or done.
	Phase string
	// DocsCopied and BytesCopied count documents written and checkpointed in
	// this run, after transforms; DocsDropped those transforms dropped.
	DocsCopied, BytesCopied, DocsDropped uint64
	// EventsApplied counts source change events applied and checkpointed in
	// this run.
	EventsApplied uint64
	// Stopped is true when the run ended because its context was cancelled.
	Stopped bool
	// Cutover is true when the run ended because CDC lag stayed below
	// Config.UntilLag for Config.Settle.
	Cutover bool
	// Cursors are the durable positions of the update partitions at the end
	// (full and cdc mode).
	Cursors []UpdateCursor
	// Duration of the run.
	Duration time.Duration
}

// UpdateCursor is the durable position of one update partition.
type UpdateCursor struct {
	Index      int
	Namespaces []string
	// Cursor is the stream position, hex-encoded.
	Cursor string
	// Events counts the events applied over the life of the flow.
	Events uint64
	// SourceTime is the source's time of the last checkpointed change.
	SourceTime time.Time
}

// New checks cfg (after filling in its defaults) and returns a flow ready to
// run. Errors wrap [ErrInvalidConfig].
func New(cfg Config) (*Flow, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Flow{cfg: cfg, stats: newStats()}, nil
}

// Run is New followed by [Flow.Run].
func Run(ctx context.Context, cfg Config) (Result, error) {
	f, err := New(cfg)
	if err != nil {
		return Result{}, err
	}
	return f.Run(ctx)
}

// Stats returns the live counters of the flow.
func (f *Flow) Stats() *Stats { return f.stats }

// Run plans or resumes the flow and runs it until it completes (initial
// mode), it is stopped by cancelling ctx, a cut-over is reached, or a fatal
// error happens; see the package documentation. A stop or a cut-over returns
// a nil error once the final checkpoint is written. Run may be called once.
func (f *Flow) Run(ctx context.Context) (res Result, err error) {
	if !f.ran.CompareAndSwap(false, true) {
		return Result{}, fmt.Errorf("%w: Flow.Run called twice", ErrInvalidConfig)
	}
	start := time.Now()
	defer func() {
		res.Duration = time.Since(start)
		switch {
		case err != nil:
			f.stats.setPhase(PhaseFailed)
		case res.Stopped && !res.Cutover:
			f.stats.setPhase(PhaseStopped)
		default:
			f.stats.setPhase(PhaseDone)
		}
	}()

	id, meta, resumed, err := f.open(ctx)
	if err != nil {
		if ctx.Err() != nil && (errors.Is(err, ctx.Err()) || spi.KindOf(err) == spi.KindCanceled) {
			// Stopped before the flow was known: nothing was written.
			return Result{Stopped: true, FlowID: id, StateDir: f.cfg.Store.Dir()}, nil
		}
		return Result{FlowID: id, StateDir: f.cfg.Store.Dir()}, err
	}
	res = Result{FlowID: id, StateDir: f.cfg.Store.Dir(), Resumed: resumed, Phase: meta.Phase}
	return f.run(ctx, res, meta)
}

// open identifies the connectors, finds, refuses, resets or plans the flow,
// and returns its stored meta.
func (f *Flow) open(ctx context.Context) (string, checkpoint.FlowMeta, bool, error) {
	cfg := &f.cfg
	log := cfg.Logger
	var srcInfo, sinkInfo spi.Info
	err := retry(ctx, cfg.Retry, log, "source info", func(ctx context.Context) (err error) {
		srcInfo, err = cfg.Source.Info(ctx)
		return err
	})
	if err != nil {
		return "", checkpoint.FlowMeta{}, false, fmt.Errorf("source info: %w", err)
	}
	err = retry(ctx, cfg.Retry, log, "sink info", func(ctx context.Context) (err error) {
		sinkInfo, err = cfg.Sink.Info(ctx)
		return err
	})
	if err != nil {
		return "", checkpoint.FlowMeta{}, false, fmt.Errorf("sink info: %w", err)
	}
	if err := f.checkCapabilities(srcInfo, sinkInfo); err != nil {
		return "", checkpoint.FlowMeta{}, false, err
	}
	f.srcCaps = *srcInfo.Source
	f.sinkIndexes = sinkInfo.Sink != nil && sinkInfo.Sink.Indexes

	opts := newFlowOptions(srcInfo.ID, sinkInfo.ID, cfg.Namespaces, cfg.TransformSpecs, cfg.Mode)
	id := opts.id()
	f.stats.setFlowID(id)

	flows, err := cfg.Store.Flows()
	if err != nil {
		return id, checkpoint.FlowMeta{}, false, err
	}
	var same *checkpoint.FlowMeta
	var others []checkpoint.FlowMeta
	for i, fm := range flows {
		if fm.ID == id {
			same = &flows[i]
			continue
		}
		if o, ok := decodeFlowOptions(fm.Options); ok && o.samePair(opts) {
			others = append(others, fm)
		}
	}
	if cfg.Reset {
		if same != nil {
			others = append(others, *same)
			same = nil
		}
		for _, fm := range others {
			if err := cfg.Store.ResetFlow(fm.ID); err != nil {
				return id, checkpoint.FlowMeta{}, false, err
			}
			log.Info("reset flow", "flow", fm.ID, "phase", fm.Phase)
		}
		others = nil
	}
	if same != nil {
		return id, *same, true, nil
	}
	for _, fm := range others {
		old, _ := decodeFlowOptions(fm.Options)
		if fm.Phase == checkpoint.PhaseDone {
			log.Info("a finished flow of this source and sink used other options; starting a new flow",
				"old_flow", fm.ID, "changes", strings.Join(opts.changes(old), "; "))
			continue
		}
		return id, checkpoint.FlowMeta{}, false, fmt.Errorf("%w: %s; flow %s between this source and sink is unfinished (phase %s): rerun with --reset to discard it and start over",
			ErrFlowOptionsChanged, strings.Join(opts.changes(old), "; "), fm.ID, fm.Phase)
	}

	meta, err := f.plan(ctx, id, opts, srcInfo)
	if err != nil {
		return id, checkpoint.FlowMeta{}, false, err
	}
	return id, meta, false, nil
}

func (f *Flow) checkCapabilities(src, sink spi.Info) error {
	switch {
	case src.Source == nil:
		return fmt.Errorf("%w: source %s (%s) cannot be read", ErrUnsupported, src.ID, src.DBType)
	case sink.Sink == nil:
		return fmt.Errorf("%w: sink %s (%s) cannot be written", ErrUnsupported, sink.ID, sink.DBType)
	case src.ID == "" || sink.ID == "":
		return fmt.Errorf("%w: a connector reported no dataset id (source %q, sink %q)", ErrUnsupported, src.ID, sink.ID)
	}
	if f.cfg.Mode != ModeInitial {
		if _, ok := f.cfg.Source.(spi.UpdateStreamer); !ok || !src.Source.Updates {
			return fmt.Errorf("%w: source %s (%s) cannot stream updates; use mode initial", ErrUnsupported, src.ID, src.DBType)
		}
	}
	if f.cfg.Namespaces.IsZero() && !src.Source.DefaultPlan {
		return fmt.Errorf("%w: source %s (%s) cannot plan every namespace; list the namespaces to copy", ErrUnsupported, src.ID, src.DBType)
	}
	return nil
}

// plan asks the source for a plan and persists it with the update cursors in
// one atomic write, before any data is read.
func (f *Flow) plan(ctx context.Context, id string, opts flowOptions, srcInfo spi.Info) (checkpoint.FlowMeta, error) {
	cfg := &f.cfg
	f.stats.setPhase(PhasePlanning)
	req := spi.PlanRequest{InitialSync: cfg.Mode != ModeCDC, Updates: cfg.Mode != ModeInitial}
	var reqs []spi.PlanRequest
	names := cfg.Namespaces.SourceNamespaces()
	if len(names) > 1 && !srcInfo.Source.MultiNamespacePlan {
		for _, ns := range names {
			r := req
			r.Namespaces = []string{ns}
			reqs = append(reqs, r)
		}
	} else {
		req.Namespaces = names
		reqs = []spi.PlanRequest{req}
	}
	var plan spi.Plan
	for _, r := range reqs {
		var p spi.Plan
		err := retry(ctx, cfg.Retry, cfg.Logger, "plan", func(ctx context.Context) (err error) {
			p, err = cfg.Source.GeneratePlan(ctx, r)
			return err
		})
		if err != nil {
			return checkpoint.FlowMeta{}, fmt.Errorf("plan namespaces %s: %w", cfg.Namespaces, err)
		}
		plan.Partitions = append(plan.Partitions, p.Partitions...)
		plan.UpdatesPartitions = append(plan.UpdatesPartitions, p.UpdatesPartitions...)
	}

	var parts []checkpoint.PartitionState
	var planned []string
	if req.InitialSync {
		for _, p := range plan.Partitions {
			if !cfg.Namespaces.Selects(p.Namespace) {
				cfg.Logger.Warn("source planned a namespace outside the mapping; skipping it", "namespace", p.Namespace)
				continue
			}
			parts = append(parts, checkpoint.PartitionState{
				Index:          len(parts),
				Namespace:      p.Namespace,
				SinkNamespace:  cfg.Namespaces.Map(p.Namespace),
				Definition:     p.Cursor,
				EstimatedCount: p.EstimatedCount,
			})
			planned = append(planned, p.Namespace)
		}
	}
	var ups []checkpoint.UpdateState
	if req.Updates {
		for i, u := range plan.UpdatesPartitions {
			ups = append(ups, checkpoint.UpdateState{Index: i, Namespaces: u.Namespaces, Cursor: u.Cursor})
			planned = append(planned, u.Namespaces...)
		}
		if len(ups) == 0 {
			cfg.Logger.Warn("source planned no update stream: no change will be applied")
		}
	}
	slices.Sort(planned)
	if err := cfg.Namespaces.Check(slices.Compact(planned)); err != nil {
		return checkpoint.FlowMeta{}, err
	}

	meta := checkpoint.FlowMeta{
		ID:              id,
		Source:          orDefault(cfg.SourceDisplay, opts.Source),
		Sink:            orDefault(cfg.SinkDisplay, opts.Sink),
		Mode:            string(cfg.Mode),
		Options:         opts.canonical(),
		DsyncVersion:    cfg.DsyncVersion,
		ProtocolVersion: spi.ProtocolVersion,
		Phase:           checkpoint.PhaseCopy,
	}
	if cfg.Mode == ModeCDC {
		meta.Phase = checkpoint.PhaseCDC
	}
	if err := cfg.Store.CreateFlow(meta, parts, ups); err != nil {
		return checkpoint.FlowMeta{}, err
	}
	cfg.Logger.Info("planned flow", "flow", id, "partitions", len(parts), "update_partitions", len(ups))
	return cfg.Store.Flow(id)
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// run is the state of one Run once the flow is known.
type run struct {
	// copyIndexes is set when the source lists indexes and the user did not
	// opt out; sinkIndexes when the sink can create them.
	copyIndexes, sinkIndexes bool

	cfg   *Config
	log   *slog.Logger
	id    string
	stats *Stats

	// callerCtx is Run's context: its end is a stop.
	callerCtx context.Context
	// readCtx ends when the run stops reading: on stop, cut-over, fatal
	// error or drain timeout. writeCtx ends on a fatal error or when the
	// drain timeout expires; writes in flight at a stop go on until then.
	readCtx     context.Context
	cancelRead  context.CancelFunc
	writeCtx    context.Context
	cancelWrite context.CancelFunc

	stopOnce   sync.Once
	drainTimer *time.Timer

	mu          sync.Mutex
	err         error
	stopped     bool
	cutover     bool
	drainExpiry bool

	ckpt    *checkpointer
	acker   *acker
	streams []*stream // by update partition index; nil until CDC; guarded by mu

	docs, bytes, dropped, events atomic.Uint64
	// lostWrites counts write calls abandoned because writes were cancelled.
	lostWrites atomic.Int64
}

// fail records the first fatal error and ends the run.
func (r *run) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
		r.log.Error("run failed", "err", err)
	}
	r.mu.Unlock()
	r.cancelWrite()
}

func (r *run) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// stopping reports whether reading has stopped or is about to: readCtx
// follows a cancelled callerCtx only once the stop has run.
func (r *run) stopping() bool { return r.readCtx.Err() != nil || r.callerCtx.Err() != nil }

// stop stops reading and bounds the drain of in-flight writes.
func (r *run) stop(cutover bool) {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = !cutover
		r.cutover = cutover
		r.mu.Unlock()
		r.stats.setPhase(PhaseDraining)
		r.log.Info("stopping: draining in-flight writes", "cutover", cutover, "drain_timeout", r.cfg.DrainTimeout)
		r.cancelRead()
		t := time.AfterFunc(r.cfg.DrainTimeout, func() {
			r.mu.Lock()
			r.drainExpiry = true
			r.mu.Unlock()
			r.cancelWrite()
		})
		r.mu.Lock()
		r.drainTimer = t
		r.mu.Unlock()
	})
}

func (f *Flow) run(ctx context.Context, res Result, meta checkpoint.FlowMeta) (Result, error) {
	cfg := &f.cfg
	r := &run{cfg: cfg, log: cfg.Logger.With("flow", res.FlowID), id: res.FlowID, stats: f.stats, callerCtx: ctx,
		copyIndexes: !cfg.NoIndexes && f.srcCaps.Indexes, sinkIndexes: f.sinkIndexes}
	// Writes outlive the caller's context so that a stop can drain them.
	r.writeCtx, r.cancelWrite = context.WithCancel(context.WithoutCancel(ctx))
	r.readCtx, r.cancelRead = context.WithCancel(r.writeCtx)
	defer r.cancelWrite()
	unwatch := context.AfterFunc(ctx, func() { r.stop(false) })
	defer unwatch()
	defer func() {
		r.mu.Lock()
		if r.drainTimer != nil {
			r.drainTimer.Stop()
		}
		r.mu.Unlock()
	}()

	parts, err := cfg.Store.Partitions(r.id)
	if err != nil {
		return res, err
	}
	ups, err := cfg.Store.Updates(r.id)
	if err != nil {
		return res, err
	}
	f.initStats(parts)

	r.log.Info("flow started", "state_dir", res.StateDir, "resumed", res.Resumed, "phase", meta.Phase,
		"mode", cfg.Mode, "partitions", len(parts), "update_partitions", len(ups))
	if cfg.OnStart != nil {
		cfg.OnStart(StartInfo{FlowID: r.id, StateDir: res.StateDir, Resumed: res.Resumed, Phase: meta.Phase})
	}

	if acker, ok := cfg.Source.(spi.UpdateAcker); ok && f.srcCaps.AckUpdates && cfg.Mode != ModeInitial {
		r.acker = newAcker(r.writeCtx, acker, r.log, r.fail)
	}
	r.ckpt = newCheckpointer(cfg.Store, r.id, r.durable, r.fail)

	phaseErr := r.runPhases(meta, parts, ups)
	if ctx.Err() != nil {
		r.stop(false) // may not have run yet: see stopping
	}

	ckptErr := r.ckpt.close()
	r.acker.close()
	res.DocsCopied, res.BytesCopied = r.docs.Load(), r.bytes.Load()
	res.DocsDropped, res.EventsApplied = r.dropped.Load(), r.events.Load()
	if m, err := cfg.Store.Flow(r.id); err == nil {
		res.Phase = m.Phase
	}
	if cfg.Mode != ModeInitial {
		if ups, err := cfg.Store.Updates(r.id); err == nil {
			for _, u := range ups {
				res.Cursors = append(res.Cursors, UpdateCursor{
					Index: u.Index, Namespaces: u.Namespaces, Cursor: hex.EncodeToString(u.Cursor),
					Events: u.Events, SourceTime: u.SourceTime,
				})
			}
		}
	}

	// The first fatal error is the cause; later ones are its consequences.
	for _, err := range []error{r.failed(), phaseErr, ckptErr} {
		if err != nil {
			return res, err
		}
	}
	r.mu.Lock()
	res.Stopped, res.Cutover = r.stopped, r.cutover
	drainExpired := r.drainExpiry && r.lostWrites.Load() > 0
	r.mu.Unlock()
	if drainExpired {
		if res.Cutover {
			return res, fmt.Errorf("%w (%s)", ErrDrainTimeout, cfg.DrainTimeout)
		}
		r.log.Warn("in-flight writes did not finish within the drain timeout; they will be redone on resume",
			"drain_timeout", cfg.DrainTimeout)
	}
	r.log.Info("flow ended", "phase", res.Phase, "stopped", res.Stopped, "cutover", res.Cutover,
		"docs", res.DocsCopied, "events", res.EventsApplied)
	return res, nil
}

// runPhases moves the flow through copy, barrier and CDC as its mode says.
func (r *run) runPhases(meta checkpoint.FlowMeta, parts []checkpoint.PartitionState, ups []checkpoint.UpdateState) error {
	cfg := r.cfg
	phase := meta.Phase
	if phase == checkpoint.PhaseCopy {
		r.stats.setPhase(PhaseCopy)
		r.copy(parts)
		if err := r.ckpt.flush(); err != nil || r.failed() != nil {
			return err
		}
		m, err := cfg.Store.Flow(r.id)
		if err != nil {
			return err
		}
		if !m.CopyDone {
			if !r.stopping() {
				// Every reader returned without an error or a stop.
				return fmt.Errorf("coordinator: copy ended with partitions left (flow %s)", r.id)
			}
			return nil // stopped; the next run resumes the copy
		}
		// The barrier: every copy write has returned, so no copy write can
		// land after a CDC write. Indexes are built now, on the copied data
		// and before CDC; the step is idempotent, so a crash before the
		// phase moves on simply repeats it.
		if err := r.indexes(parts); err != nil {
			return err
		}
		phase = checkpoint.PhaseCDC
		if cfg.Mode == ModeInitial {
			phase = checkpoint.PhaseDone
		}
		if err := cfg.Store.SetPhase(r.id, phase); err != nil {
			return err
		}
		r.log.Info("copy done", "next_phase", phase)
	}
	if phase == checkpoint.PhaseCDC {
		if r.stopping() {
			return nil
		}
		r.stats.setPhase(PhaseCDC)
		r.cdc(ups)
	}
	return nil
}

func (f *Flow) initStats(parts []checkpoint.PartitionState) {
	s := f.stats
	s.partsTotal.Store(int64(len(parts)))
	for _, p := range parts {
		c := s.namespace(p.SinkNamespace)
		c.estimated.Add(int64(p.EstimatedCount))
		c.docs.Add(int64(p.Docs))
		c.bytes.Add(int64(p.Bytes))
		s.docs.Add(int64(p.Docs))
		s.bytes.Add(int64(p.Bytes))
		if p.Done {
			s.partsDone.Add(1)
		}
	}
}

// durable is called by the checkpointer after each write, in write order.
func (r *run) durable(parts []checkpoint.PartitionCheckpoint, ups []updAdvance) {
	for _, p := range parts {
		r.docs.Add(p.DocsDelta)
		r.bytes.Add(p.BytesDelta)
		if p.Done {
			r.stats.partsDone.Add(1)
		}
	}
	if len(ups) == 0 {
		return
	}
	r.mu.Lock()
	streams := r.streams
	r.mu.Unlock()
	for _, u := range ups {
		r.events.Add(u.EventsDelta)
		if u.Index < len(streams) && streams[u.Index] != nil {
			streams[u.Index].durable(u)
		}
		r.acker.submit(u.Index, u.Cursor)
	}
}
