package testsink

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble"
)

// Counters are totals kept by the sink side, in the batch of the write they
// count, so they are exactly as durable as the data. Every call received is
// counted, replays and duplicates included; rejected or failed calls are
// not.
type Counters struct {
	// DocsWritten is the number of documents received by WriteData.
	DocsWritten uint64
	// UpdatesApplied is the number of updates received by WriteUpdates.
	UpdatesApplied uint64
	// DataCalls is the number of successful WriteData calls.
	DataCalls uint64
	// UpdateCalls is the number of successful WriteUpdates calls.
	UpdateCalls uint64
	// Namespaces holds the counters of every namespace written, even one
	// whose documents were all deleted since.
	Namespaces map[string]NamespaceCounters
}

// NamespaceCounters are the counters of one namespace.
type NamespaceCounters struct {
	// DocsWritten is the number of documents received by WriteData.
	DocsWritten uint64
	// UpdatesApplied is the number of updates received by WriteUpdates.
	UpdatesApplied uint64
}

// Counter names in keys.
const (
	counterDocs        = "docs"
	counterUpdates     = "updates"
	counterDataCalls   = "data-calls"
	counterUpdateCalls = "update-calls"
)

func counterKey(name string) []byte {
	return append([]byte{prefixCounter}, name...)
}

func nsCounterKey(ns, name string) []byte {
	return append(appendNS([]byte{prefixNSCounter}, ns), name...)
}

// addCounter adds n to the counter at key within b. Counters are merge
// operands summed by uint64Merger, so concurrent batches never read-modify-
// write them.
func addCounter(b *pebble.Batch, key []byte, n uint64) error {
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], n)
	return b.Merge(key, v[:], nil)
}

// uint64Merger sums little-endian uint64 operands. Its name is recorded in
// the store's OPTIONS file, so it must not change.
var uint64Merger = &pebble.Merger{
	Name: "testsink.uint64add.v1",
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		m := &uint64Sum{}
		return m, m.add(value)
	},
}

type uint64Sum struct{ sum uint64 }

func (m *uint64Sum) add(v []byte) error {
	if len(v) != 8 {
		return fmt.Errorf("testsink: counter operand of %d bytes, want 8", len(v))
	}
	m.sum += binary.LittleEndian.Uint64(v)
	return nil
}

func (m *uint64Sum) MergeNewer(v []byte) error { return m.add(v) }
func (m *uint64Sum) MergeOlder(v []byte) error { return m.add(v) }

func (m *uint64Sum) Finish(bool) ([]byte, io.Closer, error) {
	out := make([]byte, 8)
	binary.LittleEndian.PutUint64(out, m.sum)
	return out, nil, nil
}

func decodeCounter(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("testsink: counter value of %d bytes, want 8", len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}

// readCounters reads every counter of r.
func readCounters(r pebble.Reader) (Counters, error) {
	c := Counters{Namespaces: map[string]NamespaceCounters{}}
	global := map[string]*uint64{
		counterDocs:        &c.DocsWritten,
		counterUpdates:     &c.UpdatesApplied,
		counterDataCalls:   &c.DataCalls,
		counterUpdateCalls: &c.UpdateCalls,
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCounter}, UpperBound: []byte{prefixCounter + 1}})
	if err != nil {
		return Counters{}, err
	}
	for it.First(); it.Valid(); it.Next() {
		n, err := decodeCounter(it.Value())
		if err != nil {
			_ = it.Close()
			return Counters{}, err
		}
		if p, ok := global[string(it.Key()[1:])]; ok {
			*p = n
		}
	}
	if err := it.Close(); err != nil {
		return Counters{}, err
	}

	it, err = r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixNSCounter}, UpperBound: []byte{prefixNSCounter + 1}})
	if err != nil {
		return Counters{}, err
	}
	for it.First(); it.Valid(); it.Next() {
		ns, name, err := decodeNS(it.Key()[1:])
		if err == nil {
			var n uint64
			if n, err = decodeCounter(it.Value()); err == nil {
				nc := c.Namespaces[ns]
				switch string(name) {
				case counterDocs:
					nc.DocsWritten = n
				case counterUpdates:
					nc.UpdatesApplied = n
				}
				c.Namespaces[ns] = nc
			}
		}
		if err != nil {
			_ = it.Close()
			return Counters{}, err
		}
	}
	if err := it.Close(); err != nil {
		return Counters{}, err
	}
	return c, nil
}
