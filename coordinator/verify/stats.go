package verify

import (
	"sync"
	"sync/atomic"
)

// StatsSnapshot is the progress of a run at one instant.
type StatsSnapshot struct {
	// RunID is empty until the run is identified.
	RunID string
	// Phase is "plan", "scan", "reconcile", "recheck", "repair" or "done".
	Phase string
	// PartitionsDone and PartitionsTotal count the partitions of both
	// sides that the run scans (the sample, if any).
	PartitionsDone, PartitionsTotal int
	// Namespaces are in A's namespace order.
	Namespaces []NamespaceProgress
}

// NamespaceProgress is the scan progress of one namespace pair.
type NamespaceProgress struct {
	// Namespace is A's namespace; BNamespace its counterpart in B.
	Namespace, BNamespace string
	// Docs and Bytes were scanned on either side; EstimatedDocs is the sum
	// of the scanned partitions' estimates.
	Docs, Bytes, EstimatedDocs      uint64
	PartitionsDone, PartitionsTotal int
}

type nsStats struct {
	a, b                  string
	docs, bytes, est      atomic.Uint64
	partsDone, partsTotal atomic.Int64
}

type stats struct {
	mu    sync.Mutex
	runID string
	phase string
	ns    []*nsStats
}

func (s *stats) setRun(id string) {
	s.mu.Lock()
	s.runID = id
	s.mu.Unlock()
}

func (s *stats) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// setPairs installs the pairs and their scanned partitions.
func (s *stats) setPairs(pairs []pairRec, parts [2][]partRec) {
	ns := make([]*nsStats, len(pairs))
	for i, p := range pairs {
		ns[i] = &nsStats{a: p.A, b: p.B}
	}
	for _, side := range parts {
		for _, r := range side {
			if r.Skipped {
				continue
			}
			n := ns[r.Pair]
			n.partsTotal.Add(1)
			n.est.Add(max(r.Estimated, r.Docs))
			n.docs.Add(r.Docs)
			n.bytes.Add(r.Bytes)
			if r.Done {
				n.partsDone.Add(1)
			}
		}
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
}

func (s *stats) page(pair int, docs, bytes uint64, done bool) {
	s.mu.Lock()
	n := s.ns[pair]
	s.mu.Unlock()
	n.docs.Add(docs)
	n.bytes.Add(bytes)
	if done {
		n.partsDone.Add(1)
	}
}

func (s *stats) snapshot() StatsSnapshot {
	s.mu.Lock()
	out := StatsSnapshot{RunID: s.runID, Phase: s.phase}
	ns := s.ns
	s.mu.Unlock()
	for _, n := range ns {
		p := NamespaceProgress{Namespace: n.a, BNamespace: n.b, Docs: n.docs.Load(), Bytes: n.bytes.Load(),
			PartitionsDone: int(n.partsDone.Load()), PartitionsTotal: int(n.partsTotal.Load())}
		p.EstimatedDocs = max(n.est.Load(), p.Docs)
		out.PartitionsDone += p.PartitionsDone
		out.PartitionsTotal += p.PartitionsTotal
		out.Namespaces = append(out.Namespaces, p)
	}
	return out
}
