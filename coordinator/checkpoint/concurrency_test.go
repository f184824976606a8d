package checkpoint

import (
	"errors"
	"sync"
	"testing"
)

// TestConcurrentCheckpoints runs checkpoints of several partitions, reads and
// a Close concurrently; run it with -race.
func TestConcurrentCheckpoints(t *testing.T) {
	const nparts, pages = 4, 50
	s := openTemp(t)
	mustCreate(t, s, "f", nparts, 1)

	var wg sync.WaitGroup
	for idx := range nparts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= pages; seq++ {
				if err := s.CheckpointPartition("f", idx, seq, crashCursor(seq), seq == pages, 1, 10); err != nil {
					t.Errorf("partition %d seq %d: %v", idx, seq, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range pages {
			if _, err := s.Partitions("f"); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Flows(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()

	for _, p := range mustPartitions(t, s, "f") {
		if p.Seq != pages || !p.Done || p.Docs != pages || p.Bytes != 10*pages {
			t.Errorf("partition %+v after %d pages", p, pages)
		}
	}
	if !mustFlow(t, s, "f").CopyDone {
		t.Error("CopyDone false after every partition is done")
	}

	// Close while readers and writers run: they see ErrClosed, never a panic.
	start := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for seq := uint64(1); ; seq++ {
				_, err := s.Flow("f")
				if err == nil {
					err = s.CheckpointUpdates("f", 0, seq, nil, 1, testClock()())
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, ErrStale) {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
