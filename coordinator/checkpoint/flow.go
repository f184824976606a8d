package checkpoint

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// Phases of a flow, in the only order a flow may move through them.
const (
	PhaseCopy = "copy"
	PhaseCDC  = "cdc"
	PhaseDone = "done"
)

// phaseRank orders the phases; unknown phases are absent.
var phaseRank = map[string]int{PhaseCopy: 0, PhaseCDC: 1, PhaseDone: 2}

// FlowMeta describes a flow: what it syncs and how far it has got.
type FlowMeta struct {
	// ID identifies the flow: 1 to 128 characters from [A-Za-z0-9._-].
	ID string
	// Source and Sink describe the two ends, already redacted by the caller:
	// the store writes them to disk as given.
	Source, Sink string
	// Mode is the sync mode (full, initial, cdc); opaque to the store.
	Mode string
	// Options is the canonical JSON of the options that define the flow;
	// opaque to the store and returned byte for byte.
	Options []byte
	// DsyncVersion and ProtocolVersion record what created the flow.
	DsyncVersion    string
	ProtocolVersion int
	// CreatedAt is when the flow was created; CreateFlow sets it to the
	// current time when zero. Stored in UTC.
	CreatedAt time.Time
	// UpdatedAt is the time of the flow's last write. Maintained by the
	// store: CreateFlow ignores the value passed.
	UpdatedAt time.Time
	// Phase is PhaseCopy, PhaseCDC or PhaseDone; CreateFlow defaults it to
	// PhaseCopy.
	Phase string
	// CopyDone reports whether every partition is done (true for a plan
	// without partitions). Maintained by the store: it turns true in the
	// batch that checkpoints the last partition as done. CreateFlow ignores
	// the value passed.
	CopyDone bool
}

// PartitionState is one partition of the copy plan and its progress.
type PartitionState struct {
	// Index identifies the partition within the flow: 0 to 99,999,999.
	Index int
	// Namespace is read from the source; SinkNamespace is written to.
	Namespace     string
	SinkNamespace string
	// Definition is the partition cursor from the plan; opaque to the store.
	Definition []byte
	// EstimatedCount is the plan's estimate of the partition's documents.
	EstimatedCount uint64
	// Cursor is the position to resume from; nil means the start.
	Cursor []byte
	// Seq is the number of pages checkpointed.
	Seq uint64
	// Done reports whether the partition has been copied completely.
	Done bool
	// Docs and Bytes count what has been copied.
	Docs  uint64
	Bytes uint64
}

// UpdateState is one update (CDC) partition and its progress.
type UpdateState struct {
	// Index identifies the update partition within the flow: 0 to 9,999.
	Index int
	// Namespaces are the namespaces the stream covers.
	Namespaces []string
	// Cursor is the stream position to resume from; the plan stores the
	// position captured before the copy began.
	Cursor []byte
	// Seq is the number of checkpoints taken.
	Seq uint64
	// Events counts the change events applied.
	Events uint64
	// SourceTime is the source's time of the last checkpointed event; zero
	// if none.
	SourceTime time.Time
}

// PartitionCheckpoint moves one partition forward; see [Store.Checkpoint].
type PartitionCheckpoint struct {
	Index int
	// Seq must be greater than the partition's stored Seq.
	Seq uint64
	// Cursor is the position after the checkpointed pages.
	Cursor []byte
	// Done marks the partition complete; it cannot be checkpointed again.
	Done bool
	// DocsDelta and BytesDelta are added to the partition's counters.
	DocsDelta, BytesDelta uint64
}

// UpdateCheckpoint moves one update partition forward; see [Store.Checkpoint].
type UpdateCheckpoint struct {
	Index int
	// Seq must be greater than the update partition's stored Seq.
	Seq uint64
	// Cursor is the stream position after every acknowledged event.
	Cursor []byte
	// EventsDelta is added to the update partition's event counter.
	EventsDelta uint64
	// SourceTime replaces the stored source time unless zero.
	SourceTime time.Time
}

// CreateFlow atomically persists a new flow: its meta, its copy plan and its
// update cursors. It returns [ErrFlowExists] if the flow already has a plan,
// [ErrCopyIncomplete] for a phase past PhaseCopy with partitions not done, and
// [ErrInvalidArgument] for a malformed id, an index out of range, a duplicate
// index, a partition without a namespace or an unknown phase; on error
// nothing is written.
func (s *Store) CreateFlow(meta FlowMeta, parts []PartitionState, ups []UpdateState) error {
	if err := s.createFlow(meta, parts, ups); err != nil {
		return fmt.Errorf("create flow %s: %w", meta.ID, err)
	}
	return nil
}

func (s *Store) createFlow(meta FlowMeta, parts []PartitionState, ups []UpdateState) error {
	if err := validID("flow", meta.ID); err != nil {
		return err
	}
	if meta.Phase == "" {
		meta.Phase = PhaseCopy
	}
	if _, ok := phaseRank[meta.Phase]; !ok {
		return fmt.Errorf("%w: unknown phase %q", ErrInvalidArgument, meta.Phase)
	}
	partsLeft := 0
	seen := make(map[int]bool, len(parts))
	for _, p := range parts {
		if err := checkIndex("partition", p.Index, maxPartitions, seen); err != nil {
			return err
		}
		if p.Namespace == "" {
			return fmt.Errorf("%w: partition %d has no namespace", ErrInvalidArgument, p.Index)
		}
		if !p.Done {
			partsLeft++
		}
	}
	if partsLeft > 0 && meta.Phase != PhaseCopy {
		return fmt.Errorf("%w: phase %s with %d partitions left", ErrCopyIncomplete, meta.Phase, partsLeft)
	}
	clear(seen)
	for _, u := range ups {
		if err := checkIndex("update partition", u.Index, maxUpdatePartitions, seen); err != nil {
			return err
		}
	}

	now := s.opts.now().UTC()
	created := meta.CreatedAt.UTC()
	if meta.CreatedAt.IsZero() {
		created = now
	}

	return s.write(func(r pebble.Reader, b *batch) error {
		if _, ok, err := get(r, metaKey(meta.ID)); err != nil {
			return err
		} else if ok {
			return ErrFlowExists
		}
		b.put(metaKey(meta.ID), flowRecord{
			Source:          meta.Source,
			Sink:            meta.Sink,
			Mode:            meta.Mode,
			Options:         meta.Options,
			DsyncVersion:    meta.DsyncVersion,
			ProtocolVersion: meta.ProtocolVersion,
			CreatedAt:       created,
			Phase:           meta.Phase,
		})
		b.put(stateKey(meta.ID), stateRecord{UpdatedAt: now, PartsLeft: partsLeft})
		for _, p := range parts {
			b.put(partKey(meta.ID, p.Index), partRecord{
				Namespace:      p.Namespace,
				SinkNamespace:  p.SinkNamespace,
				Definition:     p.Definition,
				EstimatedCount: p.EstimatedCount,
				Cursor:         normCursor(p.Cursor),
				Seq:            p.Seq,
				Done:           p.Done,
				Docs:           p.Docs,
				Bytes:          p.Bytes,
			})
		}
		for _, u := range ups {
			b.put(updKey(meta.ID, u.Index), updRecord{
				Namespaces: u.Namespaces,
				Cursor:     normCursor(u.Cursor),
				Seq:        u.Seq,
				Events:     u.Events,
				SourceTime: u.SourceTime.UTC(),
			})
		}
		return nil
	})
}

func checkIndex(kind string, idx, limit int, seen map[int]bool) error {
	if idx < 0 || idx >= limit {
		return fmt.Errorf("%w: %s index %d out of range [0, %d)", ErrInvalidArgument, kind, idx, limit)
	}
	if seen[idx] {
		return fmt.Errorf("%w: duplicate %s index %d", ErrInvalidArgument, kind, idx)
	}
	seen[idx] = true
	return nil
}

// Flow returns the flow's meta, or [ErrFlowNotFound].
func (s *Store) Flow(id string) (FlowMeta, error) {
	if err := validID("flow", id); err != nil {
		return FlowMeta{}, fmt.Errorf("read flow: %w", err)
	}
	db, done, err := s.reader()
	if err != nil {
		return FlowMeta{}, fmt.Errorf("read flow %s: %w", id, err)
	}
	defer done()
	meta, ok, err := readFlow(db, id)
	if err == nil && !ok {
		err = ErrFlowNotFound
	}
	if err != nil {
		return FlowMeta{}, fmt.Errorf("read flow %s: %w", id, err)
	}
	return meta, nil
}

// Flows returns every flow's meta, ordered by id.
func (s *Store) Flows() ([]FlowMeta, error) {
	db, done, err := s.reader()
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	defer done()
	// A snapshot keeps each flow's meta and state consistent with each other.
	snap := db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: []byte(flowsPrefix),
		UpperBound: prefixEnd([]byte(flowsPrefix)),
	})
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	defer it.Close()
	var flows []FlowMeta
	for valid := it.First(); valid; {
		id, err := flowIDFromKey(it.Key())
		if err != nil {
			return nil, fmt.Errorf("list flows: %w", err)
		}
		meta, ok, err := readFlow(snap, id)
		if err != nil {
			return nil, fmt.Errorf("list flows: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("list flows: %w: flow %s has keys but no meta", ErrCorrupt, id)
		}
		flows = append(flows, meta)
		valid = it.SeekGE(flowEnd(id))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	return flows, nil
}

// readFlow reads a flow's meta and state records.
func readFlow(r pebble.Reader, id string) (FlowMeta, bool, error) {
	var fr flowRecord
	if ok, err := getRecord(r, metaKey(id), &fr); err != nil || !ok {
		return FlowMeta{}, false, err
	}
	var st stateRecord
	if ok, err := getRecord(r, stateKey(id), &st); err != nil {
		return FlowMeta{}, false, err
	} else if !ok {
		return FlowMeta{}, false, fmt.Errorf("%w: flow %s has no state record", ErrCorrupt, id)
	}
	return FlowMeta{
		ID:              id,
		Source:          fr.Source,
		Sink:            fr.Sink,
		Mode:            fr.Mode,
		Options:         fr.Options,
		DsyncVersion:    fr.DsyncVersion,
		ProtocolVersion: fr.ProtocolVersion,
		CreatedAt:       fr.CreatedAt,
		UpdatedAt:       st.UpdatedAt,
		Phase:           fr.Phase,
		CopyDone:        st.PartsLeft == 0,
	}, true, nil
}

// Partitions returns the flow's copy partitions ordered by index, or
// [ErrFlowNotFound].
func (s *Store) Partitions(id string) ([]PartitionState, error) {
	var parts []PartitionState
	err := s.scanFlow(id, partPrefix(id), func(idx int, key, value []byte) error {
		var r partRecord
		if err := decode(key, value, &r); err != nil {
			return err
		}
		parts = append(parts, PartitionState{
			Index:          idx,
			Namespace:      r.Namespace,
			SinkNamespace:  r.SinkNamespace,
			Definition:     r.Definition,
			EstimatedCount: r.EstimatedCount,
			Cursor:         r.Cursor,
			Seq:            r.Seq,
			Done:           r.Done,
			Docs:           r.Docs,
			Bytes:          r.Bytes,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read partitions of flow %s: %w", id, err)
	}
	return parts, nil
}

// Updates returns the flow's update partitions ordered by index, or
// [ErrFlowNotFound].
func (s *Store) Updates(id string) ([]UpdateState, error) {
	var ups []UpdateState
	err := s.scanFlow(id, updPrefix(id), func(idx int, key, value []byte) error {
		var r updRecord
		if err := decode(key, value, &r); err != nil {
			return err
		}
		ups = append(ups, UpdateState{
			Index:      idx,
			Namespaces: r.Namespaces,
			Cursor:     r.Cursor,
			Seq:        r.Seq,
			Events:     r.Events,
			SourceTime: r.SourceTime,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read update partitions of flow %s: %w", id, err)
	}
	return ups, nil
}

// scanFlow calls fn for every key under prefix, in one snapshot that also
// confirms the flow exists.
func (s *Store) scanFlow(id string, prefix []byte, fn func(idx int, key, value []byte) error) error {
	if err := validID("flow", id); err != nil {
		return err
	}
	db, done, err := s.reader()
	if err != nil {
		return err
	}
	defer done()
	snap := db.NewSnapshot()
	defer snap.Close()
	if _, ok, err := get(snap, metaKey(id)); err != nil {
		return err
	} else if !ok {
		return ErrFlowNotFound
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		idx, err := indexFromKey(it.Key(), prefix)
		if err != nil {
			return err
		}
		value, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(idx, it.Key(), value); err != nil {
			return err
		}
	}
	return it.Error()
}

// CheckpointPartition durably moves one partition forward; it is
// [Store.Checkpoint] with a single [PartitionCheckpoint].
func (s *Store) CheckpointPartition(id string, idx int, seq uint64, cursor []byte, done bool, docsDelta, bytesDelta uint64) error {
	return s.Checkpoint(id, []PartitionCheckpoint{{
		Index: idx, Seq: seq, Cursor: cursor, Done: done, DocsDelta: docsDelta, BytesDelta: bytesDelta,
	}}, nil)
}

// CheckpointUpdates durably moves one update partition forward; it is
// [Store.Checkpoint] with a single [UpdateCheckpoint].
func (s *Store) CheckpointUpdates(id string, idx int, seq uint64, cursor []byte, eventsDelta uint64, sourceTime time.Time) error {
	return s.Checkpoint(id, nil, []UpdateCheckpoint{{
		Index: idx, Seq: seq, Cursor: cursor, EventsDelta: eventsDelta, SourceTime: sourceTime,
	}})
}

// Checkpoint durably moves partitions and update partitions of a flow forward
// in one atomic batch, and sets the flow's UpdatedAt. It returns once the
// batch is fsynced.
//
// Positions only move forward: if any item's Seq is not greater than the
// stored one it returns [ErrStale], and if any partition is already done
// [ErrPartitionDone]; either way nothing is written. It returns
// [ErrFlowNotFound], [ErrPartitionNotFound] for an index not in the plan, and
// [ErrInvalidArgument] for an index given twice. An empty checkpoint writes
// nothing.
func (s *Store) Checkpoint(id string, parts []PartitionCheckpoint, ups []UpdateCheckpoint) error {
	if err := s.checkpoint(id, parts, ups); err != nil {
		return fmt.Errorf("checkpoint flow %s: %w", id, err)
	}
	return nil
}

func (s *Store) checkpoint(id string, parts []PartitionCheckpoint, ups []UpdateCheckpoint) error {
	if err := validID("flow", id); err != nil {
		return err
	}
	if len(parts) == 0 && len(ups) == 0 {
		return nil
	}
	seen := make(map[int]bool, max(len(parts), len(ups)))
	for _, p := range parts {
		if err := checkIndex("partition", p.Index, maxPartitions, seen); err != nil {
			return err
		}
	}
	clear(seen)
	for _, u := range ups {
		if err := checkIndex("update partition", u.Index, maxUpdatePartitions, seen); err != nil {
			return err
		}
	}

	return s.write(func(r pebble.Reader, b *batch) error {
		var st stateRecord
		if ok, err := getRecord(r, stateKey(id), &st); err != nil {
			return err
		} else if !ok {
			return ErrFlowNotFound
		}
		for _, p := range parts {
			key := partKey(id, p.Index)
			var rec partRecord
			if ok, err := getRecord(r, key, &rec); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%w: partition %d", ErrPartitionNotFound, p.Index)
			}
			if rec.Done {
				return fmt.Errorf("partition %d: %w", p.Index, ErrPartitionDone)
			}
			if p.Seq <= rec.Seq {
				return fmt.Errorf("partition %d: seq %d is not after stored seq %d: %w", p.Index, p.Seq, rec.Seq, ErrStale)
			}
			rec.Seq, rec.Cursor, rec.Done = p.Seq, normCursor(p.Cursor), p.Done
			rec.Docs += p.DocsDelta
			rec.Bytes += p.BytesDelta
			if rec.Done {
				st.PartsLeft--
			}
			b.put(key, rec)
		}
		for _, u := range ups {
			key := updKey(id, u.Index)
			var rec updRecord
			if ok, err := getRecord(r, key, &rec); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%w: update partition %d", ErrPartitionNotFound, u.Index)
			}
			if u.Seq <= rec.Seq {
				return fmt.Errorf("update partition %d: seq %d is not after stored seq %d: %w", u.Index, u.Seq, rec.Seq, ErrStale)
			}
			rec.Seq, rec.Cursor = u.Seq, normCursor(u.Cursor)
			rec.Events += u.EventsDelta
			if !u.SourceTime.IsZero() {
				rec.SourceTime = u.SourceTime.UTC()
			}
			b.put(key, rec)
		}
		if st.PartsLeft < 0 {
			return fmt.Errorf("%w: flow %s counts %d partitions left", ErrCorrupt, id, st.PartsLeft)
		}
		st.UpdatedAt = s.opts.now().UTC()
		b.put(stateKey(id), st)
		return nil
	})
}

// SetPhase durably moves the flow to phase. Phases only move forward (copy,
// cdc, done): an earlier phase returns [ErrStale], the current one is a no-op.
// Leaving PhaseCopy before every partition is done returns
// [ErrCopyIncomplete].
func (s *Store) SetPhase(id, phase string) error {
	if err := s.setPhase(id, phase); err != nil {
		return fmt.Errorf("set phase of flow %s: %w", id, err)
	}
	return nil
}

func (s *Store) setPhase(id, phase string) error {
	if err := validID("flow", id); err != nil {
		return err
	}
	rank, ok := phaseRank[phase]
	if !ok {
		return fmt.Errorf("%w: unknown phase %q", ErrInvalidArgument, phase)
	}
	return s.write(func(r pebble.Reader, b *batch) error {
		var fr flowRecord
		if ok, err := getRecord(r, metaKey(id), &fr); err != nil {
			return err
		} else if !ok {
			return ErrFlowNotFound
		}
		var st stateRecord
		if ok, err := getRecord(r, stateKey(id), &st); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%w: flow %s has no state record", ErrCorrupt, id)
		}
		switch cur := phaseRank[fr.Phase]; {
		case rank == cur:
			return nil
		case rank < cur:
			return fmt.Errorf("phase %s is before stored phase %s: %w", phase, fr.Phase, ErrStale)
		case st.PartsLeft > 0:
			return fmt.Errorf("phase %s with %d partitions left: %w", phase, st.PartsLeft, ErrCopyIncomplete)
		}
		fr.Phase = phase
		st.UpdatedAt = s.opts.now().UTC()
		b.put(metaKey(id), fr)
		b.put(stateKey(id), st)
		return nil
	})
}

// ResetFlow atomically deletes every key of the flow, leaving other flows and
// verify runs untouched. It returns [ErrFlowNotFound] if there is no such
// flow.
func (s *Store) ResetFlow(id string) error {
	if err := s.resetFlow(id); err != nil {
		return fmt.Errorf("reset flow %s: %w", id, err)
	}
	return nil
}

func (s *Store) resetFlow(id string) error {
	if err := validID("flow", id); err != nil {
		return err
	}
	return s.write(func(r pebble.Reader, b *batch) error {
		if _, ok, err := get(r, metaKey(id)); err != nil {
			return err
		} else if !ok {
			return ErrFlowNotFound
		}
		b.deleteRange(flowPrefix(id), flowEnd(id))
		return nil
	})
}

// batch wraps a Pebble batch to encode records and keep the first error.
type batch struct {
	*pebble.Batch
	err error
}

func (b *batch) put(key []byte, record any) {
	if b.err != nil {
		return
	}
	value, err := encode(record)
	if err == nil {
		err = b.Set(key, value, nil)
	}
	b.err = err
}

func (b *batch) set(key, value []byte) {
	if b.err == nil {
		b.err = b.Set(key, value, nil)
	}
}

func (b *batch) deleteRange(start, end []byte) {
	if b.err == nil {
		b.err = b.DeleteRange(start, end, nil)
	}
}
