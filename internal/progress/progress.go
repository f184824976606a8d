// Package progress renders the state of a running flow: bars per namespace on
// a terminal, JSON lines otherwise, and Prometheus metrics. Renderers read
// periodic Snapshots; they never block the engine.
package progress

import (
	"encoding/json"
	"io"
	"sort"
	"sync"
	"time"
)

// Snapshot is the state of a flow at one instant. Counters are cumulative
// since the start of the flow (including earlier runs of a resumed flow).
type Snapshot struct {
	Time            time.Time
	FlowID          string
	Phase           string // "plan", "copy", "cdc", "done"
	Namespaces      []Namespace
	PartitionsDone  int
	PartitionsTotal int
	// Events is the number of change events applied.
	Events uint64
	// Lag is how far the sink is behind the source during CDC.
	Lag time.Duration
}

// Namespace is the copy progress of one sink namespace.
type Namespace struct {
	Name           string
	Docs           uint64
	Bytes          uint64
	EstimatedDocs  uint64
	PartitionsDone int
	PartitionsAll  int
}

// Docs returns the documents copied over all namespaces.
func (s Snapshot) Docs() uint64 {
	var n uint64
	for _, ns := range s.Namespaces {
		n += ns.Docs
	}
	return n
}

// Bytes returns the bytes copied over all namespaces.
func (s Snapshot) Bytes() uint64 {
	var n uint64
	for _, ns := range s.Namespaces {
		n += ns.Bytes
	}
	return n
}

// Renderer shows snapshots. Update is called periodically from one
// goroutine; Close once at the end with the final snapshot.
type Renderer interface {
	Update(Snapshot)
	Close(Snapshot)
}

// Mode selects a renderer.
type Mode string

// Modes accepted by --progress.
const (
	ModeAuto Mode = "auto"
	ModeTTY  Mode = "tty"
	ModeJSON Mode = "json"
	ModeNone Mode = "none"
)

// rate tracks docs/s and bytes/s between updates, smoothed.
type rate struct {
	last          time.Time
	docs, bytes   uint64
	docsPS, bytPS float64
}

func (r *rate) update(now time.Time, docs, bytes uint64) {
	if r.last.IsZero() {
		r.last, r.docs, r.bytes = now, docs, bytes
		return
	}
	dt := now.Sub(r.last).Seconds()
	if dt <= 0 {
		return
	}
	d := float64(docs-min(docs, r.docs)) / dt
	b := float64(bytes-min(bytes, r.bytes)) / dt
	const alpha = 0.5
	if r.docsPS == 0 && r.bytPS == 0 {
		r.docsPS, r.bytPS = d, b
	} else {
		r.docsPS = alpha*d + (1-alpha)*r.docsPS
		r.bytPS = alpha*b + (1-alpha)*r.bytPS
	}
	r.last, r.docs, r.bytes = now, docs, bytes
}

// JSONLine is one line of --progress json.
type JSONLine struct {
	Time            time.Time `json:"time"`
	Flow            string    `json:"flow"`
	Phase           string    `json:"phase"`
	Docs            uint64    `json:"docs"`
	Bytes           uint64    `json:"bytes"`
	DocsPerSec      float64   `json:"docs_per_sec"`
	MBPerSec        float64   `json:"mb_per_sec"`
	PartitionsDone  int       `json:"partitions_done"`
	PartitionsTotal int       `json:"partitions_total"`
	CDCEvents       uint64    `json:"cdc_events"`
	CDCLagSeconds   float64   `json:"cdc_lag_seconds"`
	Final           bool      `json:"final,omitempty"`
}

// JSON writes one JSON object per update.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
	r   rate
}

// NewJSON returns a JSON-lines renderer writing to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

func (j *JSON) line(s Snapshot, final bool) JSONLine {
	j.r.update(s.Time, s.Docs(), s.Bytes())
	return JSONLine{
		Time: s.Time.UTC().Round(time.Millisecond), Flow: s.FlowID, Phase: s.Phase,
		Docs: s.Docs(), Bytes: s.Bytes(),
		DocsPerSec: round1(j.r.docsPS), MBPerSec: round1(j.r.bytPS / 1e6),
		PartitionsDone: s.PartitionsDone, PartitionsTotal: s.PartitionsTotal,
		CDCEvents: s.Events, CDCLagSeconds: round1(s.Lag.Seconds()), Final: final,
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// Update implements Renderer.
func (j *JSON) Update(s Snapshot) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(j.line(s, false))
}

// Close implements Renderer.
func (j *JSON) Close(s Snapshot) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(j.line(s, true))
}

// None renders nothing.
type None struct{}

// Update implements Renderer.
func (None) Update(Snapshot) {}

// Close implements Renderer.
func (None) Close(Snapshot) {}

func sortedNamespaces(s Snapshot) []Namespace {
	ns := append([]Namespace(nil), s.Namespaces...)
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	return ns
}

// Run calls r.Update with snap() every interval until stop is closed, then
// r.Close with a last snapshot.
func Run(r Renderer, every time.Duration, snap func() Snapshot, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			r.Close(snap())
			return
		case <-t.C:
			r.Update(snap())
		}
	}
}
