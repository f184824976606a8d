package random

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// Version is the connector version reported by Info.
const Version = "1"

const (
	// maxBatchEvents bounds the updates of one StreamUpdates batch.
	maxBatchEvents = 100
	// heartbeatInterval is how often an idle update stream sends a
	// heartbeat.
	heartbeatInterval = time.Second
	// lsnInterval is how often StreamLSN reports.
	lsnInterval = time.Second
	// ctxCheckEvery is how many replayed or skipped events pass between
	// context checks.
	ctxCheckEvery = 1 << 16
)

var (
	_ sdk.Source         = (*Connector)(nil)
	_ sdk.UpdateStreamer = (*Connector)(nil)
	_ sdk.UpdateAcker    = (*Connector)(nil)
	_ sdk.LSNStreamer    = (*Connector)(nil)
	_ sdk.IDGetter       = (*Connector)(nil)
)

// Connector is the random:// source. Its methods are safe for concurrent
// use.
type Connector struct {
	ds atomic.Pointer[dataset]
}

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// dataset is the configured, immutable state plus the lazily fixed event
// clock.
type dataset struct {
	o          Options
	index      map[string]int
	configured time.Time

	mu       sync.Mutex
	epoch    time.Time
	epochSet bool
}

// Configure parses cfg.URL; cfg.Settings may hold the same options as the
// URL query.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := parseConfig(cfg.URL, cfg.Settings)
	if err != nil {
		return err
	}
	d := &dataset{o: o, index: make(map[string]int, o.Namespaces), configured: time.Now()}
	for ns := range o.Namespaces {
		d.index[o.NamespaceName(ns)] = ns
	}
	c.ds.Store(d)
	return nil
}

// Options returns the configured options, and false before Configure.
func (c *Connector) Options() (Options, bool) {
	d := c.ds.Load()
	if d == nil {
		return Options{}, false
	}
	return d.o, true
}

func (c *Connector) dataset() (*dataset, error) {
	d := c.ds.Load()
	if d == nil {
		return nil, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return d, nil
}

// Info describes the dataset; its ID is Options.ID.
func (c *Connector) Info(ctx context.Context) (sdk.Info, error) {
	d, err := c.dataset()
	if err != nil {
		return sdk.Info{}, err
	}
	return sdk.Info{
		ID:      d.o.ID(),
		DBType:  "random",
		Version: Version,
		Source: &sdk.SourceCapabilities{
			MultiNamespacePlan: true,
			DefaultPlan:        true,
			GetByIDs:           true,
			Updates:            true,
			AckUpdates:         true,
			LSNStream:          true,
		},
	}, nil
}

// NamespaceMetadata returns the exact count and size of a namespace.
func (c *Connector) NamespaceMetadata(ctx context.Context, namespace string) (sdk.NamespaceMetadata, error) {
	d, err := c.dataset()
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	if _, err := d.ns(namespace); err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	return sdk.NamespaceMetadata{
		Count:     uint64(d.o.Docs),
		SizeBytes: uint64(d.o.Docs) * uint64(d.o.DocSize()),
	}, nil
}

// GeneratePlan splits each namespace into Options.Partitions contiguous
// ranges of _id (one empty partition for an empty namespace) and returns one
// update partition for all planned namespaces, at event position 0.
func (c *Connector) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	d, err := c.dataset()
	if err != nil {
		return sdk.Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return sdk.Plan{}, err
	}
	nss, err := d.plannedNamespaces(req.Namespaces)
	if err != nil {
		return sdk.Plan{}, err
	}
	o := d.o
	var plan sdk.Plan
	if req.InitialSync {
		parts := o.planPartitions()
		for _, ns := range nss {
			for k := range parts {
				pc := partitionCursor{ns: ns, lo: o.Docs * k / parts, hi: o.Docs * (k + 1) / parts}
				plan.Partitions = append(plan.Partitions, sdk.Partition{
					Namespace:      o.NamespaceName(ns),
					Cursor:         pc.encode(),
					EstimatedCount: uint64(pc.hi - pc.lo),
				})
			}
		}
	}
	if req.Updates {
		names := make([]string, len(nss))
		for k, ns := range nss {
			names[k] = o.NamespaceName(ns)
		}
		plan.UpdatesPartitions = []sdk.UpdatesPartition{{Namespaces: names, Cursor: encodePos(prefixUpdates, 0)}}
	}
	return plan, nil
}

// ListData returns up to Options.Page documents (and at most 4 MiB) of p
// from cursor. It keeps no state: the cursor is the next index.
func (c *Connector) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	d, err := c.dataset()
	if err != nil {
		return sdk.Page{}, err
	}
	if err := ctx.Err(); err != nil {
		return sdk.Page{}, err
	}
	o := d.o
	pc, err := o.decodePartition(p.Cursor)
	if err != nil {
		return sdk.Page{}, err
	}
	if p.Namespace != o.NamespaceName(pc.ns) {
		return sdk.Page{}, sdk.InvalidArgument("random: partition of namespace %q has the cursor of %q: pass the partition as planned", p.Namespace, o.NamespaceName(pc.ns))
	}
	pos, err := o.decodePos(prefixData, "ListData", cursor, pc.lo, pc.hi)
	if err != nil {
		return sdk.Page{}, err
	}
	size := o.DocSize()
	n := min(pc.hi-pos, int64(o.Page), int64(max(pageBytes/size, 1)))
	// One buffer per page; the capacity of each document is capped so that
	// appending to one cannot overwrite the next.
	buf := make([]byte, 0, int(n)*size)
	docs := make([]bson.Raw, n)
	plen := o.payloadLen()
	for k := range n {
		start := len(buf)
		buf = appendDoc(buf, o.Seed, pc.ns, pos+k, 0, plen)
		docs[k] = bson.Raw(buf[start:len(buf):len(buf)])
	}
	page := sdk.Page{Docs: docs}
	if next := pos + n; next < pc.hi {
		page.NextCursor = encodePos(prefixData, next)
	}
	return page, nil
}

// GetByIDs returns the initial documents (before any update event) of the
// int32 or int64 ids, nil for other ids.
func (c *Connector) GetByIDs(ctx context.Context, namespace string, ids []bson.RawValue) ([]bson.Raw, error) {
	d, err := c.dataset()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns, err := d.ns(namespace)
	if err != nil {
		return nil, err
	}
	out := make([]bson.Raw, len(ids))
	for k, v := range ids {
		if i, ok := idOf(v); ok && i >= 0 && i < d.o.Docs {
			out[k] = d.o.Doc(ns, i)
		}
	}
	return out, nil
}

// AckUpdates checks the cursor; the generated stream holds no resources.
func (c *Connector) AckUpdates(ctx context.Context, cursor []byte) error {
	d, err := c.dataset()
	if err != nil {
		return err
	}
	_, err = d.o.decodePos(prefixUpdates, "updates", cursor, 0, d.o.Updates)
	return err
}

// StreamUpdates sends the events from req.Cursor on, in batches of
// consecutive events of one namespace, then heartbeats: one as soon as the
// last event is sent, then one every second. With a rate, it waits for each
// event to be produced and sends heartbeats while idle.
func (c *Connector) StreamUpdates(ctx context.Context, req sdk.StreamRequest, send func(sdk.UpdateBatch) error) error {
	d, err := c.dataset()
	if err != nil {
		return err
	}
	o := d.o
	filter, err := d.filter(req.Namespaces)
	if err != nil {
		return err
	}
	seq, err := o.decodePos(prefixUpdates, "updates", req.Cursor, 0, o.Updates)
	if err != nil {
		return err
	}
	g := newEventGen(o)
	for g.seq < seq {
		if g.seq%ctxCheckEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		g.step()
	}
	clk := d.clock(seq)
	var timer *time.Timer
	var last time.Time // of the last send
	endSent := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		if avail := clk.available(now); g.seq < avail {
			b, err := d.batch(ctx, g, filter, avail, clk)
			if err != nil {
				return err
			}
			if len(b.Updates) > 0 {
				if err := send(b); err != nil {
					return err
				}
				last = time.Now()
				continue
			}
		}
		due := last.Add(heartbeatInterval)
		if g.seq == o.Updates && !endSent {
			due = now
		}
		if !now.Before(due) {
			hb := sdk.UpdateBatch{NextCursor: encodePos(prefixUpdates, g.seq), SourceTime: now}
			if err := send(hb); err != nil {
				return err
			}
			last = time.Now()
			endSent = g.seq == o.Updates
			continue
		}
		wait := due.Sub(now)
		if clk.rate > 0 && g.seq < o.Updates {
			wait = min(wait, clk.at(g.seq).Sub(now))
		}
		wait = max(wait, time.Millisecond)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// batch returns the next run of consecutive events of one namespace before
// avail, skipping events of namespaces not in filter. Its Updates are empty
// when every event up to avail was skipped.
func (d *dataset) batch(ctx context.Context, g *eventGen, filter []bool, avail int64, clk clock) (sdk.UpdateBatch, error) {
	o := d.o
	for skipped := 0; g.seq < avail && !filter[o.eventNS(g.seq)]; skipped++ {
		if skipped%ctxCheckEvery == ctxCheckEvery-1 && ctx.Err() != nil {
			return sdk.UpdateBatch{}, ctx.Err()
		}
		g.step()
	}
	if g.seq == avail {
		return sdk.UpdateBatch{}, nil
	}
	ns := o.eventNS(g.seq)
	var (
		ups   []sdk.Update
		bytes int
		lastE int64
	)
	for g.seq < avail && len(ups) < maxBatchEvents && o.eventNS(g.seq) == ns && (len(ups) == 0 || bytes+o.DocSize() <= pageBytes) {
		e := g.step()
		u := o.update(e)
		bytes += len(u.Doc) + 16
		ups = append(ups, u)
		lastE = e.seq
	}
	return sdk.UpdateBatch{
		Namespace:  o.NamespaceName(ns),
		Updates:    ups,
		NextCursor: encodePos(prefixUpdates, g.seq),
		SourceTime: clk.producedAt(lastE),
	}, nil
}

// StreamLSN sends the number of events after req.Cursor that have been
// produced (all of them without a rate) in req.Namespaces, at once and then
// every second.
func (c *Connector) StreamLSN(ctx context.Context, req sdk.StreamRequest, send func(lsn uint64) error) error {
	d, err := c.dataset()
	if err != nil {
		return err
	}
	filter, err := d.filter(req.Namespaces)
	if err != nil {
		return err
	}
	seq, err := d.o.decodePos(prefixUpdates, "updates", req.Cursor, 0, d.o.Updates)
	if err != nil {
		return err
	}
	clk := d.clock(seq)
	all := true
	for _, in := range filter {
		all = all && in
	}
	// Counting is incremental: seq is fixed and the produced events only
	// grow.
	counted, pending := seq, int64(0)
	t := time.NewTicker(lsnInterval)
	defer t.Stop()
	for {
		avail := clk.available(time.Now())
		if all {
			pending = max(avail-seq, 0)
		} else {
			for counted < avail {
				if counted%ctxCheckEvery == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				end := min((counted/eventBlock+1)*eventBlock, avail)
				if filter[d.o.eventNS(counted)] {
					pending += end - counted
				}
				counted = end
			}
		}
		if err := send(uint64(pending)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ns returns the index of a namespace name.
func (d *dataset) ns(name string) (int, error) {
	ns, ok := d.index[name]
	if !ok {
		return 0, sdk.InvalidArgument("random: no namespace %q: use random.ns0 to %s (the namespaces option sets how many)", name, d.o.NamespaceName(d.o.Namespaces-1))
	}
	return ns, nil
}

// plannedNamespaces resolves the namespaces of a plan request; none means
// all.
func (d *dataset) plannedNamespaces(names []string) ([]int, error) {
	if len(names) == 0 {
		all := make([]int, d.o.Namespaces)
		for k := range all {
			all[k] = k
		}
		return all, nil
	}
	seen := make(map[int]bool, len(names))
	out := make([]int, 0, len(names))
	for _, name := range names {
		if name == "random" {
			// The database name selects every namespace, as a whole-database
			// entry of a namespace mapping (--namespace random:staging) asks.
			for k := range d.o.Namespaces {
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
			continue
		}
		ns, err := d.ns(name)
		if err != nil {
			return nil, err
		}
		if seen[ns] {
			return nil, sdk.InvalidArgument("random: namespace %q is listed twice: list it once", name)
		}
		seen[ns] = true
		out = append(out, ns)
	}
	return out, nil
}

// filter returns which namespaces a stream request covers; none means all.
func (d *dataset) filter(names []string) ([]bool, error) {
	f := make([]bool, d.o.Namespaces)
	if len(names) == 0 {
		for k := range f {
			f[k] = true
		}
		return f, nil
	}
	for _, name := range names {
		if name == "random" { // the whole database
			for k := range f {
				f[k] = true
			}
			continue
		}
		ns, err := d.ns(name)
		if err != nil {
			return nil, err
		}
		f[ns] = true
	}
	return f, nil
}

// clock returns the event clock. With a rate, event seq is produced at
// epoch+(seq+1)/rate. The epoch is fixed by the first stream of the process:
// the time of Configure, or earlier if the stream resumes at a position
// that would not have been produced yet, so that a restarted process does
// not wait for events that were already consumed.
func (d *dataset) clock(seq int64) clock {
	if d.o.Rate == 0 {
		return clock{n: d.o.Updates, epoch: d.configured}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.epochSet {
		d.epoch = d.configured
		if e := time.Now().Add(-seconds(float64(seq) / d.o.Rate)); e.Before(d.epoch) {
			d.epoch = e
		}
		d.epochSet = true
	}
	return clock{rate: d.o.Rate, n: d.o.Updates, epoch: d.epoch}
}

type clock struct {
	rate  float64 // events per second; 0 = all produced
	n     int64
	epoch time.Time
}

// available returns how many events have been produced at now.
func (c clock) available(now time.Time) int64 {
	if c.rate == 0 {
		return c.n
	}
	produced := now.Sub(c.epoch).Seconds() * c.rate
	switch {
	case produced <= 0:
		return 0
	case produced >= float64(c.n):
		return c.n
	}
	return int64(produced)
}

// producedAt returns when event seq was produced; without a rate, every
// event exists from the start (Configure), so a consumer's lag shrinks to
// zero only once it has caught up. It is never in the future for an
// available event, whatever the float rounding.
func (c clock) producedAt(seq int64) time.Time {
	now := time.Now()
	if c.rate == 0 {
		if c.epoch.IsZero() || c.epoch.After(now) {
			return now
		}
		return c.epoch
	}
	if t := c.at(seq); t.Before(now) {
		return t
	}
	return now
}

// at returns when event seq is produced, with a rate.
func (c clock) at(seq int64) time.Time {
	return c.epoch.Add(seconds(float64(seq+1) / c.rate))
}

// seconds converts to a Duration, saturating far beyond any test run.
func seconds(s float64) time.Duration {
	const limit = 100 * 365 * 24 * 3600
	return time.Duration(math.Min(s, limit) * float64(time.Second))
}
