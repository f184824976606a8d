package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
)

// The fakes stand at the plugin protocol seam: in-memory datasets that
// implement spi.Source, spi.IDGetter and spi.Sink, with hooks to inject
// failures and observe calls.

// memDB is an in-memory dataset: namespaces of documents ordered by id key.
type memDB struct {
	id string

	mu  sync.Mutex
	nss map[string]map[string]bson.Raw // ns -> encodeID(id) -> doc

	// partitions per namespace in plans (default 3); page is the ListData
	// page size (default 7).
	partitions int
	page       int
	noSink     bool

	// planHook may rewrite a plan (to make blind spots or overlaps).
	planHook func([]spi.Partition) []spi.Partition
	// countHook may rewrite a namespace count.
	countHook func(ns string, n uint64) uint64
	// listHook is called before each ListData; an error fails it.
	listHook func(ctx context.Context, p spi.Partition) error
	// getHook is called before each GetByIDs.
	getHook func(ns string, ids []bson.RawValue)

	lists, gets, writes atomic.Int64
	plans               []spi.PlanRequest
}

var (
	_ spi.Source   = (*memDB)(nil)
	_ spi.IDGetter = (*memDB)(nil)
	_ spi.Sink     = (*memDB)(nil)
)

func newMemDB(id string) *memDB {
	return &memDB{id: id, nss: map[string]map[string]bson.Raw{}, partitions: 3, page: 7}
}

func mustRaw(d bson.D) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

func rawValue(v any) bson.RawValue {
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		panic(err)
	}
	return bson.RawValue{Type: t, Value: b}
}

// put stores documents (bson.D with _id) in ns.
func (m *memDB) put(ns string, docs ...bson.D) *memDB {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range docs {
		raw := mustRaw(d)
		m.putRaw(ns, raw)
	}
	return m
}

func (m *memDB) putRaw(ns string, raw bson.Raw) {
	if m.nss[ns] == nil {
		m.nss[ns] = map[string]bson.Raw{}
	}
	m.nss[ns][encodeID(raw.Lookup("_id"))] = raw
}

func (m *memDB) del(ns string, id any) *memDB {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.nss[ns], encodeID(rawValue(id)))
	return m
}

func (m *memDB) get(ns string, id any) bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nss[ns][encodeID(rawValue(id))]
}

// clone copies the dataset under another id.
func (m *memDB) clone(id string) *memDB {
	c := newMemDB(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	for ns, docs := range m.nss {
		for _, d := range docs {
			c.putRaw(ns, slices.Clone(d))
		}
	}
	return c
}

func (m *memDB) Configure(context.Context, spi.Config) error { return nil }

func (m *memDB) Info(context.Context) (spi.Info, error) {
	info := spi.Info{ID: m.id, DBType: "mem", Source: &spi.SourceCapabilities{
		DataTypes: []spi.DataType{spi.DataTypeBSON}, MultiNamespacePlan: true, DefaultPlan: true, GetByIDs: true}}
	if !m.noSink {
		info.Sink = &spi.SinkCapabilities{DataTypes: []spi.DataType{spi.DataTypeBSON}}
	}
	return info, nil
}

func (m *memDB) NamespaceMetadata(_ context.Context, ns string) (spi.NamespaceMetadata, error) {
	m.mu.Lock()
	n := uint64(len(m.nss[ns]))
	m.mu.Unlock()
	if m.countHook != nil {
		n = m.countHook(ns, n)
	}
	return spi.NamespaceMetadata{Count: n}, nil
}

// sortedKeys returns the id keys of ns in order.
func (m *memDB) sortedKeys(ns string) []string {
	keys := make([]string, 0, len(m.nss[ns]))
	for k := range m.nss[ns] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// A partition cursor is "ns\x00lo\x00hi" (keys; empty hi: no bound); a
// page cursor is the last key returned.
func (m *memDB) GeneratePlan(_ context.Context, req spi.PlanRequest) (spi.Plan, error) {
	if req.Updates {
		return spi.Plan{}, errors.New("mem: verify must not ask for update partitions")
	}
	m.mu.Lock()
	m.plans = append(m.plans, req)
	var nss []string
	for ns := range m.nss {
		if len(req.Namespaces) == 0 || slices.ContainsFunc(req.Namespaces, func(n string) bool {
			return n == ns || strings.HasPrefix(ns, n+".")
		}) {
			nss = append(nss, ns)
		}
	}
	sort.Strings(nss)
	var plan spi.Plan
	for _, ns := range nss {
		keys := m.sortedKeys(ns)
		n := max(1, min(m.partitions, len(keys)))
		for k := range n {
			lo, hi := "", ""
			if k > 0 {
				lo = keys[len(keys)*k/n]
			}
			if k < n-1 {
				hi = keys[len(keys)*(k+1)/n]
			}
			plan.Partitions = append(plan.Partitions, spi.Partition{Namespace: ns,
				Cursor: []byte(ns + "\x00" + lo + "\x00" + hi), EstimatedCount: uint64(len(keys) / n)})
		}
	}
	m.mu.Unlock()
	if m.planHook != nil {
		plan.Partitions = m.planHook(plan.Partitions)
	}
	return plan, nil
}

func (m *memDB) ListData(ctx context.Context, p spi.Partition, cursor []byte) (spi.Page, error) {
	m.lists.Add(1)
	if m.listHook != nil {
		if err := m.listHook(ctx, p); err != nil {
			return spi.Page{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return spi.Page{}, err
	}
	parts := strings.Split(string(p.Cursor), "\x00")
	if len(parts) != 3 || parts[0] != p.Namespace {
		return spi.Page{}, fmt.Errorf("mem: bad partition %q", p.Cursor)
	}
	lo, hi := parts[1], parts[2]
	m.mu.Lock()
	defer m.mu.Unlock()
	var page spi.Page
	last := ""
	for _, k := range m.sortedKeys(p.Namespace) {
		if k < lo || (hi != "" && k >= hi) || (len(cursor) > 0 && k <= string(cursor)) {
			continue
		}
		if len(page.Docs) == m.page {
			page.NextCursor = []byte(last)
			return page, nil
		}
		page.Docs = append(page.Docs, slices.Clone(m.nss[p.Namespace][k]))
		last = k
	}
	return page, nil
}

func (m *memDB) GetByIDs(_ context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	m.gets.Add(1)
	if m.getHook != nil {
		m.getHook(ns, ids)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		if d, ok := m.nss[ns][encodeID(id)]; ok {
			out[i] = slices.Clone(d)
		}
	}
	return out, nil
}

func (m *memDB) WriteData(_ context.Context, ns string, docs []bson.Raw) error {
	m.writes.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range docs {
		m.putRaw(ns, slices.Clone(d))
	}
	return nil
}

func (m *memDB) WriteUpdates(_ context.Context, ns string, updates []spi.Update) error {
	m.writes.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range updates {
		switch u.Type {
		case spi.UpdateDelete:
			delete(m.nss[ns], encodeID(u.ID))
		case spi.UpdateInsert, spi.UpdateReplace:
			m.putRaw(ns, slices.Clone(u.Doc))
		default:
			return fmt.Errorf("mem: update type %s not supported", u.Type)
		}
	}
	return nil
}

// sourceOnly hides every interface of a memDB but spi.Source.
type sourceOnly struct{ m *memDB }

func (s sourceOnly) Configure(ctx context.Context, c spi.Config) error { return s.m.Configure(ctx, c) }
func (s sourceOnly) Info(ctx context.Context) (spi.Info, error) {
	info, err := s.m.Info(ctx)
	info.Source.GetByIDs = false
	info.Sink = nil
	return info, err
}
func (s sourceOnly) NamespaceMetadata(ctx context.Context, ns string) (spi.NamespaceMetadata, error) {
	return s.m.NamespaceMetadata(ctx, ns)
}
func (s sourceOnly) GeneratePlan(ctx context.Context, r spi.PlanRequest) (spi.Plan, error) {
	return s.m.GeneratePlan(ctx, r)
}
func (s sourceOnly) ListData(ctx context.Context, p spi.Partition, c []byte) (spi.Page, error) {
	return s.m.ListData(ctx, p, c)
}

// genDB generates namespace "gen.docs" of n documents of size bytes each,
// _id int64 0..n-1, without storing them; ids at or above n are missing.
// It counts the documents it has handed out.
type genDB struct {
	id         string
	n, size    int
	partitions int
	page       int
	served     atomic.Int64
}

func (g *genDB) doc(i int64) bson.Raw {
	pad := make([]byte, max(g.size-40, 1))
	binary.LittleEndian.PutUint64(pad, uint64(i)*0x9e3779b97f4a7c15)
	return mustRaw(bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: bson.Binary{Data: pad}}})
}

func (g *genDB) Configure(context.Context, spi.Config) error { return nil }
func (g *genDB) Info(context.Context) (spi.Info, error) {
	return spi.Info{ID: g.id, DBType: "gen", Source: &spi.SourceCapabilities{
		MultiNamespacePlan: true, DefaultPlan: true, GetByIDs: true}}, nil
}
func (g *genDB) NamespaceMetadata(context.Context, string) (spi.NamespaceMetadata, error) {
	return spi.NamespaceMetadata{Count: uint64(g.n)}, nil
}
func (g *genDB) GeneratePlan(context.Context, spi.PlanRequest) (spi.Plan, error) {
	var plan spi.Plan
	for k := range g.partitions {
		lo, hi := int64(g.n*k/g.partitions), int64(g.n*(k+1)/g.partitions)
		plan.Partitions = append(plan.Partitions, spi.Partition{Namespace: "gen.docs",
			Cursor: binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(lo)), uint64(hi)), EstimatedCount: uint64(hi - lo)})
	}
	return plan, nil
}
func (g *genDB) ListData(ctx context.Context, p spi.Partition, cursor []byte) (spi.Page, error) {
	if err := ctx.Err(); err != nil {
		return spi.Page{}, err
	}
	lo, hi := int64(binary.BigEndian.Uint64(p.Cursor)), int64(binary.BigEndian.Uint64(p.Cursor[8:]))
	if len(cursor) == 8 {
		lo = int64(binary.BigEndian.Uint64(cursor))
	}
	var page spi.Page
	for i := lo; i < hi && len(page.Docs) < g.page; i++ {
		page.Docs = append(page.Docs, g.doc(i))
	}
	g.served.Add(int64(len(page.Docs)))
	if next := lo + int64(len(page.Docs)); next < hi {
		page.NextCursor = binary.BigEndian.AppendUint64(nil, uint64(next))
	}
	return page, nil
}
func (g *genDB) GetByIDs(_ context.Context, _ string, ids []bson.RawValue) ([]bson.Raw, error) {
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		if v, ok := id.Int64OK(); ok && v >= 0 && v < int64(g.n) {
			out[i] = g.doc(v)
		}
	}
	g.served.Add(int64(len(ids)))
	return out, nil
}

// equalBytes is bytes.Equal, for readability in tests.
func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
