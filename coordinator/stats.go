package coordinator

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run as [StatsSnapshot.Phase] reports them. Copy, CDC and done
// are also the phases stored with a flow.
const (
	PhaseStarting = "starting"
	PhasePlanning = "planning"
	PhaseCopy     = "copy"
	PhaseCDC      = "cdc"
	PhaseDraining = "draining"
	PhaseDone     = "done"
	PhaseStopped  = "stopped"
	PhaseFailed   = "failed"
)

// Stats are the live counters of a run. Every method is safe for concurrent
// use with the run; readers take a [Stats.Snapshot]. Document counts include
// what earlier runs of the flow copied.
type Stats struct {
	start  atomic.Int64 // unix nanoseconds
	flowID atomic.Pointer[string]
	phase  atomic.Pointer[string]

	partsTotal, partsDone atomic.Int64
	docs, bytes, dropped  atomic.Int64
	events                atomic.Int64
	lag                   atomic.Int64 // nanoseconds; -1 when unknown

	mu sync.RWMutex
	ns map[string]*nsCounters
}

type nsCounters struct {
	docs, bytes, estimated atomic.Int64
}

// NamespaceStats are the counters of one sink namespace.
type NamespaceStats struct {
	Namespace string
	// Docs and Bytes written during the copy.
	Docs, Bytes int64
	// EstimatedDocs is the plan's estimate for the namespace (0 if unknown).
	EstimatedDocs int64
}

// StatsSnapshot is a consistent-enough copy of [Stats] for display: each
// counter is read atomically, not all of them at one instant.
type StatsSnapshot struct {
	FlowID string
	Phase  string
	// Start is when the run started; Elapsed is the time since.
	Start   time.Time
	Elapsed time.Duration
	// PartitionsDone counts copy partitions durably done, of PartitionsTotal.
	PartitionsDone, PartitionsTotal int64
	// Docs and Bytes written during the copy, and the plan's estimate.
	Docs, Bytes, EstimatedDocs int64
	// DocsDropped counts documents that transforms dropped in this run.
	DocsDropped int64
	// Events counts change events applied in this run.
	Events int64
	// Lag is the CDC lag: the age of the last checkpointed change, or 0 when
	// the streams are caught up; LagKnown is false before the first
	// checkpoint of a stream.
	Lag      time.Duration
	LagKnown bool
	// Namespaces are sorted by name.
	Namespaces []NamespaceStats
}

func newStats() *Stats {
	s := &Stats{ns: make(map[string]*nsCounters)}
	s.start.Store(time.Now().UnixNano())
	s.lag.Store(-1)
	s.setPhase(PhaseStarting)
	return s
}

func (s *Stats) setPhase(p string)   { s.phase.Store(&p) }
func (s *Stats) setFlowID(id string) { s.flowID.Store(&id) }

// namespace returns the counters of ns, creating them.
func (s *Stats) namespace(ns string) *nsCounters {
	s.mu.RLock()
	c := s.ns[ns]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.ns[ns]; c == nil {
		c = &nsCounters{}
		s.ns[ns] = c
	}
	return c
}

func (s *Stats) addDocs(ns string, docs, bytes int64) {
	c := s.namespace(ns)
	c.docs.Add(docs)
	c.bytes.Add(bytes)
	s.docs.Add(docs)
	s.bytes.Add(bytes)
}

func (s *Stats) setLag(d time.Duration, known bool) {
	if !known {
		s.lag.Store(-1)
		return
	}
	s.lag.Store(int64(d))
}

// Snapshot returns the current counters.
func (s *Stats) Snapshot() StatsSnapshot {
	start := time.Unix(0, s.start.Load())
	snap := StatsSnapshot{
		Start:           start,
		Elapsed:         time.Since(start),
		PartitionsDone:  s.partsDone.Load(),
		PartitionsTotal: s.partsTotal.Load(),
		Docs:            s.docs.Load(),
		Bytes:           s.bytes.Load(),
		DocsDropped:     s.dropped.Load(),
		Events:          s.events.Load(),
	}
	if p := s.flowID.Load(); p != nil {
		snap.FlowID = *p
	}
	if p := s.phase.Load(); p != nil {
		snap.Phase = *p
	}
	if lag := s.lag.Load(); lag >= 0 {
		snap.Lag, snap.LagKnown = time.Duration(lag), true
	}
	s.mu.RLock()
	for name, c := range s.ns {
		n := NamespaceStats{
			Namespace:     name,
			Docs:          c.docs.Load(),
			Bytes:         c.bytes.Load(),
			EstimatedDocs: c.estimated.Load(),
		}
		snap.EstimatedDocs += n.EstimatedDocs
		snap.Namespaces = append(snap.Namespaces, n)
	}
	s.mu.RUnlock()
	slices.SortFunc(snap.Namespaces, func(a, b NamespaceStats) int { return strings.Compare(a.Namespace, b.Namespace) })
	return snap
}
