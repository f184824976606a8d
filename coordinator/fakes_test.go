package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// The fakes below stand at the plugin protocol seam: they implement the spi
// interfaces in memory, with hooks to inject failures and observe calls.

// --- documents and updates ---

func mkDoc(id int64, fields ...bson.E) bson.Raw {
	d := append(bson.D{{Key: "_id", Value: id}}, fields...)
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

func idOf(doc bson.Raw) bson.RawValue { return doc.Lookup("_id") }

func idKey(id bson.RawValue) string { return id.String() }

func int64ID(id int64) bson.RawValue {
	_, b, err := bson.MarshalValue(id)
	if err != nil {
		panic(err)
	}
	return bson.RawValue{Type: bson.TypeInt64, Value: b}
}

// seqTag marks an update with its position in the test's event list; the
// fake sink reads it back to check per-key order. A field that no document
// has, so unsetting it changes nothing.
func seqTag(seq int) string { return "__seq_" + strconv.Itoa(seq) }

func seqOf(u spi.Update) int {
	for _, f := range u.Unset {
		if s, ok := strings.CutPrefix(f, "__seq_"); ok {
			n, _ := strconv.Atoi(s)
			return n
		}
	}
	return -1
}

// applyUpdate applies u to a namespace's documents, as a sink would.
func applyUpdate(docs map[string]bson.Raw, u spi.Update) {
	key := idKey(u.ID)
	switch u.Type {
	case spi.UpdateInsert, spi.UpdateReplace:
		docs[key] = u.Doc
	case spi.UpdateDelete:
		delete(docs, key)
	case spi.UpdatePartial:
		var d bson.D
		if old, ok := docs[key]; ok {
			if err := bson.Unmarshal(old, &d); err != nil {
				panic(err)
			}
		} else {
			d = bson.D{{Key: "_id", Value: u.ID}}
		}
		var set bson.D
		if err := bson.Unmarshal(u.Doc, &set); err != nil {
			panic(err)
		}
	fields:
		for _, e := range set {
			for i := range d {
				if d[i].Key == e.Key {
					d[i].Value = e.Value
					continue fields
				}
			}
			d = append(d, e)
		}
		for _, f := range u.Unset {
			for i := range d {
				if d[i].Key == f {
					d = append(d[:i], d[i+1:]...)
					break
				}
			}
		}
		b, err := bson.Marshal(d)
		if err != nil {
			panic(err)
		}
		docs[key] = b
	}
}

// --- source ---

type fakePart struct {
	ns       string
	docs     []bson.Raw
	pageSize int
}

func (p fakePart) pages() int { return max(1, (len(p.docs)+p.pageSize-1)/p.pageSize) }

type fakeEvent struct {
	ns string
	u  spi.Update
}

type fakeStream struct {
	namespaces []string
	events     []fakeEvent
}

type fakeSource struct {
	id    string
	caps  spi.SourceCapabilities
	parts []fakePart
	// streams are the update partitions; their events follow the copy.
	streams    []fakeStream
	eventBatch int           // max events per batch; default 50
	heartbeat  time.Duration // default 5 ms
	// eventTime is the source time of batch events; default time.Now.
	eventTime func() time.Time

	// Hooks, set before the run. listHook runs before each ListData and may
	// fail it; streamHook runs before each batch (batch counts within the
	// call) and may end the stream with an error or, with end, with nil.
	listHook   func(call int, p spi.Partition, cursor []byte) error
	streamHook func(stream, call, batch int) (end bool, err error)
	ackHook    func(stream int, cursor []byte)

	mu          sync.Mutex
	listCalls   int
	readBytes   int64 // bytes returned by ListData
	planCalls   int
	streamCalls map[int][]string // stream -> requested cursors
	acks        map[int][]string
}

var (
	_ spi.Source         = (*fakeSource)(nil)
	_ spi.UpdateStreamer = (*fakeSource)(nil)
	_ spi.UpdateAcker    = (*fakeSource)(nil)
)

func newFakeSource(parts []fakePart, streams []fakeStream) *fakeSource {
	return &fakeSource{
		id: "fake-source",
		caps: spi.SourceCapabilities{
			DataTypes:          []spi.DataType{spi.DataTypeBSON},
			MultiNamespacePlan: true,
			DefaultPlan:        true,
			Updates:            true,
			AckUpdates:         true,
		},
		parts:       parts,
		streams:     streams,
		streamCalls: make(map[int][]string),
		acks:        make(map[int][]string),
	}
}

func (s *fakeSource) Configure(context.Context, spi.Config) error { return nil }

func (s *fakeSource) Info(context.Context) (spi.Info, error) {
	caps := s.caps
	return spi.Info{ID: s.id, DBType: "fake", Source: &caps}, nil
}

func (s *fakeSource) NamespaceMetadata(_ context.Context, ns string) (spi.NamespaceMetadata, error) {
	var md spi.NamespaceMetadata
	for _, p := range s.parts {
		if p.ns == ns {
			md.Count += uint64(len(p.docs))
		}
	}
	return md, nil
}

func selected(names []string, ns string) bool {
	if len(names) == 0 {
		return true
	}
	db, _, _ := strings.Cut(ns, ".")
	for _, n := range names {
		if n == ns || n == db {
			return true
		}
	}
	return false
}

func (s *fakeSource) GeneratePlan(_ context.Context, req spi.PlanRequest) (spi.Plan, error) {
	s.mu.Lock()
	s.planCalls++
	s.mu.Unlock()
	var plan spi.Plan
	if req.InitialSync {
		for i, p := range s.parts {
			if selected(req.Namespaces, p.ns) {
				plan.Partitions = append(plan.Partitions, spi.Partition{
					Namespace: p.ns, Cursor: []byte("part/" + strconv.Itoa(i)), EstimatedCount: uint64(len(p.docs)),
				})
			}
		}
	}
	if req.Updates {
		for i, st := range s.streams {
			plan.UpdatesPartitions = append(plan.UpdatesPartitions, spi.UpdatesPartition{
				Namespaces: st.namespaces, Cursor: streamCursor(i, 0),
			})
		}
	}
	return plan, nil
}

func (s *fakeSource) ListData(ctx context.Context, p spi.Partition, cursor []byte) (spi.Page, error) {
	s.mu.Lock()
	s.listCalls++
	call := s.listCalls
	s.mu.Unlock()
	if s.listHook != nil {
		if err := s.listHook(call, p, cursor); err != nil {
			return spi.Page{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return spi.Page{}, err
	}
	idx, err := strconv.Atoi(strings.TrimPrefix(string(p.Cursor), "part/"))
	if err != nil || idx >= len(s.parts) {
		return spi.Page{}, spi.InvalidArgument("bad partition %q", p.Cursor)
	}
	part := s.parts[idx]
	page := 0
	if len(cursor) > 0 {
		if page, err = strconv.Atoi(string(cursor)); err != nil {
			return spi.Page{}, spi.InvalidArgument("bad cursor %q", cursor)
		}
	}
	lo := min(page*part.pageSize, len(part.docs))
	hi := min(lo+part.pageSize, len(part.docs))
	out := spi.Page{Docs: part.docs[lo:hi]}
	if hi < len(part.docs) {
		out.NextCursor = []byte(strconv.Itoa(page + 1))
	}
	var n int64
	for _, d := range out.Docs {
		n += int64(len(d))
	}
	s.mu.Lock()
	s.readBytes += n
	s.mu.Unlock()
	return out, nil
}

func streamCursor(stream, offset int) []byte {
	return []byte(fmt.Sprintf("s%d:%d", stream, offset))
}

func parseStreamCursor(c []byte) (stream, offset int, err error) {
	a, b, ok := strings.Cut(strings.TrimPrefix(string(c), "s"), ":")
	if !ok {
		return 0, 0, fmt.Errorf("bad stream cursor %q", c)
	}
	if stream, err = strconv.Atoi(a); err == nil {
		offset, err = strconv.Atoi(b)
	}
	return stream, offset, err
}

func (s *fakeSource) StreamUpdates(ctx context.Context, req spi.StreamRequest, send func(spi.UpdateBatch) error) error {
	idx, off, err := parseStreamCursor(req.Cursor)
	if err != nil {
		return spi.InvalidArgument("%v", err)
	}
	s.mu.Lock()
	s.streamCalls[idx] = append(s.streamCalls[idx], string(req.Cursor))
	call := len(s.streamCalls[idx])
	s.mu.Unlock()
	events := s.streams[idx].events
	maxBatch := s.eventBatch
	if maxBatch == 0 {
		maxBatch = 50
	}
	hb := s.heartbeat
	if hb == 0 {
		hb = 5 * time.Millisecond
	}
	now := time.Now
	if s.eventTime != nil {
		now = s.eventTime
	}
	for batch := 0; ; batch++ {
		if s.streamHook != nil {
			if end, err := s.streamHook(idx, call, batch); end || err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if off >= len(events) {
			b := spi.UpdateBatch{NextCursor: streamCursor(idx, off), SourceTime: time.Now()}
			if err := send(b); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(hb):
			}
			continue
		}
		ns := events[off].ns
		b := spi.UpdateBatch{Namespace: ns}
		for off < len(events) && events[off].ns == ns && len(b.Updates) < maxBatch {
			b.Updates = append(b.Updates, events[off].u)
			off++
		}
		b.NextCursor = streamCursor(idx, off)
		b.SourceTime = now()
		if err := send(b); err != nil {
			return err
		}
	}
}

func (s *fakeSource) AckUpdates(_ context.Context, cursor []byte) error {
	idx, _, err := parseStreamCursor(cursor)
	if err != nil {
		return spi.InvalidArgument("%v", err)
	}
	if s.ackHook != nil {
		s.ackHook(idx, cursor)
	}
	s.mu.Lock()
	s.acks[idx] = append(s.acks[idx], string(cursor))
	s.mu.Unlock()
	return nil
}

func (s *fakeSource) totalPages() int {
	n := 0
	for _, p := range s.parts {
		n += p.pages()
	}
	return n
}

// --- sink ---

type fakeSink struct {
	id string
	// hook runs at the start of each write call and may fail it; first is
	// the id of the call's first document or update.
	hook func(op, ns string, call int, first bson.RawValue) error
	// delay, if set, is slept inside each write call, or until the call's
	// context ends.
	delay func(ns string) time.Duration

	mu          sync.Mutex
	calls       int
	docs        map[string]map[string]bson.Raw
	dataWrites  map[string]int // ns + " " + id -> WriteData count
	lastSeq     map[string]int // ns + " " + id -> seq of the last update applied
	orderErrors []string
	updates     int
	cur, peak   int64 // bytes inside WriteData
	written     int64 // bytes of WriteData calls that succeeded
}

var _ spi.Sink = (*fakeSink)(nil)

func newFakeSink() *fakeSink {
	return &fakeSink{
		id:         "fake-sink",
		docs:       make(map[string]map[string]bson.Raw),
		dataWrites: make(map[string]int),
		lastSeq:    make(map[string]int),
	}
}

func (s *fakeSink) Configure(context.Context, spi.Config) error { return nil }

func (s *fakeSink) Info(context.Context) (spi.Info, error) {
	return spi.Info{ID: s.id, DBType: "fake", Sink: &spi.SinkCapabilities{DataTypes: []spi.DataType{spi.DataTypeBSON}}}, nil
}

func (s *fakeSink) begin(op, ns string, first bson.RawValue) error {
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.mu.Unlock()
	if s.hook != nil {
		if err := s.hook(op, ns, call, first); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeSink) sleep(ctx context.Context, ns string) error {
	if s.delay == nil {
		return nil
	}
	t := time.NewTimer(s.delay(ns))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *fakeSink) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	if err := s.begin("data", ns, idOf(docs[0])); err != nil {
		return err
	}
	var n int64
	for _, d := range docs {
		n += int64(len(d))
	}
	s.mu.Lock()
	s.cur += n
	s.peak = max(s.peak, s.cur)
	s.mu.Unlock()
	err := s.sleep(ctx, ns)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur -= n
	if err != nil {
		return err
	}
	s.written += n
	m := s.ns(ns)
	for _, d := range docs {
		k := idKey(idOf(d))
		m[k] = d
		s.dataWrites[ns+" "+k]++
	}
	return nil
}

func (s *fakeSink) WriteUpdates(ctx context.Context, ns string, ups []spi.Update) error {
	if err := s.begin("updates", ns, ups[0].ID); err != nil {
		return err
	}
	if err := s.sleep(ctx, ns); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.ns(ns)
	for _, u := range ups {
		k := ns + " " + idKey(u.ID)
		if seq := seqOf(u); seq >= 0 {
			if last, ok := s.lastSeq[k]; ok && seq <= last {
				s.orderErrors = append(s.orderErrors, fmt.Sprintf("%s: event %d applied after %d", k, seq, last))
			}
			s.lastSeq[k] = seq
		}
		applyUpdate(m, u)
		s.updates++
	}
	return nil
}

func (s *fakeSink) ns(ns string) map[string]bson.Raw {
	m := s.docs[ns]
	if m == nil {
		m = make(map[string]bson.Raw)
		s.docs[ns] = m
	}
	return m
}

func (s *fakeSink) has(ns string, id bson.RawValue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.docs[ns][idKey(id)]
	return ok
}

func (s *fakeSink) snapshot() map[string]map[string]bson.Raw {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]bson.Raw, len(s.docs))
	for ns, m := range s.docs {
		c := make(map[string]bson.Raw, len(m))
		for k, v := range m {
			c[k] = v
		}
		out[ns] = c
	}
	return out
}

// --- transform ---

// renameDropTransform renames namespace from to to and drops documents
// (and updates) with an odd integer _id.
type renameDropTransform struct {
	from, to string
	// failures is the number of retryable failures to return first.
	mu       sync.Mutex
	failures int
}

func (t *renameDropTransform) Configure(context.Context, string) error { return nil }

func (t *renameDropTransform) fail() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failures > 0 {
		t.failures--
		return spi.Retryable(errors.New("transform busy"))
	}
	return nil
}

func (t *renameDropTransform) rename(ns string) string {
	if ns == t.from {
		return t.to
	}
	return ns
}

func odd(id bson.RawValue) bool {
	v, ok := id.Int64OK()
	return ok && v%2 != 0
}

func (t *renameDropTransform) TransformData(_ context.Context, ns string, docs []bson.Raw) ([]spi.DataBatch, error) {
	if err := t.fail(); err != nil {
		return nil, err
	}
	out := spi.DataBatch{Namespace: t.rename(ns)}
	for _, d := range docs {
		if !odd(idOf(d)) {
			out.Docs = append(out.Docs, d)
		}
	}
	if len(out.Docs) == 0 {
		return nil, nil
	}
	return []spi.DataBatch{out}, nil
}

func (t *renameDropTransform) TransformUpdates(_ context.Context, ns string, ups []spi.Update) ([]spi.UpdatesBatch, error) {
	if err := t.fail(); err != nil {
		return nil, err
	}
	out := spi.UpdatesBatch{Namespace: t.rename(ns)}
	for _, u := range ups {
		if !odd(u.ID) {
			out.Updates = append(out.Updates, u)
		}
	}
	return []spi.UpdatesBatch{out}, nil
}

// --- store ---

// hookStore is the real checkpoint store with hooks around Checkpoint, to
// check what is durable against what the sink acknowledged.
type hookStore struct {
	*checkpoint.Store
	before func(parts []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint)
	after  func(parts []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint)

	mu          sync.Mutex
	checkpoints int
}

func (s *hookStore) Checkpoint(id string, parts []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint) error {
	if s.before != nil {
		s.before(parts, ups)
	}
	err := s.Store.Checkpoint(id, parts, ups)
	if err == nil && s.after != nil {
		s.after(parts, ups)
	}
	s.mu.Lock()
	s.checkpoints++
	s.mu.Unlock()
	return err
}

func openStore(t *testing.T) *hookStore {
	t.Helper()
	st, err := checkpoint.Open(t.TempDir(), checkpoint.Options{Command: "coordinator test", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return &hookStore{Store: st}
}
