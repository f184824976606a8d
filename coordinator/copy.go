package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/sync/semaphore"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// copier runs the copy: Parallel readers, each reading one partition at a
// time page by page, feed Writers writers through a bounded queue. Every page
// holds its size in the in-flight semaphore from the moment it is admitted
// until all its documents are written.
type copier struct {
	r       *run
	sem     *semaphore.Weighted
	batches chan *writeBatch
}

// partRun tracks the pages of one partition that are read and not yet
// handed to the checkpointer.
type partRun struct {
	st checkpoint.PartitionState

	mu    sync.Mutex
	pages []*page // in seq order
}

// page is one ListData page on its way to the sink.
type page struct {
	part    *partRun
	seq     uint64
	next    []byte
	weight  int64
	pending int // write batches not yet acknowledged; guarded by part.mu
	docs    uint64
	bytes   uint64
}

// writeBatch is one WriteData call.
type writeBatch struct {
	ns    string
	docs  []bson.Raw
	bytes int
	page  *page
}

func (r *run) copy(parts []checkpoint.PartitionState) {
	var todo []*partRun
	for _, p := range parts {
		if !p.Done {
			todo = append(todo, &partRun{st: p})
		}
	}
	if len(todo) == 0 {
		return
	}
	c := &copier{
		r:       r,
		sem:     semaphore.NewWeighted(r.cfg.MaxInflight),
		batches: make(chan *writeBatch, r.cfg.Writers),
	}

	work := make(chan *partRun)
	go func() {
		defer close(work)
		for _, p := range todo {
			select {
			case work <- p:
			case <-r.readCtx.Done():
				return
			}
		}
	}()

	var readers, writers sync.WaitGroup
	for range r.cfg.Writers {
		writers.Go(func() {
			for b := range c.batches {
				c.write(b)
			}
		})
	}
	for range min(r.cfg.Parallel, len(todo)) {
		readers.Go(func() {
			for p := range work {
				if err := c.readPartition(p); err != nil {
					r.fail(err)
				}
			}
		})
	}
	readers.Wait()
	close(c.batches)
	writers.Wait()
}

// readPartition copies one partition from its stored cursor to its end, or
// until the run stops reading.
func (c *copier) readPartition(p *partRun) error {
	r := c.r
	cfg := r.cfg
	part := spi.Partition{Namespace: p.st.Namespace, Cursor: p.st.Definition, EstimatedCount: p.st.EstimatedCount}
	cursor, seq := p.st.Cursor, p.st.Seq
	for !r.stopping() {
		var pg spi.Page
		err := retry(r.readCtx, cfg.Retry, r.log, "read partition", func(ctx context.Context) (err error) {
			pg, err = cfg.Source.ListData(ctx, part, cursor)
			return err
		})
		if err != nil {
			if r.readCtx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read partition %d of namespace %q: %w", p.st.Index, p.st.Namespace, err)
		}
		if len(pg.Docs) == 0 && len(pg.NextCursor) > 0 && bytes.Equal(pg.NextCursor, cursor) {
			return spi.Fatal(fmt.Errorf("read partition %d of namespace %q: source returned an empty page and the same cursor: the copy would never end",
				p.st.Index, p.st.Namespace))
		}
		var size int64
		for _, d := range pg.Docs {
			size += int64(len(d))
		}
		// A page larger than the bound takes all of it, so it runs alone.
		weight := min(size, cfg.MaxInflight)
		if err := c.sem.Acquire(r.readCtx, weight); err != nil {
			return nil
		}
		out, err := r.transformDocs(r.readCtx, p.st.SinkNamespace, pg.Docs)
		if err != nil {
			c.sem.Release(weight)
			if r.readCtx.Err() != nil {
				return nil
			}
			return err
		}
		seq++
		pgs := &page{part: p, seq: seq, next: pg.NextCursor, weight: weight}
		batches := splitDocs(out, cfg.BatchBytes)
		pgs.pending = len(batches)
		for _, b := range batches {
			b.page = pgs
			pgs.docs += uint64(len(b.docs))
			pgs.bytes += uint64(b.bytes)
		}
		p.mu.Lock()
		p.pages = append(p.pages, pgs)
		if pgs.pending == 0 {
			c.pageDoneLocked(pgs)
		}
		p.mu.Unlock()
		for _, b := range batches {
			c.batches <- b
		}
		if len(pg.NextCursor) == 0 {
			return nil
		}
		cursor = pg.NextCursor
	}
	return nil
}

// write writes one batch, retrying retryable errors. Once writes are
// cancelled (fatal error or drain timeout) batches are dropped unwritten:
// their pages are never checkpointed, so the next run reads them again.
func (c *copier) write(b *writeBatch) {
	r := c.r
	if r.writeCtx.Err() != nil {
		r.lostWrites.Add(1)
		return
	}
	err := retry(r.writeCtx, r.cfg.Retry, r.log, "write", func(ctx context.Context) error {
		return r.cfg.Sink.WriteData(ctx, b.ns, b.docs)
	})
	if err != nil {
		if r.writeCtx.Err() != nil {
			r.lostWrites.Add(1)
			return
		}
		r.fail(fmt.Errorf("write to sink namespace %q: %w", b.ns, err))
		return
	}
	r.stats.addDocs(b.ns, int64(len(b.docs)), int64(b.bytes))
	p := b.page.part
	p.mu.Lock()
	b.page.pending--
	if b.page.pending == 0 {
		c.pageDoneLocked(b.page)
	}
	p.mu.Unlock()
}

// pageDoneLocked hands the partition's contiguous prefix of written pages to
// the checkpointer: its cursor moves to page k's next cursor only when pages
// 1..k are all written. A page's in-flight allowance is released only when
// it leaves that prefix, not when it is written: otherwise one stalled page
// would let its partition write arbitrarily far past the checkpoint, and a
// crash would re-copy all of it. The caller holds pg.part.mu, which keeps one
// partition's advances in seq order.
func (c *copier) pageDoneLocked(pg *page) {
	p := pg.part
	var adv checkpoint.PartitionCheckpoint
	n := 0
	for n < len(p.pages) && p.pages[n].pending == 0 {
		head := p.pages[n]
		c.sem.Release(head.weight)
		adv.Seq, adv.Cursor = head.seq, head.next
		adv.DocsDelta += head.docs
		adv.BytesDelta += head.bytes
		n++
	}
	if n == 0 {
		return
	}
	p.pages = p.pages[n:]
	adv.Index = p.st.Index
	adv.Done = len(adv.Cursor) == 0
	c.r.ckpt.addPartition(adv)
}

// splitDocs cuts batches into write batches of at most maxBytes; a larger
// document is written alone.
func splitDocs(in []spi.DataBatch, maxBytes int) []*writeBatch {
	var out []*writeBatch
	for _, b := range in {
		var cur *writeBatch
		for _, d := range b.Docs {
			if cur != nil && cur.bytes+len(d) > maxBytes {
				out = append(out, cur)
				cur = nil
			}
			if cur == nil {
				cur = &writeBatch{ns: b.Namespace}
			}
			cur.docs = append(cur.docs, d)
			cur.bytes += len(d)
		}
		if cur != nil {
			out = append(out, cur)
		}
	}
	return out
}
