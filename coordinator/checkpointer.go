package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// updAdvance is an update partition's checkpoint plus what the lag needs.
type updAdvance struct {
	checkpoint.UpdateCheckpoint
	// caughtUp: the last batch covered was a heartbeat.
	caughtUp bool
}

// checkpointer is the single writer of positions (group commit): producers
// add advances, which are merged per partition, and one goroutine writes
// whatever accumulated in one atomic synced batch. Producers never wait for
// the disk; many partitions advancing at once cost one fsync.
//
// A producer must add the advances of one partition in order (seq
// increasing); merging keeps the highest seq and sums the deltas.
type checkpointer struct {
	store     Store
	flowID    string
	onDurable func([]checkpoint.PartitionCheckpoint, []updAdvance)
	fail      func(error)

	mu      sync.Mutex
	cond    *sync.Cond
	parts   map[int]checkpoint.PartitionCheckpoint
	ups     map[int]updAdvance
	gen     uint64 // advances added
	durable uint64 // advances written
	closing bool
	err     error

	wake chan struct{}
	done chan struct{}
}

func newCheckpointer(store Store, flowID string, onDurable func([]checkpoint.PartitionCheckpoint, []updAdvance), fail func(error)) *checkpointer {
	c := &checkpointer{
		store:     store,
		flowID:    flowID,
		onDurable: onDurable,
		fail:      fail,
		parts:     make(map[int]checkpoint.PartitionCheckpoint),
		ups:       make(map[int]updAdvance),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

func (c *checkpointer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) addPartition(a checkpoint.PartitionCheckpoint) {
	c.mu.Lock()
	if prev, ok := c.parts[a.Index]; ok {
		a.DocsDelta += prev.DocsDelta
		a.BytesDelta += prev.BytesDelta
	}
	c.parts[a.Index] = a
	c.gen++
	c.mu.Unlock()
	c.signal()
}

func (c *checkpointer) addUpdates(a updAdvance) {
	c.mu.Lock()
	if prev, ok := c.ups[a.Index]; ok {
		a.EventsDelta += prev.EventsDelta
		if a.SourceTime.IsZero() {
			a.SourceTime = prev.SourceTime
		}
	}
	c.ups[a.Index] = a
	c.gen++
	c.mu.Unlock()
	c.signal()
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for range c.wake {
		c.mu.Lock()
		parts, ups, gen := c.parts, c.ups, c.gen
		c.parts = make(map[int]checkpoint.PartitionCheckpoint)
		c.ups = make(map[int]updAdvance)
		c.mu.Unlock()

		if len(parts) > 0 || len(ups) > 0 {
			pl := slices.SortedFunc(maps.Values(parts), func(a, b checkpoint.PartitionCheckpoint) int { return cmp.Compare(a.Index, b.Index) })
			ul := slices.SortedFunc(maps.Values(ups), func(a, b updAdvance) int { return cmp.Compare(a.Index, b.Index) })
			cps := make([]checkpoint.UpdateCheckpoint, len(ul))
			for i, u := range ul {
				cps[i] = u.UpdateCheckpoint
			}
			if err := c.store.Checkpoint(c.flowID, pl, cps); err != nil {
				c.mu.Lock()
				c.err = err
				c.cond.Broadcast()
				c.mu.Unlock()
				c.fail(err)
				return
			}
			c.onDurable(pl, ul)
		}

		c.mu.Lock()
		c.durable = gen
		c.cond.Broadcast()
		exit := c.closing && c.gen == c.durable
		c.mu.Unlock()
		if exit {
			return
		}
	}
}

// flush waits until every advance added so far is durable.
func (c *checkpointer) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.gen
	for c.durable < target && c.err == nil {
		c.cond.Wait()
	}
	return c.err
}

// close writes what is left and stops the writer. Advances added afterwards
// are ignored.
func (c *checkpointer) close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.signal()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// acker calls AckUpdates on the source with cursors that are already durable,
// off the checkpoint path so that a slow source does not delay checkpoints.
// Only the newest cursor of each update partition is acknowledged.
type acker struct {
	src  spi.UpdateAcker
	ctx  context.Context
	log  *slog.Logger
	fail func(error)

	mu       sync.Mutex
	pending  map[int][]byte
	closing  bool
	disabled bool

	wake chan struct{}
	done chan struct{}
}

func newAcker(ctx context.Context, src spi.UpdateAcker, log *slog.Logger, fail func(error)) *acker {
	a := &acker{
		src:     src,
		ctx:     ctx,
		log:     log,
		fail:    fail,
		pending: make(map[int][]byte),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go a.loop()
	return a
}

// submit queues cursor, which must be durable, for partition idx.
func (a *acker) submit(idx int, cursor []byte) {
	if a == nil || len(cursor) == 0 {
		return
	}
	a.mu.Lock()
	a.pending[idx] = cursor
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *acker) loop() {
	defer close(a.done)
	for range a.wake {
		a.mu.Lock()
		pending, closing, disabled := a.pending, a.closing, a.disabled
		a.pending = make(map[int][]byte)
		a.mu.Unlock()
		for _, idx := range slices.Sorted(maps.Keys(pending)) {
			if disabled || a.ctx.Err() != nil {
				break
			}
			err := a.src.AckUpdates(a.ctx, pending[idx])
			switch {
			case err == nil, a.ctx.Err() != nil:
			case spi.KindOf(err) == spi.KindUnimplemented:
				a.log.Info("source does not take update acknowledgements", "err", err)
				disabled = true
				a.mu.Lock()
				a.disabled = true
				a.mu.Unlock()
			case spi.IsRetryable(err):
				// The next acknowledgement covers this one.
				a.log.Warn("acknowledging updates to the source failed; will acknowledge a later position",
					"update_partition", idx, "err", err)
			default:
				a.fail(fmt.Errorf("acknowledge updates of update partition %d to the source: %w", idx, err))
				disabled = true
			}
		}
		if closing {
			return
		}
	}
}

// close acknowledges what is queued and stops.
func (a *acker) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	<-a.done
}
