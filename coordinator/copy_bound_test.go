package coordinator

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
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

// TestStreamOutageBudget: a failing update stream keeps being reopened for
// the outage window even past the attempt cap, then fails the run.
func TestStreamOutageBudget(t *testing.T) {
	src := newFakeSource(nil, []fakeStream{{namespaces: []string{"db.a"}}})
	opens := 0
	var mu sync.Mutex
	src.streamHook = func(stream, call, batch int) (bool, error) {
		mu.Lock()
		opens++
		mu.Unlock()
		return false, spi.Retryable(errors.New("connection refused"))
	}
	cfg := testConfig(src, newFakeSink(), openStore(t), ModeCDC)
	cfg.Retry.MaxConsecutiveFailures = 2
	cfg.Retry.StreamOutage = 300 * time.Millisecond
	start := time.Now()
	_, err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("err = %v, want retries exhausted", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("gave up after %s, before the outage window", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if opens <= 2 {
		t.Fatalf("stream opened %d times: the window did not extend the attempts", opens)
	}
}

// TestNoCutoverWhileStreamDown: a stream that caught up and then lost its
// source is not "caught up" any more; --until-lag must not cut over on it.
func TestNoCutoverWhileStreamDown(t *testing.T) {
	src := newFakeSource(nil, []fakeStream{{namespaces: []string{"db.a"}}})
	src.streamHook = func(stream, call, batch int) (bool, error) {
		if call == 1 && batch < 3 {
			return false, nil // a few heartbeats: caught up
		}
		return false, spi.Retryable(errors.New("source unreachable"))
	}
	cfg := testConfig(src, newFakeSink(), openStore(t), ModeCDC)
	cfg.UntilLag = time.Second
	cfg.Settle = 300 * time.Millisecond
	cfg.Retry.MaxConsecutiveFailures = 3
	cfg.Retry.StreamOutage = 900 * time.Millisecond
	res, err := Run(t.Context(), cfg)
	if res.Cutover {
		t.Fatalf("cut over while the stream was down (err %v)", err)
	}
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("err = %v, want retries exhausted", err)
	}
}
