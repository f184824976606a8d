package checkpoint

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// benchCursor is a keyset cursor of a typical size.
var benchCursor = bytes.Repeat([]byte("c"), 64)

// benchStore opens a store on disk (each commit fsyncs) with one flow of
// nparts partitions.
func benchStore(b *testing.B, nparts int) *Store {
	b.Helper()
	s := mustOpen(b, b.TempDir(), Options{})
	mustCreate(b, s, "bench", nparts, 1)
	return s
}

// BenchmarkCheckpointPartition measures the checkpoint taken after every
// page: on disk, and in memory where syncs cost nothing, which leaves the
// store's own CPU cost.
func BenchmarkCheckpointPartition(b *testing.B) {
	const nparts = 16
	for _, bc := range []struct {
		name string
		open func(b *testing.B) *Store
	}{
		{"disk", func(b *testing.B) *Store { return mustOpen(b, b.TempDir(), Options{}) }},
		{"mem", func(b *testing.B) *Store { return openMem(b, vfs.NewMem()) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b)
			mustCreate(b, s, "bench", nparts, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				seq := uint64(i/nparts) + 1
				if err := s.CheckpointPartition("bench", i%nparts, seq, benchCursor, false, 1000, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckpointBatch measures Checkpoint of several partitions and an
// update partition in one batch, i.e. one fsync.
func BenchmarkCheckpointBatch(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("parts=%d", n), func(b *testing.B) {
			s := benchStore(b, n)
			parts := make([]PartitionCheckpoint, n)
			ups := []UpdateCheckpoint{{Index: 0, Cursor: benchCursor, EventsDelta: 1}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for j := range parts {
					parts[j] = PartitionCheckpoint{Index: j, Seq: uint64(i) + 1, Cursor: benchCursor, DocsDelta: 1000}
				}
				ups[0].Seq = uint64(i) + 1
				if err := s.Checkpoint("bench", parts, ups); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/partition")
		})
	}
}

// BenchmarkCheckpointPartitionParallel checkpoints from 8 goroutines per CPU,
// one partition each, as per-partition readers would; concurrent checkpoints
// share fsyncs.
func BenchmarkCheckpointPartitionParallel(b *testing.B) {
	const nparts = 64
	s := benchStore(b, nparts)
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		idx := int(next.Add(1)-1) % nparts
		for seq := uint64(1); pb.Next(); seq++ {
			if err := s.CheckpointPartition("bench", idx, seq, benchCursor, false, 1000, 1<<20); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPebbleSyncSet is the floor: one synced Pebble write of the same
// size, without the store's read and checks.
func BenchmarkPebbleSyncSet(b *testing.B) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{FormatMajorVersion: formatMajorVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	value := bytes.Repeat([]byte("v"), 200)
	b.ResetTimer()
	for i := range b.N {
		if err := db.Set([]byte(fmt.Sprintf("flow/bench/part/%08d", i%16)), value, pebble.Sync); err != nil {
			b.Fatal(err)
		}
	}
}
