package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/sync/semaphore"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// laneQueue is the capacity of a lane's queue, in updates. The in-flight
// semaphore bounds the bytes; this only bounds the items.
const laneQueue = 1024

// cdcer applies the update streams: one goroutine per update partition
// receives batches and routes every update to lane hash(namespace, id) %
// Writers, so that the changes of one document are applied in order and
// different documents in parallel.
type cdcer struct {
	r        *run
	streamer spi.UpdateStreamer
	sem      *semaphore.Weighted
	lanes    []chan laneItem
	seed     maphash.Seed
}

// stream is one update partition.
type stream struct {
	idx        int
	namespaces []string

	mu      sync.Mutex
	seq     uint64    // of the last batch received
	last    []byte    // cursor of the last batch received
	batches []*ubatch // received, not yet handed to the checkpointer
	idle    []chan struct{}

	// Durable state, for reopening and for the lag.
	durableCursor []byte
	sourceTime    time.Time
	caughtUp      bool
	belowSince    time.Time // monitor's; zero while lag >= UntilLag
	// interrupted is set from a stream failure until the reopened stream
	// delivers a batch: meanwhile nothing is known of the source's
	// progress, so the stream is never caught up and never settled.
	interrupted bool
}

// ubatch is one received UpdateBatch.
type ubatch struct {
	s          *stream
	seq        uint64
	cursor     []byte
	sourceTime time.Time
	events     int
	heartbeat  bool
	weight     int64
	pending    int // updates not yet applied; guarded by s.mu
}

type laneItem struct {
	ns   string
	u    spi.Update
	size int
	b    *ubatch
}

func (r *run) cdc(ups []checkpoint.UpdateState) {
	c := &cdcer{
		r:        r,
		streamer: r.cfg.Source.(spi.UpdateStreamer), // checked before planning
		sem:      semaphore.NewWeighted(r.cfg.MaxInflight),
		lanes:    make([]chan laneItem, r.cfg.Writers),
		seed:     maphash.MakeSeed(),
	}
	streams := make([]*stream, 0, len(ups))
	byIndex := make([]*stream, 0)
	for _, u := range ups {
		s := &stream{
			idx:           u.Index,
			namespaces:    u.Namespaces,
			seq:           u.Seq,
			last:          u.Cursor,
			durableCursor: u.Cursor,
			sourceTime:    u.SourceTime,
		}
		streams = append(streams, s)
		for len(byIndex) <= u.Index {
			byIndex = append(byIndex, nil)
		}
		byIndex[u.Index] = s
	}
	r.mu.Lock()
	r.streams = byIndex
	r.mu.Unlock()

	var lanes sync.WaitGroup
	for i := range c.lanes {
		c.lanes[i] = make(chan laneItem, laneQueue)
		lanes.Go(func() { c.lane(c.lanes[i]) })
	}
	monitorDone := make(chan struct{})
	var monitor sync.WaitGroup
	monitor.Go(func() { c.monitor(streams, monitorDone) })

	var readers sync.WaitGroup
	for _, s := range streams {
		readers.Go(func() {
			if err := c.runStream(s); err != nil {
				r.fail(err)
			}
		})
	}
	readers.Wait()
	// Streams only return once reading stops; without streams, wait for
	// that too: CDC never ends by itself.
	<-r.readCtx.Done()
	for _, l := range c.lanes {
		close(l)
	}
	lanes.Wait()
	close(monitorDone)
	monitor.Wait()
}

func (s *stream) String() string {
	return fmt.Sprintf("update partition %d (%s)", s.idx, strings.Join(s.namespaces, ","))
}

// runStream follows one update partition until reading stops. A stream that
// fails with a retryable error, or ends, is reopened from its last durable
// cursor once its received updates are applied and checkpointed.
func (c *cdcer) runStream(s *stream) error {
	r := c.r
	failures := 0
	var firstFailure time.Time
	for {
		s.mu.Lock()
		req := spi.StreamRequest{Namespaces: s.namespaces, Cursor: s.durableCursor}
		s.mu.Unlock()
		progressed := false
		var dispatchErr error
		err := c.streamer.StreamUpdates(r.readCtx, req, func(b spi.UpdateBatch) error {
			if err := c.dispatch(s, b); err != nil {
				dispatchErr = err
				return err
			}
			if !progressed {
				s.mu.Lock()
				s.interrupted = false
				s.mu.Unlock()
			}
			progressed = true
			return nil
		})
		if r.readCtx.Err() != nil {
			return nil
		}
		if dispatchErr != nil {
			return dispatchErr
		}
		if err == nil {
			err = spi.Retryable(ErrStreamEnded)
		}
		if !spi.IsRetryable(err) {
			return fmt.Errorf("stream %s: %w", s, err)
		}
		s.mu.Lock()
		s.interrupted, s.caughtUp, s.belowSince = true, false, time.Time{}
		s.mu.Unlock()
		if progressed || failures == 0 {
			failures, firstFailure = 0, time.Now()
		}
		failures++
		if failures >= r.cfg.Retry.MaxConsecutiveFailures && time.Since(firstFailure) >= r.cfg.Retry.StreamOutage {
			return fmt.Errorf("stream %s: %w", s, exhausted(failures, err))
		}
		wait := r.cfg.Retry.backoff(failures)
		r.log.Warn("update stream interrupted; reopening it from its checkpoint", "stream", s.String(),
			"attempt", failures, "wait", wait, "err", err)
		if !s.waitIdle(r.readCtx) {
			return nil
		}
		if err := r.ckpt.flush(); err != nil {
			return nil // the checkpointer failed the run
		}
		if sleep(r.readCtx, wait) != nil {
			return nil
		}
	}
}

// dispatch maps, transforms and routes one batch. It blocks while the
// in-flight bound is reached, which slows the stream down.
func (c *cdcer) dispatch(s *stream, b spi.UpdateBatch) error {
	r := c.r
	ub := &ubatch{
		s:          s,
		sourceTime: b.SourceTime,
		events:     len(b.Updates),
		heartbeat:  len(b.Updates) == 0,
	}
	if len(b.Updates) > 0 && b.Namespace == "" {
		return spi.Fatal(fmt.Errorf("stream %s: source sent %d updates without a namespace", s, len(b.Updates)))
	}
	var items []laneItem
	var size int64
	// Changes of namespaces outside the mapping (a database-wide stream)
	// are skipped, yet still move the cursor.
	if len(b.Updates) > 0 && r.cfg.Namespaces.Selects(b.Namespace) {
		out, err := r.transformUpdates(r.readCtx, r.cfg.Namespaces.Map(b.Namespace), b.Updates)
		if err != nil {
			return err
		}
		for _, ob := range out {
			for _, u := range ob.Updates {
				n := updateSize(u)
				items = append(items, laneItem{ns: ob.Namespace, u: u, size: n, b: ub})
				size += int64(n)
			}
		}
	}
	weight := min(size, r.cfg.MaxInflight)
	if err := c.sem.Acquire(r.readCtx, weight); err != nil {
		return err
	}
	ub.weight = weight
	ub.pending = len(items)

	s.mu.Lock()
	s.seq++
	ub.seq = s.seq
	if len(b.NextCursor) > 0 {
		s.last = bytes.Clone(b.NextCursor)
	}
	ub.cursor = s.last
	s.batches = append(s.batches, ub)
	if ub.pending == 0 {
		c.batchDoneLocked(ub)
	}
	s.mu.Unlock()

	for _, it := range items {
		c.lanes[c.laneOf(it.ns, it.u.ID)] <- it
	}
	return nil
}

// laneOf hashes the namespace and the id. Integral numeric ids hash by value
// so that 1, int64(1) and 1.0, which are one _id to MongoDB, share a lane.
func (c *cdcer) laneOf(ns string, id bson.RawValue) int {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(ns)
	h.WriteByte(0)
	if v, ok := integralID(id); ok {
		h.WriteByte(byte(bson.TypeInt64))
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	} else {
		h.WriteByte(byte(id.Type))
		h.Write(id.Value)
	}
	return int(h.Sum64() % uint64(len(c.lanes)))
}

func integralID(id bson.RawValue) (int64, bool) {
	switch id.Type {
	case bson.TypeInt32:
		if v, ok := id.Int32OK(); ok {
			return int64(v), true
		}
	case bson.TypeInt64:
		return id.Int64OK()
	case bson.TypeDouble:
		if f, ok := id.DoubleOK(); ok && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), true
		}
	}
	return 0, false
}

func updateSize(u spi.Update) int {
	n := len(u.ID.Value) + len(u.Doc) + 16
	for _, f := range u.Unset {
		n += len(f)
	}
	return n
}

// lane applies its updates in arrival order, grouping consecutive updates
// of one namespace into one WriteUpdates call of at most BatchBytes.
func (c *cdcer) lane(ch <-chan laneItem) {
	var carry laneItem
	haveCarry := false
	for {
		var first laneItem
		if haveCarry {
			first, haveCarry = carry, false
		} else {
			it, ok := <-ch
			if !ok {
				return
			}
			first = it
		}
		group := []laneItem{first}
		size := first.size
	collect:
		for {
			select {
			case it, ok := <-ch:
				if !ok {
					break collect
				}
				if it.ns != first.ns || size+it.size > c.r.cfg.BatchBytes {
					carry, haveCarry = it, true
					break collect
				}
				group = append(group, it)
				size += it.size
			default:
				break collect
			}
		}
		c.apply(group)
	}
}

// apply writes one group; once writes are cancelled, groups are dropped and
// their batches never checkpointed.
func (c *cdcer) apply(group []laneItem) {
	r := c.r
	if r.writeCtx.Err() != nil {
		r.lostWrites.Add(1)
		return
	}
	ns := group[0].ns
	ups := make([]spi.Update, len(group))
	for i, it := range group {
		ups[i] = it.u
	}
	err := retry(r.writeCtx, r.cfg.Retry, r.log, "write updates", func(ctx context.Context) error {
		return r.cfg.Sink.WriteUpdates(ctx, ns, ups)
	})
	if err != nil {
		if r.writeCtx.Err() != nil {
			r.lostWrites.Add(1)
			return
		}
		r.fail(fmt.Errorf("write updates to sink namespace %q: %w", ns, err))
		return
	}
	// Consecutive updates mostly come from one batch: one lock per run.
	for i := 0; i < len(group); {
		b := group[i].b
		n := 1
		for i+n < len(group) && group[i+n].b == b {
			n++
		}
		i += n
		b.s.mu.Lock()
		b.pending -= n
		if b.pending == 0 {
			c.batchDoneLocked(b)
		}
		b.s.mu.Unlock()
	}
}

// batchDoneLocked frees an applied batch and hands the stream's contiguous
// prefix of applied batches to the checkpointer: the cursor of batch k is
// checkpointed only when batches 1..k are applied. The caller holds b.s.mu.
func (c *cdcer) batchDoneLocked(b *ubatch) {
	c.sem.Release(b.weight)
	c.r.stats.events.Add(int64(b.events))
	s := b.s
	var adv updAdvance
	n := 0
	for n < len(s.batches) && s.batches[n].pending == 0 {
		head := s.batches[n]
		adv.Seq, adv.Cursor = head.seq, head.cursor
		adv.EventsDelta += uint64(head.events)
		if !head.sourceTime.IsZero() {
			adv.SourceTime = head.sourceTime
		}
		adv.caughtUp = head.heartbeat
		n++
	}
	if n == 0 {
		return
	}
	s.batches = s.batches[n:]
	adv.Index = s.idx
	c.r.ckpt.addUpdates(adv)
	if len(s.batches) == 0 {
		for _, ch := range s.idle {
			close(ch)
		}
		s.idle = nil
	}
}

// waitIdle waits until every received batch is handed to the checkpointer.
// It returns false if ctx ends first.
func (s *stream) waitIdle(ctx context.Context) bool {
	s.mu.Lock()
	if len(s.batches) == 0 {
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	s.idle = append(s.idle, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// durable records a written checkpoint of the stream.
func (s *stream) durable(a updAdvance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.durableCursor = a.Cursor
	if !a.SourceTime.IsZero() {
		s.sourceTime = a.SourceTime
	}
	s.caughtUp = a.caughtUp && !s.interrupted
}

// lag is the age of the last durable change, 0 when the last durable batch
// was a heartbeat and nothing is pending; known is false before any source
// time is known.
func (s *stream) lag(now time.Time) (lag time.Duration, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caughtUp && len(s.batches) == 0 {
		return 0, true
	}
	if s.sourceTime.IsZero() {
		return 0, false
	}
	return max(now.Sub(s.sourceTime), 0), true
}

// monitor publishes the lag and, with UntilLag, triggers the cut-over once
// every stream's lag has stayed below it for the settle window.
func (c *cdcer) monitor(streams []*stream, done <-chan struct{}) {
	r := c.r
	tick := 250 * time.Millisecond
	if r.cfg.UntilLag > 0 {
		tick = min(max(r.cfg.Settle/5, 5*time.Millisecond), tick)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	for {
		now := time.Now()
		var worst time.Duration
		allKnown := true
		// Without streams the settle window counts from the start of CDC.
		settled := now.Sub(start) >= r.cfg.Settle
		for _, s := range streams {
			lag, known := s.lag(now)
			if !known {
				allKnown, settled = false, false
				continue
			}
			worst = max(worst, lag)
			if r.cfg.UntilLag <= 0 {
				continue
			}
			s.mu.Lock()
			if lag >= r.cfg.UntilLag || s.interrupted {
				s.belowSince = time.Time{}
			} else if s.belowSince.IsZero() {
				s.belowSince = now
			}
			if s.belowSince.IsZero() || now.Sub(s.belowSince) < r.cfg.Settle {
				settled = false
			}
			s.mu.Unlock()
		}
		r.stats.setLag(worst, allKnown)
		if r.cfg.UntilLag > 0 && settled {
			r.log.Info("CDC lag stayed below the bound for the settle window: cutting over",
				"until_lag", r.cfg.UntilLag, "settle", r.cfg.Settle, "lag", worst)
			r.stop(true)
		}
		select {
		case <-done:
			return
		case <-r.readCtx.Done():
			return
		case <-t.C:
		}
	}
}
