package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// testClock returns a deterministic clock advancing one second per call.
func testClock() func() time.Time {
	t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

// openTemp opens a store on a fresh directory of the real file system.
func openTemp(t testing.TB) *Store {
	t.Helper()
	return mustOpen(t, t.TempDir(), Options{})
}

// openMem opens a store on an in-memory file system.
func openMem(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	return mustOpen(t, "state", Options{fs: fs})
}

func mustOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.now == nil {
		opts.now = testClock()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testFlow returns a flow with nparts partitions and nups update partitions.
func testFlow(id string, nparts, nups int) (FlowMeta, []PartitionState, []UpdateState) {
	meta := FlowMeta{
		ID:              id,
		Source:          "mongodb://***@src/db",
		Sink:            "postgres://***@dst/db",
		Mode:            "full",
		Options:         []byte(`{"namespaces":["db.a","db.b"]}`),
		DsyncVersion:    "v0.1.0",
		ProtocolVersion: 1,
		CreatedAt:       time.Date(2024, 6, 1, 12, 0, 0, 123, time.FixedZone("X", 3600)),
	}
	var parts []PartitionState
	for i := range nparts {
		parts = append(parts, PartitionState{
			Index:          i,
			Namespace:      "db.a",
			SinkNamespace:  "public.a",
			Definition:     []byte(fmt.Sprintf(`{"min":%d,"max":%d}`, i*100, (i+1)*100)),
			EstimatedCount: 100,
		})
	}
	var ups []UpdateState
	for i := range nups {
		ups = append(ups, UpdateState{
			Index:      i,
			Namespaces: []string{"db.a", "db.b"},
			Cursor:     []byte("resume-token-" + strconv.Itoa(i)),
		})
	}
	return meta, parts, ups
}

// crashCursor is the cursor checkpointed with seq in the tests.
func crashCursor(seq uint64) []byte { return fmt.Appendf(nil, "cursor-%d", seq) }

func mustCreate(t testing.TB, s *Store, id string, nparts, nups int) {
	t.Helper()
	meta, parts, ups := testFlow(id, nparts, nups)
	if err := s.CreateFlow(meta, parts, ups); err != nil {
		t.Fatalf("CreateFlow(%s): %v", id, err)
	}
}

func mustPartitions(t testing.TB, s *Store, id string) []PartitionState {
	t.Helper()
	parts, err := s.Partitions(id)
	if err != nil {
		t.Fatalf("Partitions(%s): %v", id, err)
	}
	return parts
}

func mustUpdates(t testing.TB, s *Store, id string) []UpdateState {
	t.Helper()
	ups, err := s.Updates(id)
	if err != nil {
		t.Fatalf("Updates(%s): %v", id, err)
	}
	return ups
}

func mustFlow(t testing.TB, s *Store, id string) FlowMeta {
	t.Helper()
	meta, err := s.Flow(id)
	if err != nil {
		t.Fatalf("Flow(%s): %v", id, err)
	}
	return meta
}

// rawKeys lists every key of the store under prefix.
func rawKeys(t testing.TB, s *Store, prefix string) []string {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var keys []string
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, string(it.Key()))
	}
	return keys
}

func TestCreateFlowRoundTrip(t *testing.T) {
	s := openTemp(t)
	meta, parts, ups := testFlow("f1", 3, 2)
	parts[2].Cursor = []byte("halfway")
	parts[2].Seq = 4
	parts[2].Docs = 40
	parts[2].Bytes = 4000
	ups[1].Seq = 2
	ups[1].Events = 7
	ups[1].SourceTime = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateFlow(meta, parts, ups); err != nil {
		t.Fatal(err)
	}

	got := mustFlow(t, s, "f1")
	if !got.CreatedAt.Equal(meta.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, meta.CreatedAt)
	}
	if got.UpdatedAt.IsZero() {
		t.Error("UpdatedAt not set")
	}
	want := meta
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	want.Phase = PhaseCopy
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Flow =\n%+v\nwant\n%+v", got, want)
	}
	if gotParts := mustPartitions(t, s, "f1"); !reflect.DeepEqual(gotParts, parts) {
		t.Errorf("Partitions =\n%+v\nwant\n%+v", gotParts, parts)
	}
	if gotUps := mustUpdates(t, s, "f1"); !reflect.DeepEqual(gotUps, ups) {
		t.Errorf("Updates =\n%+v\nwant\n%+v", gotUps, ups)
	}

	flows, err := s.Flows()
	if err != nil || len(flows) != 1 || flows[0].ID != "f1" {
		t.Errorf("Flows = %+v, %v; want [f1]", flows, err)
	}

	if err := s.CreateFlow(meta, parts, ups); !errors.Is(err, ErrFlowExists) {
		t.Errorf("second CreateFlow: %v, want ErrFlowExists", err)
	}
}

func TestCreateFlowCDCOnly(t *testing.T) {
	s := openTemp(t)
	meta, _, ups := testFlow("cdc", 0, 1)
	meta.Mode, meta.Phase = "cdc", PhaseCDC
	if err := s.CreateFlow(meta, nil, ups); err != nil {
		t.Fatal(err)
	}
	got := mustFlow(t, s, "cdc")
	if got.Phase != PhaseCDC || !got.CopyDone {
		t.Errorf("Phase, CopyDone = %s, %t; want cdc, true", got.Phase, got.CopyDone)
	}
	if parts := mustPartitions(t, s, "cdc"); len(parts) != 0 {
		t.Errorf("Partitions = %+v, want none", parts)
	}
}

// TestCreateFlowInvalid checks that a rejected plan leaves no key behind.
func TestCreateFlowInvalid(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*FlowMeta, *[]PartitionState, *[]UpdateState)
		want   error
	}{
		{"empty id", func(m *FlowMeta, _ *[]PartitionState, _ *[]UpdateState) { m.ID = "" }, ErrInvalidArgument},
		{"slash in id", func(m *FlowMeta, _ *[]PartitionState, _ *[]UpdateState) { m.ID = "a/b" }, ErrInvalidArgument},
		{"unknown phase", func(m *FlowMeta, _ *[]PartitionState, _ *[]UpdateState) { m.Phase = "later" }, ErrInvalidArgument},
		{"cdc before copy", func(m *FlowMeta, _ *[]PartitionState, _ *[]UpdateState) { m.Phase = PhaseCDC }, ErrCopyIncomplete},
		{"duplicate partition", func(_ *FlowMeta, p *[]PartitionState, _ *[]UpdateState) { (*p)[3].Index = 1 }, ErrInvalidArgument},
		{"negative partition", func(_ *FlowMeta, p *[]PartitionState, _ *[]UpdateState) { (*p)[3].Index = -1 }, ErrInvalidArgument},
		{"partition out of range", func(_ *FlowMeta, p *[]PartitionState, _ *[]UpdateState) { (*p)[3].Index = maxPartitions }, ErrInvalidArgument},
		{"partition without namespace", func(_ *FlowMeta, p *[]PartitionState, _ *[]UpdateState) { (*p)[3].Namespace = "" }, ErrInvalidArgument},
		{"duplicate update partition", func(_ *FlowMeta, _ *[]PartitionState, u *[]UpdateState) { (*u)[1].Index = 0 }, ErrInvalidArgument},
		{"update partition out of range", func(_ *FlowMeta, _ *[]PartitionState, u *[]UpdateState) { (*u)[1].Index = maxUpdatePartitions }, ErrInvalidArgument},
		{"unencodable time", func(_ *FlowMeta, _ *[]PartitionState, u *[]UpdateState) {
			(*u)[1].SourceTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, vfs.NewMem())
			meta, parts, ups := testFlow("f", 5, 2)
			tt.modify(&meta, &parts, &ups)
			if err := s.CreateFlow(meta, parts, ups); !errors.Is(err, tt.want) {
				t.Fatalf("CreateFlow: %v, want %v", err, tt.want)
			}
			if keys := rawKeys(t, s, flowsPrefix); len(keys) != 0 {
				t.Errorf("keys left behind: %q", keys)
			}
		})
	}
}

func TestCheckpointForwardOnly(t *testing.T) {
	type step struct {
		seq    uint64
		cursor string
		done   bool
		want   error
	}
	tests := []struct {
		name  string
		steps []step
		// wantSeq and wantCursor are the partition's final position.
		wantSeq    uint64
		wantCursor string
		wantDone   bool
	}{
		{"advance", []step{{1, "a", false, nil}, {2, "b", false, nil}, {5, "c", false, nil}}, 5, "c", false},
		{"zero seq", []step{{0, "a", false, ErrStale}}, 0, "", false},
		{"same seq", []step{{1, "a", false, nil}, {1, "b", false, ErrStale}}, 1, "a", false},
		{"older seq", []step{{3, "a", false, nil}, {2, "b", false, ErrStale}}, 3, "a", false},
		{"done", []step{{1, "a", false, nil}, {2, "", true, nil}}, 2, "", true},
		{"after done", []step{{1, "", true, nil}, {2, "b", false, ErrPartitionDone}}, 1, "", true},
		{"done twice", []step{{1, "", true, nil}, {2, "", true, ErrPartitionDone}}, 1, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, vfs.NewMem())
			mustCreate(t, s, "f", 2, 0)
			var wantDocs uint64
			for i, st := range tt.steps {
				err := s.CheckpointPartition("f", 1, st.seq, []byte(st.cursor), st.done, 10, 100)
				if !errors.Is(err, st.want) {
					t.Fatalf("step %d: CheckpointPartition(seq %d): %v, want %v", i, st.seq, err, st.want)
				}
				if err == nil {
					wantDocs += 10
				}
			}
			parts := mustPartitions(t, s, "f")
			p := parts[1]
			if p.Seq != tt.wantSeq || string(p.Cursor) != tt.wantCursor || p.Done != tt.wantDone ||
				p.Docs != wantDocs || p.Bytes != wantDocs*10 {
				t.Errorf("partition = %+v; want seq %d, cursor %q, done %t, docs %d, bytes %d",
					p, tt.wantSeq, tt.wantCursor, tt.wantDone, wantDocs, wantDocs*10)
			}
			if tt.wantCursor == "" && p.Cursor != nil {
				t.Errorf("empty cursor read back as %#v, want nil", p.Cursor)
			}
			if _, def, _ := testFlow("f", 2, 0); !reflect.DeepEqual(parts[0], def[0]) {
				t.Errorf("untouched partition changed: %+v", parts[0])
			}
		})
	}
}

func TestCheckpointUpdatesForwardOnly(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustCreate(t, s, "f", 0, 2)
	t1 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.FixedZone("Y", -7200))
	steps := []struct {
		seq  uint64
		when time.Time
		want error
	}{
		{1, t1, nil},
		{1, t1, ErrStale},
		{3, time.Time{}, nil},
		{2, t1.Add(time.Hour), ErrStale},
	}
	for i, st := range steps {
		err := s.CheckpointUpdates("f", 1, st.seq, []byte(fmt.Sprint("tok", st.seq)), 5, st.when)
		if !errors.Is(err, st.want) {
			t.Fatalf("step %d: CheckpointUpdates(seq %d): %v, want %v", i, st.seq, err, st.want)
		}
	}
	u := mustUpdates(t, s, "f")[1]
	if u.Seq != 3 || string(u.Cursor) != "tok3" || u.Events != 10 || !u.SourceTime.Equal(t1) {
		t.Errorf("update partition = %+v; want seq 3, cursor tok3, events 10, source time %v", u, t1)
	}
}

// TestCheckpointBatchAtomic checks that one bad item rejects the whole batch.
func TestCheckpointBatchAtomic(t *testing.T) {
	tests := []struct {
		name  string
		parts []PartitionCheckpoint
		ups   []UpdateCheckpoint
		want  error
	}{
		{"stale partition", []PartitionCheckpoint{{Index: 0, Seq: 9}, {Index: 1, Seq: 1}}, []UpdateCheckpoint{{Index: 0, Seq: 9}}, ErrStale},
		{"stale update", []PartitionCheckpoint{{Index: 0, Seq: 9}}, []UpdateCheckpoint{{Index: 0, Seq: 1}}, ErrStale},
		{"done partition", []PartitionCheckpoint{{Index: 0, Seq: 9}, {Index: 2, Seq: 9}}, nil, ErrPartitionDone},
		{"unknown partition", []PartitionCheckpoint{{Index: 0, Seq: 9}, {Index: 7, Seq: 9}}, nil, ErrPartitionNotFound},
		{"unknown update", []PartitionCheckpoint{{Index: 0, Seq: 9}}, []UpdateCheckpoint{{Index: 3, Seq: 9}}, ErrPartitionNotFound},
		{"duplicate index", []PartitionCheckpoint{{Index: 0, Seq: 9}, {Index: 0, Seq: 10}}, nil, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, vfs.NewMem())
			mustCreate(t, s, "f", 3, 1)
			if err := s.Checkpoint("f",
				[]PartitionCheckpoint{{Index: 1, Seq: 1, Cursor: []byte("p1")}, {Index: 2, Seq: 1, Done: true}},
				[]UpdateCheckpoint{{Index: 0, Seq: 1, Cursor: []byte("u1")}}); err != nil {
				t.Fatal(err)
			}
			beforeFlow := mustFlow(t, s, "f")
			beforeParts, beforeUps := mustPartitions(t, s, "f"), mustUpdates(t, s, "f")

			if err := s.Checkpoint("f", tt.parts, tt.ups); !errors.Is(err, tt.want) {
				t.Fatalf("Checkpoint: %v, want %v", err, tt.want)
			}
			if got := mustFlow(t, s, "f"); !reflect.DeepEqual(got, beforeFlow) {
				t.Errorf("flow changed: %+v, was %+v", got, beforeFlow)
			}
			if got := mustPartitions(t, s, "f"); !reflect.DeepEqual(got, beforeParts) {
				t.Errorf("partitions changed: %+v, were %+v", got, beforeParts)
			}
			if got := mustUpdates(t, s, "f"); !reflect.DeepEqual(got, beforeUps) {
				t.Errorf("update partitions changed: %+v, were %+v", got, beforeUps)
			}
		})
	}
}

func TestCheckpointUnknownFlow(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	if err := s.CheckpointPartition("nope", 0, 1, nil, false, 0, 0); !errors.Is(err, ErrFlowNotFound) {
		t.Errorf("CheckpointPartition: %v, want ErrFlowNotFound", err)
	}
	if err := s.CheckpointUpdates("nope", 0, 1, nil, 0, time.Time{}); !errors.Is(err, ErrFlowNotFound) {
		t.Errorf("CheckpointUpdates: %v, want ErrFlowNotFound", err)
	}
	for name, fn := range map[string]func() error{
		"Flow":       func() error { _, err := s.Flow("nope"); return err },
		"Partitions": func() error { _, err := s.Partitions("nope"); return err },
		"Updates":    func() error { _, err := s.Updates("nope"); return err },
		"SetPhase":   func() error { return s.SetPhase("nope", PhaseCDC) },
		"ResetFlow":  func() error { return s.ResetFlow("nope") },
	} {
		if err := fn(); !errors.Is(err, ErrFlowNotFound) {
			t.Errorf("%s: %v, want ErrFlowNotFound", name, err)
		}
	}
	if keys := rawKeys(t, s, flowsPrefix); len(keys) != 0 {
		t.Errorf("keys written: %q", keys)
	}
}

func TestCheckpointUpdatedAt(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustCreate(t, s, "f", 1, 1)
	before := mustFlow(t, s, "f").UpdatedAt
	if err := s.CheckpointPartition("f", 0, 1, []byte("c"), false, 1, 1); err != nil {
		t.Fatal(err)
	}
	if after := mustFlow(t, s, "f").UpdatedAt; !after.After(before) {
		t.Errorf("UpdatedAt %v not after %v", after, before)
	}
}

// TestPhases walks a flow through the copy/CDC barrier.
func TestPhases(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustCreate(t, s, "f", 2, 1)
	steps := []struct {
		name string
		do   func() error
		want error
		// wantPhase and wantCopyDone describe the flow after the step.
		wantPhase    string
		wantCopyDone bool
	}{
		{"cdc before copy", func() error { return s.SetPhase("f", PhaseCDC) }, ErrCopyIncomplete, PhaseCopy, false},
		{"done before copy", func() error { return s.SetPhase("f", PhaseDone) }, ErrCopyIncomplete, PhaseCopy, false},
		{"unknown phase", func() error { return s.SetPhase("f", "paused") }, ErrInvalidArgument, PhaseCopy, false},
		{"first partition done", func() error { return s.CheckpointPartition("f", 0, 1, nil, true, 5, 5) }, nil, PhaseCopy, false},
		{"last partition done", func() error { return s.CheckpointPartition("f", 1, 3, nil, true, 5, 5) }, nil, PhaseCopy, true},
		{"copy again", func() error { return s.SetPhase("f", PhaseCopy) }, nil, PhaseCopy, true},
		{"cdc", func() error { return s.SetPhase("f", PhaseCDC) }, nil, PhaseCDC, true},
		{"cdc again", func() error { return s.SetPhase("f", PhaseCDC) }, nil, PhaseCDC, true},
		{"back to copy", func() error { return s.SetPhase("f", PhaseCopy) }, ErrStale, PhaseCDC, true},
		{"done", func() error { return s.SetPhase("f", PhaseDone) }, nil, PhaseDone, true},
		{"back to cdc", func() error { return s.SetPhase("f", PhaseCDC) }, ErrStale, PhaseDone, true},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.want) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
		if m := mustFlow(t, s, "f"); m.Phase != st.wantPhase || m.CopyDone != st.wantCopyDone {
			t.Fatalf("after %s: phase %s, copy done %t; want %s, %t", st.name, m.Phase, m.CopyDone, st.wantPhase, st.wantCopyDone)
		}
	}
}

func TestResetFlowIsolation(t *testing.T) {
	s := openTemp(t)
	// Ids that share a prefix with "a" or sort right next to its key range.
	ids := []string{"a", "a-", "a.b", "a0", "ab", "A", "b"}
	for _, id := range ids {
		mustCreate(t, s, id, 3, 1)
		if err := s.CheckpointPartition(id, 1, 1, []byte("c-"+id), false, 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutVerify("a", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	before := map[string][]PartitionState{}
	for _, id := range ids[1:] {
		before[id] = mustPartitions(t, s, id)
	}

	if err := s.ResetFlow("a"); err != nil {
		t.Fatal(err)
	}

	if keys := rawKeys(t, s, "flow/a/"); len(keys) != 0 {
		t.Errorf("keys of flow a left: %q", keys)
	}
	if _, err := s.Flow("a"); !errors.Is(err, ErrFlowNotFound) {
		t.Errorf("Flow(a) after reset: %v, want ErrFlowNotFound", err)
	}
	for _, id := range ids[1:] {
		if got := mustPartitions(t, s, id); !reflect.DeepEqual(got, before[id]) {
			t.Errorf("flow %s changed by reset of a: %+v", id, got)
		}
	}
	flows, err := s.Flows()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range flows {
		got = append(got, f.ID)
	}
	if want := []string{"A", "a-", "a.b", "a0", "ab", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Flows = %q, want %q", got, want)
	}
	if v, err := s.GetVerify("a", "k"); err != nil || string(v) != "v" {
		t.Errorf("verify run a after flow reset: %q, %v", v, err)
	}

	// A reset flow can be planned again.
	mustCreate(t, s, "a", 1, 0)
	if p := mustPartitions(t, s, "a"); len(p) != 1 || p[0].Seq != 0 {
		t.Errorf("recreated flow partitions = %+v", p)
	}
}

// TestReopen checks that everything written survives Close and Open.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "f", 3, 2)
	if err := s.Checkpoint("f",
		[]PartitionCheckpoint{{Index: 0, Seq: 2, Cursor: []byte("c0"), DocsDelta: 20, BytesDelta: 2000}, {Index: 1, Seq: 1, Done: true}},
		[]UpdateCheckpoint{{Index: 1, Seq: 1, Cursor: []byte("u1"), EventsDelta: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPhase("f", PhaseCopy); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVerify("run1", "part/0", []byte("42")); err != nil {
		t.Fatal(err)
	}
	wantFlow := mustFlow(t, s, "f")
	wantParts, wantUps := mustPartitions(t, s, "f"), mustUpdates(t, s, "f")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Flow("f"); !errors.Is(err, ErrClosed) {
		t.Errorf("Flow after Close: %v, want ErrClosed", err)
	}

	for _, readOnly := range []bool{false, true} {
		s := mustOpen(t, dir, Options{ReadOnly: readOnly})
		if got := mustFlow(t, s, "f"); !reflect.DeepEqual(got, wantFlow) {
			t.Errorf("read-only %t: Flow = %+v, want %+v", readOnly, got, wantFlow)
		}
		if got := mustPartitions(t, s, "f"); !reflect.DeepEqual(got, wantParts) {
			t.Errorf("read-only %t: Partitions = %+v, want %+v", readOnly, got, wantParts)
		}
		if got := mustUpdates(t, s, "f"); !reflect.DeepEqual(got, wantUps) {
			t.Errorf("read-only %t: Updates = %+v, want %+v", readOnly, got, wantUps)
		}
		if v, err := s.GetVerify("run1", "part/0"); err != nil || string(v) != "42" {
			t.Errorf("read-only %t: GetVerify = %q, %v", readOnly, v, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir+"/missing", Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Errorf("read-only Open of a missing directory: %v, want ErrNotExist", err)
	}
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Errorf("read-only Open of a directory without a store: %v, want ErrNotExist", err)
	}

	s := mustOpen(t, dir, Options{})
	mustCreate(t, s, "f", 1, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir, Options{ReadOnly: true})
	writes := map[string]func() error{
		"CreateFlow":          func() error { m, p, u := testFlow("g", 1, 1); return s.CreateFlow(m, p, u) },
		"CheckpointPartition": func() error { return s.CheckpointPartition("f", 0, 1, nil, false, 0, 0) },
		"CheckpointUpdates":   func() error { return s.CheckpointUpdates("f", 0, 1, nil, 0, time.Time{}) },
		"SetPhase":            func() error { return s.SetPhase("f", PhaseCopy) },
		"ResetFlow":           func() error { return s.ResetFlow("f") },
		"PutVerify":           func() error { return s.PutVerify("r", "k", nil) },
		"ResetVerify":         func() error { return s.ResetVerify("r") },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v, want ErrReadOnly", name, err)
		}
	}
	if flows, err := s.Flows(); err != nil || len(flows) != 1 {
		t.Errorf("Flows = %+v, %v; want one flow", flows, err)
	}
}

func TestSchemaVersion(t *testing.T) {
	tests := []struct {
		name   string
		stored string
		want   error
	}{
		{"current", strconv.Itoa(SchemaVersion), nil},
		{"too new", strconv.Itoa(SchemaVersion + 1), ErrSchemaTooNew},
		{"zero", "0", ErrCorrupt},
		{"garbage", "v1", ErrCorrupt},
	}
	for _, tt := range tests {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/read-only=%t", tt.name, readOnly), func(t *testing.T) {
				fs := vfs.NewMem()
				s := mustOpen(t, "state", Options{fs: fs})
				mustCreate(t, s, "f", 1, 0)
				if err := s.db.Set([]byte(schemaKey), []byte(tt.stored), pebble.Sync); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2, err := Open("state", Options{fs: fs, ReadOnly: readOnly})
				if !errors.Is(err, tt.want) {
					t.Fatalf("Open: %v, want %v", err, tt.want)
				}
				if err != nil {
					return
				}
				defer s2.Close()
				mustFlow(t, s2, "f")
			})
		}
	}
}

func TestSchemaNotDsync(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("state", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("foreign"), []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("state", Options{fs: fs}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a foreign Pebble store: %v, want ErrCorrupt", err)
	}
}

func TestSchemaMigration(t *testing.T) {
	setVal := func(key, value string) migration {
		return migration{about: "set " + key, apply: func(_ pebble.Reader, b *pebble.Batch) error {
			return b.Set([]byte(key), []byte(value), nil)
		}}
	}
	failing := migration{about: "fail", apply: func(_ pebble.Reader, b *pebble.Batch) error {
		_ = b.Set([]byte("half"), []byte("written"), nil)
		return errors.New("boom")
	}}
	at := func(from int, m migration) migration { m.from = from; return m }

	tests := []struct {
		name        string
		table       []migration
		wantErr     bool
		wantVersion int
		wantKeys    []string
	}{
		{"two steps", []migration{at(2, setVal("m2", "x")), at(1, setVal("m1", "x"))}, false, 3, []string{"m1", "m2"}},
		{"missing step", []migration{at(1, setVal("m1", "x"))}, true, 2, []string{"m1"}},
		{"failing step", []migration{at(1, setVal("m1", "x")), at(2, failing)}, true, 2, []string{"m1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, vfs.NewMem())
			err := upgrade(s.db, 1, 3, tt.table)
			if (err != nil) != tt.wantErr {
				t.Fatalf("upgrade: %v, want error %t", err, tt.wantErr)
			}
			if v, err := readSchema(s.db); err != nil || v != tt.wantVersion {
				t.Errorf("schema after upgrade = %d, %v; want %d", v, err, tt.wantVersion)
			}
			for _, k := range []string{"m1", "m2", "half"} {
				_, ok, err := get(s.db, []byte(k))
				if err != nil {
					t.Fatal(err)
				}
				if want := contains(tt.wantKeys, k); ok != want {
					t.Errorf("key %s present = %t, want %t", k, ok, want)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRecordsIgnoreUnknownFields(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustCreate(t, s, "f", 1, 0)
	key := partKey("f", 0)
	value, _, err := get(s.db, key)
	if err != nil {
		t.Fatal(err)
	}
	// A newer dsync may add fields.
	value = append(bytes.TrimSuffix(value, []byte("}")), []byte(`,"future_field":{"x":[1,2]}}`)...)
	if err := s.db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckpointPartition("f", 0, 1, []byte("c"), false, 1, 1); err != nil {
		t.Fatal(err)
	}
	if p := mustPartitions(t, s, "f")[0]; p.Seq != 1 || p.Namespace != "db.a" {
		t.Errorf("partition = %+v", p)
	}
}

func TestInvalidIDs(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	for _, id := range []string{"", "a/b", "a b", "é", string(make([]byte, maxIDLen+1))} {
		if _, err := s.Flow(id); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Flow(%q): %v, want ErrInvalidArgument", id, err)
		}
		if err := s.PutVerify(id, "k", nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("PutVerify(%q): %v, want ErrInvalidArgument", id, err)
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{"zero", Options{}, nil},
		{"command", Options{Command: "dsync sync"}, nil},
		{"newline in command", Options{Command: "dsync\nsync"}, ErrInvalidArgument},
		{"long command", Options{Command: string(bytes.Repeat([]byte("x"), maxCommandLen+1))}, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.EnsureDefaults()
			if o.Command == "" || o.Logf == nil || o.now == nil {
				t.Errorf("EnsureDefaults left a field unset: %+v", o)
			}
			if err := o.Validate(); !errors.Is(err, tt.want) {
				t.Errorf("Validate: %v, want %v", err, tt.want)
			}
		})
	}
}
