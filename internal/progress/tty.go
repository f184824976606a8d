package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// TTY draws a bar per namespace (docs, rate, ETA) and a change-stream line.
type TTY struct {
	out    io.Writer
	mu     sync.Mutex // guards closed
	closed bool
	p      *mpb.Progress
	bars   map[string]*mpb.Bar
	cdc    *mpb.Bar
	snap   Snapshot
	r      rate
}

// NewTTY returns a renderer drawing on w, which should be a terminal.
func NewTTY(w io.Writer) *TTY {
	return &TTY{
		out:  w,
		p:    mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh()),
		bars: map[string]*mpb.Bar{},
	}
}

func (t *TTY) bar(ns Namespace) *mpb.Bar {
	if b, ok := t.bars[ns.Name]; ok {
		return b
	}
	name := ns.Name
	b := t.p.AddBar(int64(max(ns.EstimatedDocs, 1)),
		mpb.PrependDecorators(
			decor.Name(name, decor.WCSyncSpaceR),
			decor.CountersNoUnit("%d/%d docs", decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.Percentage(decor.WCSyncSpace),
			decor.AverageSpeed(nil, "%.0f docs/s", decor.WCSyncSpace),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), "done"),
		),
	)
	t.bars[name] = b
	return b
}

// Update implements Renderer.
func (t *TTY) Update(s Snapshot) {
	t.snap = s
	t.r.update(s.Time, s.Docs(), s.Bytes())
	for _, ns := range sortedNamespaces(s) {
		b := t.bar(ns)
		total := int64(max(ns.EstimatedDocs, ns.Docs))
		done := ns.PartitionsAll > 0 && ns.PartitionsDone == ns.PartitionsAll
		if done {
			total = int64(ns.Docs)
		}
		b.SetTotal(max(total, 1), false)
		b.SetCurrent(int64(ns.Docs))
		if done && !b.Completed() {
			b.SetTotal(int64(ns.Docs), true)
		}
	}
	if s.Phase == "cdc" && t.cdc == nil {
		t.cdc = t.p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf("changes  %d events applied, lag %s", t.snap.Events, t.snap.Lag.Round(100*time.Millisecond))
		})))
	}
}

// Write prints log lines above the bars, so logs and bars share a terminal
// without tearing; after Close it writes straight through.
func (t *TTY) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return t.out.Write(b)
	}
	return t.p.Write(b)
}

// Close implements Renderer.
func (t *TTY) Close(s Snapshot) {
	t.Update(s)
	defer func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
	}()
	for _, b := range t.bars {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	if t.cdc != nil {
		t.cdc.Abort(false)
	}
	t.p.Wait()
}
