package coordinator

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// testLogger logs to stderr with -v when DSYNC_TEST_LOG is set; otherwise
// nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("DSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// makeParts returns partsPerNS partitions of docsPerPart documents for each
// namespace; ids are unique within a namespace.
func makeParts(namespaces []string, partsPerNS, docsPerPart, pageSize, padding int) []fakePart {
	var parts []fakePart
	pad := strings.Repeat("x", padding)
	for _, ns := range namespaces {
		for p := range partsPerNS {
			fp := fakePart{ns: ns, pageSize: pageSize}
			for i := range docsPerPart {
				id := int64(p*docsPerPart + i)
				fp.docs = append(fp.docs, mkDoc(id, bson.E{Key: "ns", Value: ns}, bson.E{Key: "pad", Value: pad}))
			}
			parts = append(parts, fp)
		}
	}
	return parts
}

func testConfig(src *fakeSource, sink *fakeSink, store Store, mode Mode) Config {
	return Config{
		Source:       src,
		Sink:         sink,
		Store:        store,
		Mode:         mode,
		Parallel:     3,
		Writers:      4,
		BatchBytes:   16 << 10,
		DrainTimeout: 20 * time.Second,
		Retry: RetryPolicy{
			InitialBackoff: time.Millisecond,
			MaxBackoff:     5 * time.Millisecond,
			StreamOutage:   time.Nanosecond,
		},
		Logger: testLogger(),
	}
}

// runFlow runs cfg with a deadline so that a hang fails the test.
func runFlow(t *testing.T, ctx context.Context, cfg Config) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("run did not finish in time: %v", err)
	}
	return res, err
}

// checkCopied checks that the sink holds exactly the source's documents,
// each written once when once is set.
func checkCopied(t *testing.T, src *fakeSource, sink *fakeSink, once bool) {
	t.Helper()
	want := make(map[string]int)
	for _, p := range src.parts {
		want[p.ns] += len(p.docs)
		for _, d := range p.docs {
			if !sink.has(p.ns, idOf(d)) {
				t.Fatalf("document %s of %s missing from the sink", idOf(d), p.ns)
			}
		}
	}
	got := sink.snapshot()
	for ns, n := range want {
		if len(got[ns]) != n {
			t.Errorf("sink namespace %s has %d documents, want %d", ns, len(got[ns]), n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("sink has namespaces %d, want %d", len(got), len(want))
	}
	if once {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for k, n := range sink.dataWrites {
			if n != 1 {
				t.Errorf("document %s written %d times", k, n)
			}
		}
	}
}

func TestCopyEveryDocumentOnce(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b", "other.c"}, 4, 500, 37, 100), nil)
	sink := newFakeSink()
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	var started StartInfo
	cfg.OnStart = func(si StartInfo) { started = si }
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, sink, true)

	wantID := FlowID(src.id, sink.id, NamespaceMap{}, nil, ModeInitial)
	if res.FlowID != wantID || started.FlowID != wantID || res.StateDir != store.Dir() || started.StateDir != store.Dir() {
		t.Errorf("flow id %q / start %+v, want %q in %s", res.FlowID, started, wantID, store.Dir())
	}
	if res.Resumed || res.Stopped || res.Cutover || res.Phase != PhaseDone {
		t.Errorf("result %+v", res)
	}
	if res.DocsCopied != 6000 || res.BytesCopied == 0 {
		t.Errorf("DocsCopied = %d, BytesCopied = %d", res.DocsCopied, res.BytesCopied)
	}
	parts, err := store.Partitions(res.FlowID)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 12 {
		t.Fatalf("%d partitions stored", len(parts))
	}
	for _, p := range parts {
		if !p.Done || p.Docs != 500 || p.Seq != uint64(src.parts[p.Index].pages()) {
			t.Errorf("partition %+v", p)
		}
	}
	snap := f.Stats().Snapshot()
	if snap.Phase != PhaseDone || snap.Docs != 6000 || snap.PartitionsDone != 12 || snap.PartitionsTotal != 12 ||
		snap.EstimatedDocs != 6000 || len(snap.Namespaces) != 3 || snap.FlowID != wantID {
		t.Errorf("stats %+v", snap)
	}
	if src.listCalls != src.totalPages() {
		t.Errorf("%d ListData calls for %d pages", src.listCalls, src.totalPages())
	}

	// A finished initial flow run again does nothing.
	res2, err := runFlow(t, t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Resumed || res2.DocsCopied != 0 || res2.Phase != PhaseDone || src.listCalls != src.totalPages() {
		t.Errorf("rerun: %+v, %d ListData calls", res2, src.listCalls)
	}
}

// The sink acknowledges writes out of order (random delays, many writers,
// pages cut into several batches); every checkpoint must only cover pages
// whose documents are all written.
func TestCheckpointContiguousPrefix(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 3, 400, 40, 200), nil)
	sink := newFakeSink()
	sink.delay = func(string) time.Duration { return time.Duration(rand.IntN(2000)) * time.Microsecond }
	store := openStore(t)
	var checked atomic.Int64
	store.before = func(parts []checkpoint.PartitionCheckpoint, _ []checkpoint.UpdateCheckpoint) {
		for _, p := range parts {
			fp := src.parts[p.Index]
			pages := fp.pages()
			if len(p.Cursor) > 0 {
				n, err := strconv.Atoi(string(p.Cursor))
				if err != nil {
					t.Errorf("cursor %q", p.Cursor)
					continue
				}
				pages = n
			}
			if p.Seq != uint64(pages) {
				t.Errorf("partition %d: seq %d for cursor %q", p.Index, p.Seq, p.Cursor)
			}
			for _, d := range fp.docs[:min(pages*fp.pageSize, len(fp.docs))] {
				if !sink.has(fp.ns, idOf(d)) {
					t.Errorf("partition %d checkpointed at page %d before document %s was written", p.Index, pages, idOf(d))
					return
				}
			}
			checked.Add(1)
		}
	}
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.Writers = 8
	cfg.BatchBytes = 2500 // about 10 documents: 4 batches per page
	if _, err := runFlow(t, t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, sink, true)
	if checked.Load() == 0 {
		t.Error("no checkpoint checked")
	}
}

// A stop in the middle of the copy drains and checkpoints; the next run
// re-reads at most one page per partition that was being read.
func TestResumeAfterStop(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 4, 300, 20, 50), nil)
	sink := newFakeSink()
	store := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src.listHook = func(call int, _ spi.Partition, _ []byte) error {
		if call == 40 {
			cancel()
		}
		return nil
	}
	cfg := testConfig(src, sink, store, ModeInitial)
	res, err := runFlow(t, ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Phase != PhaseCopy || res.DocsCopied == 0 {
		t.Fatalf("first run: %+v", res)
	}
	firstCalls := src.listCalls

	src.listHook = nil
	res2, err := runFlow(t, t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Resumed || res2.Stopped || res2.Phase != PhaseDone || res2.FlowID != res.FlowID {
		t.Fatalf("second run: %+v", res2)
	}
	checkCopied(t, src, sink, false)
	reread := src.listCalls - src.totalPages()
	if reread < 0 || reread > cfg.Parallel {
		t.Errorf("%d pages read again (first run %d calls, total %d, pages %d), want at most %d",
			reread, firstCalls, src.listCalls, src.totalPages(), cfg.Parallel)
	}
	if res.DocsCopied+res2.DocsCopied != 2400 {
		t.Errorf("docs checkpointed %d + %d, want 2400", res.DocsCopied, res2.DocsCopied)
	}
}

// genEvents returns n events on keys [0, keys) of the namespaces, in runs of
// up to 7 events per namespace, starting from docs that exist initially.
// Each update carries its position (seqTag).
func genEvents(rng *rand.Rand, namespaces []string, keys, initial, n, first int) []fakeEvent {
	exists := make(map[string]bool)
	for _, ns := range namespaces {
		for k := range initial {
			exists[ns+" "+strconv.Itoa(k)] = true
		}
	}
	var out []fakeEvent
	for len(out) < n {
		ns := namespaces[rng.IntN(len(namespaces))]
		for range 1 + rng.IntN(7) {
			seq := first + len(out)
			k := int64(rng.IntN(keys))
			ek := ns + " " + strconv.FormatInt(k, 10)
			u := spi.Update{ID: int64ID(k), Unset: []string{seqTag(seq)}}
			switch r := rng.IntN(10); {
			case !exists[ek]:
				u.Type, u.Doc = spi.UpdateInsert, mkDoc(k, bson.E{Key: "v", Value: int64(seq)})
				exists[ek] = true
			case r < 4:
				u.Type, u.Doc = spi.UpdateReplace, mkDoc(k, bson.E{Key: "v", Value: int64(seq)}, bson.E{Key: "r", Value: true})
			case r < 8:
				u.Type = spi.UpdatePartial
				b, _ := bson.Marshal(bson.D{{Key: "v", Value: int64(seq)}, {Key: "p" + strconv.Itoa(r), Value: int64(seq)}})
				u.Doc = b
			default:
				u.Type = spi.UpdateDelete
				exists[ek] = false
			}
			out = append(out, fakeEvent{ns: ns, u: u})
		}
	}
	return out[:n]
}

// expectedState applies the copy and then every stream's events in order.
func expectedState(src *fakeSource, mapNS func(string) string) map[string]map[string]bson.Raw {
	state := make(map[string]map[string]bson.Raw)
	get := func(ns string) map[string]bson.Raw {
		if state[ns] == nil {
			state[ns] = make(map[string]bson.Raw)
		}
		return state[ns]
	}
	for _, p := range src.parts {
		for _, d := range p.docs {
			get(mapNS(p.ns))[idKey(idOf(d))] = d
		}
	}
	for _, st := range src.streams {
		for _, e := range st.events {
			applyUpdate(get(mapNS(e.ns)), e.u)
		}
	}
	for ns, m := range state {
		if len(m) == 0 {
			delete(state, ns)
		}
	}
	return state
}

func compareState(t *testing.T, got, want map[string]map[string]bson.Raw) {
	t.Helper()
	for ns, m := range got {
		if len(m) == 0 {
			delete(got, ns)
		}
	}
	if len(got) != len(want) {
		t.Errorf("sink has %d namespaces, want %d", len(got), len(want))
	}
	diffs := 0
	for ns, wm := range want {
		gm := got[ns]
		if len(gm) != len(wm) {
			t.Errorf("namespace %s: %d documents, want %d", ns, len(gm), len(wm))
		}
		for k, wd := range wm {
			if gd, ok := gm[k]; !ok || !bytes.Equal(gd, wd) {
				if diffs++; diffs <= 5 {
					t.Errorf("namespace %s, id %s: got %v, want %v", ns, k, gd, wd)
				}
			}
		}
	}
}

// waitCursors cancels the run once every stream's checkpointed cursor is at
// the end of its events.
func waitCursors(t *testing.T, store Store, src *fakeSource, cancel context.CancelFunc) {
	for {
		time.Sleep(5 * time.Millisecond)
		flows, err := store.Flows()
		if err != nil || len(flows) != 1 {
			continue
		}
		ups, err := store.Updates(flows[0].ID)
		if err != nil || len(ups) != len(src.streams) {
			continue
		}
		done := true
		for i, u := range ups {
			if string(u.Cursor) != string(streamCursor(i, len(src.streams[i].events))) {
				done = false
			}
		}
		if done {
			cancel()
			return
		}
	}
}

func cdcSource(rng *rand.Rand, events int) *fakeSource {
	nsA, nsB := []string{"db.a", "db.b"}, []string{"db.c"}
	parts := makeParts([]string{"db.a", "db.b", "db.c"}, 2, 50, 25, 10)
	streams := []fakeStream{
		{namespaces: nsA, events: genEvents(rng, nsA, 300, 100, events*2/3, 0)},
		{namespaces: nsB, events: genEvents(rng, nsB, 200, 100, events-events*2/3, events*2/3)},
	}
	return newFakeSource(parts, streams)
}

// CDC with many lanes keeps per-key order: the final state equals applying
// every event in order, and no key sees an older event after a newer one.
func TestCDCPerKeyOrderAcrossLanes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := cdcSource(rng, 21000)
	src.eventBatch = 64
	sink := newFakeSink()
	sink.delay = func(string) time.Duration { return time.Duration(rand.IntN(200)) * time.Microsecond }
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeFull)
	cfg.Writers = 6
	cfg.BatchBytes = 1500 // a few updates per WriteUpdates call
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go waitCursors(t, store, src, cancel)
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Phase != PhaseCDC || res.EventsApplied != 21000 {
		t.Errorf("result %+v", res)
	}
	if len(sink.orderErrors) > 0 {
		t.Fatalf("%d per-key order violations, first: %s", len(sink.orderErrors), sink.orderErrors[0])
	}
	if sink.updates != 21000 {
		t.Errorf("sink applied %d updates, want 21000 (each once)", sink.updates)
	}
	compareState(t, sink.snapshot(), expectedState(src, func(ns string) string { return ns }))
	if len(res.Cursors) != 2 || res.Cursors[1].Cursor != hex.EncodeToString(streamCursor(1, len(src.streams[1].events))) {
		t.Errorf("cursors %+v", res.Cursors)
	}
	if got := f.Stats().Snapshot(); got.Events < 21000 || got.Phase != PhaseStopped {
		t.Errorf("stats %+v", got)
	}
}

// A stream cursor is checkpointed only after all its earlier updates are
// applied, and acknowledged to the source only after it is durable.
func TestCDCCheckpointAfterApplyAckAfterCheckpoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := cdcSource(rng, 3000)
	src.eventBatch = 20
	sink := newFakeSink()
	sink.delay = func(string) time.Duration { return time.Duration(rand.IntN(300)) * time.Microsecond }
	store := openStore(t)

	var mu sync.Mutex
	durable := make(map[int]int) // stream -> durable offset
	var checks atomic.Int64
	store.before = func(_ []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint) {
		for _, u := range ups {
			idx, off, err := parseStreamCursor(u.Cursor)
			if err != nil {
				t.Error(err)
				continue
			}
			for _, e := range src.streams[idx].events[:off] {
				seq := seqOf(e.u)
				sink.mu.Lock()
				last, ok := sink.lastSeq[e.ns+" "+idKey(e.u.ID)]
				sink.mu.Unlock()
				if !ok || last < seq {
					t.Errorf("stream %d checkpointed at %d before event %d was applied", idx, off, seq)
					return
				}
			}
			checks.Add(1)
		}
	}
	store.after = func(_ []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range ups {
			idx, off, _ := parseStreamCursor(u.Cursor)
			durable[idx] = off
		}
	}
	var acks atomic.Int64
	src.ackHook = func(idx int, cursor []byte) {
		_, off, _ := parseStreamCursor(cursor)
		mu.Lock()
		defer mu.Unlock()
		if off > durable[idx] {
			t.Errorf("stream %d acknowledged at %d, durable only up to %d", idx, off, durable[idx])
		}
		acks.Add(1)
	}
	cfg := testConfig(src, sink, store, ModeFull)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go waitCursors(t, store, src, cancel)
	if _, err := runFlow(t, ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if checks.Load() == 0 || acks.Load() == 0 {
		t.Errorf("%d checkpoints, %d acknowledgements checked", checks.Load(), acks.Load())
	}
	// The final acknowledgement is the final cursor.
	for i, st := range src.streams {
		acked := src.acks[i]
		if len(acked) == 0 || acked[len(acked)-1] != string(streamCursor(i, len(st.events))) {
			t.Errorf("stream %d: last acknowledgement %q", i, acked[len(acked)-1:])
		}
	}
	compareState(t, sink.snapshot(), expectedState(src, func(ns string) string { return ns }))
}

// Retryable errors of the source, the sink and transforms are retried.
func TestRetryableErrorsRetried(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 2, 200, 25, 10), nil)
	failedCursor := make(map[string]bool)
	var mu sync.Mutex
	src.listHook = func(_ int, p spi.Partition, cursor []byte) error {
		mu.Lock()
		defer mu.Unlock()
		k := string(p.Cursor) + "/" + string(cursor)
		if !failedCursor[k] {
			failedCursor[k] = true
			return spi.Retryable(errors.New("connection reset"))
		}
		return nil
	}
	sink := newFakeSink()
	attempts := make(map[string]int)
	sink.hook = func(_, ns string, _ int, first bson.RawValue) error {
		mu.Lock()
		defer mu.Unlock()
		k := ns + " " + idKey(first)
		if attempts[k]++; attempts[k] <= 2 {
			return spi.Retryable(errors.New("primary stepped down"))
		}
		return nil
	}
	tr := &renameDropTransform{failures: 5}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.Transforms = []spi.Transform{tr}
	cfg.TransformSpecs = []string{"noop"}
	res, err := runFlow(t, t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != PhaseDone || res.DocsCopied != 400 || res.DocsDropped != 400 {
		t.Errorf("result %+v", res)
	}
}

// A fatal write error stops the run with the namespace and the sink's
// message; what was written before is checkpointed.
func TestFatalWriteError(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.good", "db.bad"}, 2, 100, 10, 10), nil)
	sink := newFakeSink()
	sink.hook = func(_, ns string, call int, _ bson.RawValue) error {
		if ns == "db.bad" && call > 4 {
			return spi.Fatal(errors.New("E11000 duplicate key error: _id: 42"))
		}
		return nil
	}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	res, err := runFlow(t, t.Context(), cfg)
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
	for _, want := range []string{`write to sink namespace "db.bad"`, "_id: 42"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if spi.KindOf(err) != spi.KindFatal {
		t.Errorf("kind %v", spi.KindOf(err))
	}
	parts, err := store.Partitions(res.FlowID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Namespace == "db.bad" && p.Done {
			t.Errorf("partition %d of db.bad marked done", p.Index)
		}
		// Whatever the store says is written must be in the sink.
		fp := src.parts[p.Index]
		if n := int(p.Seq) * fp.pageSize; n > 0 {
			for _, d := range fp.docs[:min(n, len(fp.docs))] {
				if !sink.has(fp.ns, idOf(d)) {
					t.Fatalf("checkpointed document %s of %s not in the sink", idOf(d), fp.ns)
				}
			}
		}
	}
}

// An operation failing with retryable errors fails the run after
// MaxConsecutiveFailures attempts.
func TestConsecutiveFailureCap(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a"}, 1, 10, 10, 10), nil)
	sink := newFakeSink()
	var calls atomic.Int64
	sink.hook = func(string, string, int, bson.RawValue) error {
		calls.Add(1)
		return spi.Retryable(errors.New("server unavailable"))
	}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.Retry.MaxConsecutiveFailures = 5
	_, err := runFlow(t, t.Context(), cfg)
	if !errors.Is(err, ErrRetriesExhausted) || !strings.Contains(err.Error(), "server unavailable") ||
		!strings.Contains(err.Error(), `write to sink namespace "db.a"`) {
		t.Fatalf("error %v", err)
	}
	if calls.Load() != 5 {
		t.Errorf("%d write calls, want 5", calls.Load())
	}
	if spi.IsRetryable(err) {
		t.Error("exhausted error is retryable")
	}
}

// A stream that ends, or fails with a retryable error, is reopened from its
// checkpointed cursor; every event is applied once.
func TestStreamReopensFromCheckpoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := cdcSource(rng, 2000)
	src.eventBatch = 10
	src.streamHook = func(stream, call, batch int) (bool, error) {
		switch {
		case stream == 0 && call == 1 && batch == 7:
			return true, nil // ends
		case stream == 0 && call == 2 && batch == 5:
			return true, spi.Retryable(errors.New("plugin restarted"))
		case stream == 1 && call <= 2 && batch == 3:
			return true, spi.Retryable(errors.New("cursor killed"))
		}
		return false, nil
	}
	sink := newFakeSink()
	store := openStore(t)
	var mu sync.Mutex
	durable := make(map[int]string)
	store.after = func(_ []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range ups {
			idx, _, _ := parseStreamCursor(u.Cursor)
			durable[idx] = string(u.Cursor)
		}
	}
	cfg := testConfig(src, sink, store, ModeCDC)
	cfg.Retry.MaxConsecutiveFailures = 3
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go waitCursors(t, store, src, cancel)
	res, err := runFlow(t, ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsApplied != 2000 || sink.updates != 2000 {
		t.Errorf("events %d, sink updates %d, want 2000 each", res.EventsApplied, sink.updates)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if got := len(src.streamCalls[0]); got != 3 {
		t.Errorf("stream 0 opened %d times, want 3: %q", got, src.streamCalls[0])
	}
	if got := len(src.streamCalls[1]); got != 3 {
		t.Errorf("stream 1 opened %d times, want 3: %q", got, src.streamCalls[1])
	}
	// Reopened exactly after the 7 (then 5) batches received before.
	ends := batchEnds(src.streams[0].events, src.eventBatch)
	want := []string{"s0:0", string(streamCursor(0, ends[6])), string(streamCursor(0, ends[11]))}
	if got := src.streamCalls[0]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream 0 opened at %q, want %q", got, want)
	}
	if len(sink.orderErrors) > 0 {
		t.Errorf("order violations: %q", sink.orderErrors[0])
	}
	// The copy is skipped in cdc mode: the expected state is events only.
	src.parts = nil
	compareState(t, sink.snapshot(), expectedState(src, func(ns string) string { return ns }))
}

// batchEnds returns the offset after each batch the fake source sends.
func batchEnds(events []fakeEvent, maxBatch int) []int {
	var ends []int
	for off := 0; off < len(events); {
		ns, n := events[off].ns, 0
		for off < len(events) && events[off].ns == ns && n < maxBatch {
			off++
			n++
		}
		ends = append(ends, off)
	}
	return ends
}

// A stream that fails without progress MaxConsecutiveFailures times fails the
// run; a fatal stream error fails it at once.
func TestStreamFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		wantErr error
	}{
		{"retryable", spi.Retryable(errors.New("unavailable")), ErrRetriesExhausted},
		{"ends", nil, ErrStreamEnded},
		{"fatal", spi.FailedPrecondition(errors.New("resume token lost")), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(nil, []fakeStream{{namespaces: []string{"db.a"}}})
			src.streamHook = func(_, _, batch int) (bool, error) { return true, tt.err }
			store := openStore(t)
			cfg := testConfig(src, newFakeSink(), store, ModeCDC)
			cfg.Retry.MaxConsecutiveFailures = 4
			_, err := runFlow(t, t.Context(), cfg)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "update partition 0 (db.a)") {
				t.Errorf("error %q does not name the stream", err)
			}
			want := 4
			if tt.wantErr == nil {
				want = 1
			}
			if got := len(src.streamCalls[0]); got != want {
				t.Errorf("stream opened %d times, want %d", got, want)
			}
		})
	}
}

func TestNamespaceMapping(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := newFakeSource(makeParts([]string{"db1.a", "db1.b", "db2.c", "db2.d", "db3.e"}, 2, 30, 7, 10), nil)
	src.streams = []fakeStream{{namespaces: nil, events: genEvents(rng, []string{"db1.a", "db1.b", "db2.c", "db3.e"}, 80, 60, 500, 0)}}
	m, err := ParseNamespaceMap([]string{"db1.a:x.y", "db2:z"})
	if err != nil {
		t.Fatal(err)
	}
	sink := newFakeSink()
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeFull)
	cfg.Namespaces = m
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go waitCursors(t, store, src, cancel)
	res, err := runFlow(t, ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.FlowID != FlowID(src.id, sink.id, m, nil, ModeFull) {
		t.Errorf("flow id %s", res.FlowID)
	}
	// Expected: db1.a -> x.y, db2.* -> z.*, db1.b and db3.e not copied.
	src.parts = slicesFilter(src.parts, func(p fakePart) bool { return m.Selects(p.ns) })
	var evs []fakeEvent
	for _, e := range src.streams[0].events {
		if m.Selects(e.ns) {
			evs = append(evs, e)
		}
	}
	src.streams[0].events = evs
	want := expectedState(src, m.Map)
	if _, ok := want["x.y"]; !ok {
		t.Fatalf("expected state lacks x.y: %v", len(want))
	}
	if _, ok := want["z.c"]; !ok {
		t.Fatal("expected state lacks z.c")
	}
	compareState(t, sink.snapshot(), want)
	if sink.has("db1.b", int64ID(0)) || sink.has("db1.a", int64ID(0)) {
		t.Error("unmapped or source namespace written")
	}
}

func slicesFilter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// A transform that renames a namespace and drops documents and updates.
func TestTransformRenamesAndDrops(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 2, 100, 30, 10), nil)
	src.streams = []fakeStream{{namespaces: []string{"db.a", "db.b"}, events: genEvents(rng, []string{"db.a", "db.b"}, 300, 200, 1000, 0)}}
	sink := newFakeSink()
	store := openStore(t)
	tr := &renameDropTransform{from: "db.a", to: "db.renamed"}
	cfg := testConfig(src, sink, store, ModeFull)
	cfg.Transforms = []spi.Transform{tr}
	cfg.TransformSpecs = []string{"rename:db.a=db.renamed,drop-odd"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go waitCursors(t, store, src, cancel)
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.DocsCopied != 200 || res.DocsDropped != 200 {
		t.Errorf("copied %d, dropped %d, want 200 and 200", res.DocsCopied, res.DocsDropped)
	}
	// Expected: even ids only, db.a under db.renamed.
	for i := range src.parts {
		src.parts[i].docs = slicesFilter(src.parts[i].docs, func(d bson.Raw) bool { return !odd(idOf(d)) })
	}
	src.streams[0].events = slicesFilter(src.streams[0].events, func(e fakeEvent) bool { return !odd(e.u.ID) })
	compareState(t, sink.snapshot(), expectedState(src, tr.rename))
	snap := f.Stats().Snapshot()
	var names []string
	for _, n := range snap.Namespaces {
		if n.Docs > 0 {
			names = append(names, n.Namespace)
		}
	}
	if fmt.Sprint(names) != "[db.b db.renamed]" || snap.DocsDropped != 200 {
		t.Errorf("stats namespaces %v, dropped %d", names, snap.DocsDropped)
	}
}

// With UntilLag, the run ends by itself once the lag has stayed low for the
// settle window, with every event applied and the final cursors.
func TestUntilLagCutover(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	src := cdcSource(rng, 1500)
	// Changes are an hour old until the stream catches up with heartbeats.
	src.eventTime = func() time.Time { return time.Now().Add(-time.Hour) }
	sink := newFakeSink()
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeFull)
	cfg.UntilLag = time.Second
	cfg.Settle = 50 * time.Millisecond
	res, err := runFlow(t, t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cutover || res.Stopped || res.Phase != PhaseCDC {
		t.Fatalf("result %+v", res)
	}
	if len(res.Cursors) != 2 {
		t.Fatalf("cursors %+v", res.Cursors)
	}
	for i, c := range res.Cursors {
		want := hex.EncodeToString(streamCursor(i, len(src.streams[i].events)))
		if c.Cursor != want || c.Index != i {
			t.Errorf("cursor %d = %+v, want %s", i, c, want)
		}
	}
	compareState(t, sink.snapshot(), expectedState(src, func(ns string) string { return ns }))
}

// Other flow-defining options while a flow is unfinished are refused; Reset
// starts over.
func TestChangedOptionsRefusedAndReset(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 2, 100, 10, 10), nil)
	sink := newFakeSink()
	store := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	src.listHook = func(call int, _ spi.Partition, _ []byte) error {
		if call == 5 {
			cancel()
		}
		return nil
	}
	cfg := testConfig(src, sink, store, ModeInitial)
	res, err := runFlow(t, ctx, cfg)
	if err != nil || !res.Stopped {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	src.listHook = nil

	m, _ := ParseNamespaceMap([]string{"db.a"})
	changed := cfg
	changed.Namespaces = m
	_, err = runFlow(t, t.Context(), changed)
	if !errors.Is(err, ErrFlowOptionsChanged) {
		t.Fatalf("changed mapping: %v", err)
	}
	t.Log(err)
	for _, want := range []string{`namespace mapping changed from (all namespaces) to "db.a"`, "--reset", res.FlowID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	changedMode := cfg
	changedMode.Mode = ModeFull
	if _, err := runFlow(t, t.Context(), changedMode); !errors.Is(err, ErrFlowOptionsChanged) ||
		!strings.Contains(err.Error(), "mode changed from initial to full") {
		t.Errorf("changed mode: %v", err)
	}
	if flows, _ := store.Flows(); len(flows) != 1 {
		t.Errorf("%d flows stored after refusals", len(flows))
	}

	changed.Reset = true
	res2, err := runFlow(t, t.Context(), changed)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Resumed || res2.FlowID == res.FlowID || res2.Phase != PhaseDone || res2.DocsCopied != 200 {
		t.Errorf("reset run: %+v", res2)
	}
	flows, err := store.Flows()
	if err != nil || len(flows) != 1 || flows[0].ID != res2.FlowID {
		t.Errorf("flows after reset: %+v, %v", flows, err)
	}

	// A tuning option does not change the flow; the finished flow is kept.
	tuned := changed
	tuned.Reset = false
	tuned.Parallel, tuned.Writers, tuned.BatchBytes = 1, 1, 1<<20
	res3, err := runFlow(t, t.Context(), tuned)
	if err != nil || !res3.Resumed || res3.FlowID != res2.FlowID {
		t.Errorf("tuned run: %+v, %v", res3, err)
	}
	// Other options are accepted once the flow is finished.
	if res4, err := runFlow(t, t.Context(), cfg); err != nil || res4.FlowID != res.FlowID || res4.Resumed {
		t.Errorf("new flow after a finished one: %+v, %v", res4, err)
	}
	// Reset with the same options starts the same flow over.
	again := cfg
	again.Reset = true
	res5, err := runFlow(t, t.Context(), again)
	if err != nil || res5.FlowID != res.FlowID || res5.Resumed || res5.DocsCopied != 400 {
		t.Errorf("reset of the same flow: %+v, %v", res5, err)
	}
	if flows, _ := store.Flows(); len(flows) != 1 {
		t.Errorf("%d flows after resetting every flow of the pair", len(flows))
	}
}

// In-flight bytes stay bounded by MaxInflight, however far the source is
// ahead of a slow sink.
func TestInflightBytesBounded(t *testing.T) {
	const docSize = 1 << 10
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 4, 200, 8, docSize), nil)
	var pageBytes int64
	for _, d := range src.parts[0].docs[:8] {
		pageBytes += int64(len(d))
	}
	sink := newFakeSink()
	sink.delay = func(string) time.Duration { return time.Millisecond }
	var maxOutstanding atomic.Int64
	sink.hook = func(string, string, int, bson.RawValue) error {
		src.mu.Lock()
		read := src.readBytes
		src.mu.Unlock()
		sink.mu.Lock()
		out := read - sink.written
		sink.mu.Unlock()
		for {
			cur := maxOutstanding.Load()
			if out <= cur || maxOutstanding.CompareAndSwap(cur, out) {
				break
			}
		}
		return nil
	}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.MaxInflight = 4 * pageBytes
	cfg.Writers = 16
	cfg.Parallel = 4
	cfg.BatchBytes = 2 * docSize
	if _, err := runFlow(t, t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, sink, true)
	if sink.peak > cfg.MaxInflight+pageBytes {
		t.Errorf("sink saw %d bytes in flight, bound %d + one page %d", sink.peak, cfg.MaxInflight, pageBytes)
	}
	if sink.peak == 0 {
		t.Error("no bytes seen")
	}
	// Read and not yet written: the in-flight bound plus, per reader, the
	// page it read and waits to admit.
	if limit := cfg.MaxInflight + int64(cfg.Parallel)*pageBytes; maxOutstanding.Load() > limit {
		t.Errorf("%d bytes read and not written, limit %d", maxOutstanding.Load(), limit)
	}
}

// A page larger than MaxInflight is admitted alone rather than blocking.
func TestPageLargerThanInflightBound(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a"}, 3, 50, 50, 1000), nil)
	sink := newFakeSink()
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.MaxInflight = 10 << 10 // a page is ~50 KiB
	if _, err := runFlow(t, t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, sink, true)
	if sink.peak > 60<<10 {
		t.Errorf("%d bytes in flight: large pages were not admitted alone", sink.peak)
	}
}

func TestSourceWithoutUpdates(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a"}, 1, 10, 10, 10), nil)
	src.caps.Updates = false
	store := openStore(t)
	for _, mode := range []Mode{ModeFull, ModeCDC} {
		_, err := runFlow(t, t.Context(), testConfig(src, newFakeSink(), store, mode))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "cannot stream updates") {
			t.Errorf("mode %s: %v", mode, err)
		}
	}
	if src.planCalls != 0 {
		t.Errorf("planned %d times", src.planCalls)
	}
	if flows, _ := store.Flows(); len(flows) != 0 {
		t.Errorf("%d flows stored", len(flows))
	}
	// Initial mode needs no updates.
	if _, err := runFlow(t, t.Context(), testConfig(src, newFakeSink(), store, ModeInitial)); err != nil {
		t.Error(err)
	}
}

func TestPlanPersistedBeforeData(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.a", "db.b"}, 2, 10, 5, 10), []fakeStream{{namespaces: []string{"db.a", "db.b"}}})
	store := openStore(t)
	src.listHook = func(call int, _ spi.Partition, _ []byte) error {
		if call == 1 {
			flows, err := store.Flows()
			if err != nil || len(flows) != 1 {
				t.Errorf("no flow stored before the first read: %v", err)
				return nil
			}
			parts, _ := store.Partitions(flows[0].ID)
			ups, _ := store.Updates(flows[0].ID)
			if len(parts) != 4 || len(ups) != 1 || string(ups[0].Cursor) != "s0:0" {
				t.Errorf("stored plan: %d partitions, update partitions %+v", len(parts), ups)
			}
		}
		return nil
	}
	cfg := testConfig(src, newFakeSink(), store, ModeFull)
	cfg.UntilLag = time.Hour
	cfg.Settle = time.Millisecond
	res, err := runFlow(t, t.Context(), cfg)
	if err != nil || !res.Cutover {
		t.Fatalf("%+v, %v", res, err)
	}
	if src.planCalls != 1 {
		t.Errorf("%d plan calls", src.planCalls)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	if c.Mode != ModeFull || c.Parallel != 4 || c.Writers != 8 || c.BatchBytes != 4<<20 || c.MaxInflight != 64<<20 ||
		c.Settle != 5*time.Second || c.DrainTimeout != 30*time.Second || c.Retry.InitialBackoff != 100*time.Millisecond ||
		c.Retry.MaxBackoff != 10*time.Second || c.Retry.MaxConsecutiveFailures != 8 || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no source: %v", err)
	}
	ok := testConfig(newFakeSource(nil, nil), newFakeSink(), openStore(t), ModeFull)
	ok.EnsureDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"negative parallel":    func(c *Config) { c.Parallel = -1 },
		"transforms w/o specs": func(c *Config) { c.Transforms = []spi.Transform{&renameDropTransform{}} },
		"until-lag in initial": func(c *Config) { c.Mode, c.UntilLag = ModeInitial, time.Second },
		"unknown mode":         func(c *Config) { c.Mode = "sometimes" },
		"jitter above 1":       func(c *Config) { c.Retry.Jitter = 2 },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseMode("cdc"); err != nil {
		t.Error(err)
	}
}

func TestRetryBackoff(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: -1}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		if got := p.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
	p.Jitter = 0.5
	for range 100 {
		if d := p.backoff(3); d < 200*time.Millisecond || d > 400*time.Millisecond {
			t.Fatalf("jittered backoff %s out of range", d)
		}
	}
}

// Advances added while a checkpoint is being written go into one next write.
func TestCheckpointerGroupCommit(t *testing.T) {
	store := openStore(t)
	parts := make([]checkpoint.PartitionState, 50)
	for i := range parts {
		parts[i] = checkpoint.PartitionState{Index: i, Namespace: "db.a"}
	}
	if err := store.CreateFlow(checkpoint.FlowMeta{ID: "f"}, parts, nil); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var sizes []int
	store.before = func(p []checkpoint.PartitionCheckpoint, _ []checkpoint.UpdateCheckpoint) {
		sizes = append(sizes, len(p))
		if len(sizes) == 1 {
			entered <- struct{}{}
			<-release
		}
	}
	c := newCheckpointer(store, "f", func([]checkpoint.PartitionCheckpoint, []updAdvance) {}, func(err error) { t.Error(err) })
	c.addPartition(checkpoint.PartitionCheckpoint{Index: 0, Seq: 1, Cursor: []byte("a"), DocsDelta: 1})
	<-entered
	for i := 1; i < 50; i++ {
		for seq := uint64(1); seq <= 3; seq++ {
			c.addPartition(checkpoint.PartitionCheckpoint{Index: i, Seq: seq, Cursor: []byte{byte(seq)}, DocsDelta: 2})
		}
	}
	close(release)
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[1 49]" {
		t.Errorf("checkpoint sizes %v, want [1 49]", sizes)
	}
	got, err := store.Partitions("f")
	if err != nil {
		t.Fatal(err)
	}
	if got[7].Seq != 3 || got[7].Docs != 6 || string(got[7].Cursor) != "\x03" {
		t.Errorf("merged partition %+v", got[7])
	}
}

// A stop during CDC drains and checkpoints; the next run continues from the
// checkpoint and the final state is as if nothing had stopped.
func TestCDCStopAndResume(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	src := cdcSource(rng, 10000)
	src.eventBatch = 16
	sink := newFakeSink()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var updates atomic.Int64
	sink.hook = func(op, _ string, _ int, _ bson.RawValue) error {
		if op == "updates" && updates.Add(1) == 60 {
			cancel()
		}
		return nil
	}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeFull)
	// Small writes and a small in-flight bound keep the streams close to
	// the sink, so the stop comes long before the last event.
	cfg.BatchBytes = 1500
	cfg.MaxInflight = 8 << 10
	res, err := runFlow(t, ctx, cfg)
	if err != nil || !res.Stopped || res.Phase != PhaseCDC {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	if res.EventsApplied == 0 || res.EventsApplied >= 10000 {
		t.Fatalf("first run applied %d events", res.EventsApplied)
	}
	firstApplied := sink.updates
	if int(res.EventsApplied) != firstApplied {
		t.Errorf("first run checkpointed %d events, sink applied %d: the drain lost or skipped some", res.EventsApplied, firstApplied)
	}
	sink.hook = nil
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go waitCursors(t, store, src, cancel2)
	res2, err := runFlow(t, ctx2, cfg)
	if err != nil || !res2.Resumed {
		t.Fatalf("second run: %+v, %v", res2, err)
	}
	if res.EventsApplied+res2.EventsApplied != 10000 || sink.updates != 10000 {
		t.Errorf("events %d + %d, sink applied %d, want 10000 once each", res.EventsApplied, res2.EventsApplied, sink.updates)
	}
	compareState(t, sink.snapshot(), expectedState(src, func(ns string) string { return ns }))
}

// Writes that do not finish within the drain timeout are cancelled: Run
// returns, nothing unwritten is checkpointed, and the next run redoes it.
func TestDrainTimeout(t *testing.T) {
	src := newFakeSource(makeParts([]string{"db.fast", "db.slow"}, 1, 100, 10, 10), nil)
	sink := newFakeSink()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sink.delay = func(ns string) time.Duration {
		if ns == "db.slow" {
			cancel()
			return time.Hour
		}
		return 0
	}
	store := openStore(t)
	cfg := testConfig(src, sink, store, ModeInitial)
	cfg.DrainTimeout = 50 * time.Millisecond
	res, err := runFlow(t, ctx, cfg)
	if err != nil || !res.Stopped {
		t.Fatalf("%+v, %v", res, err)
	}
	if res.Duration > 20*time.Second {
		t.Errorf("Run took %s with a drain timeout of %s", res.Duration, cfg.DrainTimeout)
	}
	parts, err := store.Partitions(res.FlowID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Namespace == "db.slow" && p.Seq != 0 {
			t.Errorf("db.slow checkpointed at seq %d though nothing was written", p.Seq)
		}
	}
	sink.delay = nil
	res2, err := runFlow(t, t.Context(), cfg)
	if err != nil || res2.Phase != PhaseDone {
		t.Fatalf("resume: %+v, %v", res2, err)
	}
	checkCopied(t, src, sink, false)
}
