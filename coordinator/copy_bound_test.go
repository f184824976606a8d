package coordinator

import (
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestStalledPageBoundsWritesPastCheckpoint: while the first page of a
// partition is stuck in a slow write, the partition may write ahead only
// within MaxInflight, so a crash never re-copies more than that.
func TestStalledPageBoundsWritesPastCheckpoint(t *testing.T) {
	const pageDocs, padding, pages = 10, 1000, 40
	src := newFakeSource(makeParts([]string{"db.a"}, 1, pages*pageDocs, pageDocs, padding), nil)
	sink := newFakeSink()
	var mu sync.Mutex
	stalled := true
	stalledPage := int64(-1)
	ahead := 0 // docs of later pages written while one page is stalled
	sink.hook = func(op, ns string, call int, first bson.RawValue) error {
		page := first.Int64() / pageDocs
		if call == 1 {
			mu.Lock()
			stalledPage = page
			mu.Unlock()
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			stalled = false
			mu.Unlock()
			return nil
		}
		mu.Lock()
		if stalled && page > stalledPage {
			ahead += pageDocs
		}
		mu.Unlock()
		return nil
	}
	cfg := testConfig(src, sink, openStore(t), ModeInitial)
	cfg.Parallel = 1
	cfg.BatchBytes = 64 << 10
	const inflightPages = 5
	cfg.MaxInflight = inflightPages * pageDocs * (padding + 60)
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, sink, true)
	mu.Lock()
	defer mu.Unlock()
	// Pages before the stalled one may complete during the stall (writers
	// run concurrently); they are checkpointed. Later pages are bounded by
	// the allowance the stalled page and its successors hold.
	if limit := inflightPages * pageDocs; ahead > limit {
		t.Fatalf("%d docs written past a stalled page; MaxInflight allows at most %d", ahead, limit)
	}
}
