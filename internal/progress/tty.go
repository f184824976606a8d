package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// TTY draws a bar per namespace (docs, rate, ETA) and a change-stream line.
type TTY struct {
	p    *mpb.Progress
	bars map[string]*mpb.Bar
	last map[string]time.Time
	cdc  *mpb.Bar
	snap Snapshot
	r    rate
}

// NewTTY returns a renderer drawing on w, which should be a terminal.
func NewTTY(w io.Writer) *TTY {
	return &TTY{
		p:    mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh()),
		bars: map[string]*mpb.Bar{},
		last: map[string]time.Time{},
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
			decor.EwmaSpeed(nil, "%.0f docs/s", 30, decor.WCSyncSpace),
			decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "done"),
		),
	)
	t.bars[name] = b
	t.last[name] = time.Now()
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
		now := time.Now()
		b.EwmaSetCurrent(int64(ns.Docs), now.Sub(t.last[ns.Name]))
		t.last[ns.Name] = now
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

// Close implements Renderer.
func (t *TTY) Close(s Snapshot) {
	t.Update(s)
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
