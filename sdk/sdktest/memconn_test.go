package sdktest_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// memConn is the connector the kit is tested with: a source and a sink over
// an in-memory store, seeded from its URL, with GetByIds and an update
// stream. Its variants break one rule each, to prove the kit notices.
//
//	mem://NAME?ns=db.a,db.b&docs=40&log=PATH
//
// Without log, the update stream is generated from the cursor; with log,
// it tails PATH, a file of JSON lines that tests append changes to.
type memConn struct {
	variant string
	// release ends the hung streams of the ignores-cancel variant.
	release chan struct{}

	mu      sync.Mutex
	cfg     memConfig
	data    map[string]map[string]bson.Raw // namespace -> key -> document
	tokens  map[string][]byte              // volatile-cursor: token -> key
	nextTok int
}

type memConfig struct {
	name string
	nss  []string
	docs int
	log  string
}

const (
	pageSize      = 7
	genBatch      = 6
	heartbeatEach = 200 * time.Millisecond
)

// Variants.
const (
	variantGood           = "good"
	variantDupPlan        = "dup-plan"        // partitions overlap by one document
	variantVolatileCursor = "volatile-cursor" // page cursors live in memory only
	variantNonIdempotent  = "non-idempotent"  // WriteData fails on existing ids
	variantReorder        = "reorder"         // WriteUpdates applies deletes last
	variantPlainError     = "plain-error"     // Configure returns unclassified errors
	variantUnstableID     = "unstable-id"     // Info.ID changes per process
	variantBadResume      = "bad-resume"      // stream cursors skip one event
	variantIgnoresCancel  = "ignores-cancel"  // StreamUpdates hangs once the client is gone
	variantStreamReorder  = "stream-reorder"  // the log stream reverses each batch
	variantExits          = "exits"           // GetByIds panics
	variantSinkOnly       = "sink-only"
	variantSourceOnly     = "source-only" // no updates, no GetByIds
)

func newConnector(variant string) sdk.Connector {
	m := &memConn{variant: variant, tokens: map[string][]byte{}}
	switch variant {
	case variantSinkOnly:
		return sinkOnly{m}
	case variantSourceOnly:
		return sourceOnly{m}
	}
	return m
}

var (
	_ sdk.Source         = (*memConn)(nil)
	_ sdk.Sink           = (*memConn)(nil)
	_ sdk.UpdateStreamer = (*memConn)(nil)
	_ sdk.IDGetter       = (*memConn)(nil)
)

func (m *memConn) invalid(format string, args ...any) error {
	if m.variant == variantPlainError {
		return fmt.Errorf(format, args...)
	}
	return sdk.InvalidArgument(format, args...)
}

func (m *memConn) Configure(ctx context.Context, cfg sdk.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return m.invalid("the connection string is not a URL: %v", err)
	}
	if u.Scheme != "mem" {
		return m.invalid("unsupported scheme %q: use mem://NAME?ns=A,B&docs=N", u.Scheme)
	}
	c := memConfig{name: cmp.Or(u.Host, "default"), nss: []string{"db.a", "db.b"}, docs: 40}
	for k, v := range u.Query() {
		switch k {
		case "ns":
			c.nss = strings.Split(v[0], ",")
		case "docs":
			if c.docs, err = strconv.Atoi(v[0]); err != nil || c.docs < 0 {
				return m.invalid("option docs=%q: want a number of documents >= 0", v[0])
			}
		case "log":
			c.log = v[0]
		default:
			return m.invalid("unknown option %q; the options are ns, docs and log", k)
		}
	}
	data := map[string]map[string]bson.Raw{}
	for _, ns := range c.nss {
		data[ns] = map[string]bson.Raw{}
		for i := range c.docs {
			doc, _ := bson.Marshal(bson.D{
				{Key: "_id", Value: int64(i)},
				{Key: "n", Value: int32(i)},
				{Key: "s", Value: fmt.Sprintf("%s-%d", ns, i)},
				{Key: "sub", Value: bson.D{{Key: "a", Value: int64(2 * i)}}},
			})
			data[ns][key(bson.Raw(doc).Lookup("_id"))] = doc
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg, m.data = c, data
	return nil
}

func (m *memConn) Info(context.Context) (sdk.Info, error) {
	id := "mem:" + m.cfg.name
	if m.variant == variantUnstableID {
		id += fmt.Sprintf(":%d", os.Getpid())
	}
	return sdk.Info{
		ID: id, DBType: "mem", Version: "1",
		Source: &sdk.SourceCapabilities{MultiNamespacePlan: true, DefaultPlan: true, GetByIDs: true, Updates: true},
		Sink:   &sdk.SinkCapabilities{},
	}, nil
}

// key orders and identifies ids: the BSON type, then the value bytes.
func key(id bson.RawValue) string { return string(append([]byte{byte(id.Type)}, id.Value...)) }

func (m *memConn) sortedKeys(ns string) []string {
	keys := make([]string, 0, len(m.data[ns]))
	for k := range m.data[ns] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (m *memConn) NamespaceMetadata(_ context.Context, ns string) (sdk.NamespaceMetadata, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var md sdk.NamespaceMetadata
	for _, d := range m.data[ns] {
		md.Count++
		md.SizeBytes += uint64(len(d))
	}
	return md, nil
}

type partDef struct {
	NS string `json:"ns"`
	Lo string `json:"lo"` // hex key, inclusive; "" = start
	Hi string `json:"hi"` // hex key, exclusive; "" = end
}

func (m *memConn) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nss := req.Namespaces
	if len(nss) == 0 {
		nss = m.cfg.nss
	}
	var plan sdk.Plan
	for _, ns := range nss {
		if _, ok := m.data[ns]; !ok {
			return sdk.Plan{}, sdk.InvalidArgument("namespace %q does not exist", ns)
		}
		if !req.InitialSync {
			continue
		}
		keys := m.sortedKeys(ns)
		mid := len(keys) / 2
		defs := []partDef{{NS: ns}}
		if mid > 0 {
			split := hex.EncodeToString([]byte(keys[mid]))
			lo := split
			if m.variant == variantDupPlan {
				lo = hex.EncodeToString([]byte(keys[mid-1]))
			}
			defs = []partDef{{NS: ns, Hi: split}, {NS: ns, Lo: lo}}
		}
		for _, d := range defs {
			b, _ := json.Marshal(d)
			plan.Partitions = append(plan.Partitions, sdk.Partition{Namespace: ns, Cursor: b, EstimatedCount: uint64(len(keys) / len(defs))})
		}
	}
	if req.Updates {
		pos := uint64(0)
		if m.cfg.log != "" {
			lines, err := readLog(m.cfg.log)
			if err != nil {
				return sdk.Plan{}, err
			}
			pos = uint64(len(lines))
		}
		plan.UpdatesPartitions = []sdk.UpdatesPartition{{Namespaces: nss, Cursor: seqCursor(pos)}}
	}
	return plan, nil
}

func (m *memConn) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Page{}, err
	}
	var def partDef
	if err := json.Unmarshal(p.Cursor, &def); err != nil {
		return sdk.Page{}, sdk.InvalidArgument("bad partition: %v", err)
	}
	lo, _ := hex.DecodeString(def.Lo)
	hi, _ := hex.DecodeString(def.Hi)
	m.mu.Lock()
	defer m.mu.Unlock()
	after := []byte(nil)
	if len(cursor) > 0 {
		if m.variant == variantVolatileCursor {
			after = m.tokens[string(cursor)] // unknown after a restart: starts over
		} else {
			after, _ = hex.DecodeString(string(cursor))
		}
	}
	var page sdk.Page
	keys := m.sortedKeys(def.NS)
	for i, k := range keys {
		if k < string(lo) || (after != nil && k <= string(after)) {
			continue
		}
		if len(hi) > 0 && k >= string(hi) {
			break
		}
		page.Docs = append(page.Docs, m.data[def.NS][k])
		if len(page.Docs) == pageSize {
			if i+1 < len(keys) && (len(hi) == 0 || keys[i+1] < string(hi)) {
				page.NextCursor = m.cursorFor(k)
			}
			break
		}
	}
	return page, nil
}

func (m *memConn) cursorFor(k string) []byte {
	if m.variant == variantVolatileCursor {
		m.nextTok++
		tok := fmt.Sprintf("t%d", m.nextTok)
		m.tokens[tok] = []byte(k)
		return []byte(tok)
	}
	return []byte(hex.EncodeToString([]byte(k)))
}

func (m *memConn) GetByIDs(_ context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	if m.variant == variantExits {
		panic("memconn: giving up")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		out[i] = m.data[ns][key(id)]
	}
	return out, nil
}

func seqCursor(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cursorSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, sdk.InvalidArgument("bad update cursor %x", b)
	}
	return binary.BigEndian.Uint64(b), nil
}

// genEvent is change k of the generated stream: five ids per namespace go
// through replace, partial, delete and insert in turn.
func genEvent(nss []string, k uint64) (string, sdk.Update) {
	ns := nss[(k/10)%uint64(len(nss))]
	idv := int64(k % 5)
	id := bson.RawValue{Type: bson.TypeInt64, Value: binary.LittleEndian.AppendUint64(nil, uint64(idv))}
	doc := func(d bson.D) bson.Raw { b, _ := bson.Marshal(d); return b }
	switch (k / 5) % 4 {
	case 0:
		return ns, sdk.Update{ID: id, Type: sdk.UpdateReplace, Doc: doc(bson.D{{Key: "_id", Value: idv}, {Key: "v", Value: int64(k)}})}
	case 1:
		return ns, sdk.Update{ID: id, Type: sdk.UpdatePartial, Doc: doc(bson.D{{Key: "v", Value: int64(k)}, {Key: "sub.b", Value: int64(k)}}), Unset: []string{"s"}}
	case 2:
		return ns, sdk.Update{ID: id, Type: sdk.UpdateDelete}
	}
	return ns, sdk.Update{ID: id, Type: sdk.UpdateInsert, Doc: doc(bson.D{{Key: "_id", Value: idv}, {Key: "v", Value: int64(k)}})}
}

func (m *memConn) StreamUpdates(ctx context.Context, req sdk.StreamRequest, send func(sdk.UpdateBatch) error) error {
	seq, err := cursorSeq(req.Cursor)
	if err != nil {
		return err
	}
	m.mu.Lock()
	cfg := m.cfg
	m.mu.Unlock()
	nss := req.Namespaces
	if len(nss) == 0 {
		nss = cfg.nss
	}
	want := map[string]bool{}
	for _, ns := range nss {
		want[ns] = true
	}
	sendOrHang := func(b sdk.UpdateBatch) error {
		err := send(b)
		if err != nil && m.variant == variantIgnoresCancel {
			<-m.release
		}
		return err
	}
	if cfg.log != "" {
		return m.tailLog(ctx, cfg.log, seq, want, sendOrHang)
	}
	for n := 0; ; n++ {
		var b sdk.UpdateBatch
		for len(b.Updates) < genBatch {
			ns, u := genEvent(cfg.nss, seq)
			if b.Namespace != "" && ns != b.Namespace {
				break
			}
			seq++
			if want[ns] {
				b.Namespace = ns
				b.Updates = append(b.Updates, u)
			}
		}
		next := seq
		if m.variant == variantBadResume {
			next++
		}
		b.NextCursor, b.SourceTime = seqCursor(next), time.Now()
		if err := sendOrHang(b); err != nil {
			return err
		}
		if n%3 == 2 {
			if err := sendOrHang(sdk.UpdateBatch{NextCursor: seqCursor(next), SourceTime: time.Now()}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if m.variant == variantIgnoresCancel {
				<-m.release
			}
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// logLine is one change in a log file.
type logLine struct {
	NS  string          `json:"ns"`
	ID  int64           `json:"id"`
	Op  string          `json:"op"` // insert, update, delete
	Doc json.RawMessage `json:"doc,omitempty"`
}

func readLog(path string) ([]logLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, sdk.Retryable(err)
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, sdk.Fatal(fmt.Errorf("change log %s: %w", path, err))
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

func (m *memConn) tailLog(ctx context.Context, path string, pos uint64, want map[string]bool, send func(sdk.UpdateBatch) error) error {
	lastSend := time.Time{}
	for {
		lines, err := readLog(path)
		if err != nil {
			return err
		}
		for pos < uint64(len(lines)) {
			var b sdk.UpdateBatch
			for pos < uint64(len(lines)) && len(b.Updates) < 3 {
				l := lines[pos]
				if b.Namespace != "" && l.NS != b.Namespace {
					break
				}
				pos++
				if !want[l.NS] {
					continue
				}
				u := sdk.Update{ID: bson.RawValue{Type: bson.TypeInt64, Value: binary.LittleEndian.AppendUint64(nil, uint64(l.ID))}}
				switch l.Op {
				case "insert":
					u.Type = sdk.UpdateInsert
				case "update":
					u.Type = sdk.UpdateReplace
				default:
					u.Type = sdk.UpdateDelete
				}
				if len(l.Doc) > 0 {
					var d bson.D
					if err := bson.UnmarshalExtJSON(l.Doc, false, &d); err != nil {
						return sdk.Fatal(err)
					}
					u.Doc, _ = bson.Marshal(d)
				}
				b.Namespace = l.NS
				b.Updates = append(b.Updates, u)
			}
			if len(b.Updates) == 0 {
				continue
			}
			if m.variant == variantStreamReorder {
				slices.Reverse(b.Updates)
			}
			b.NextCursor, b.SourceTime = seqCursor(pos), time.Now()
			if err := send(b); err != nil {
				return err
			}
			lastSend = time.Now()
		}
		if time.Since(lastSend) >= heartbeatEach {
			if err := send(sdk.UpdateBatch{NextCursor: seqCursor(pos), SourceTime: time.Now()}); err != nil {
				return err
			}
			lastSend = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (m *memConn) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[ns] == nil {
		m.data[ns] = map[string]bson.Raw{}
	}
	for _, d := range docs {
		k := key(d.Lookup("_id"))
		if _, ok := m.data[ns][k]; ok && m.variant == variantNonIdempotent {
			return fmt.Errorf("duplicate key %s", d.Lookup("_id"))
		}
		m.data[ns][k] = slices.Clone(d)
	}
	return nil
}

func (m *memConn) WriteUpdates(ctx context.Context, ns string, ups []sdk.Update) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.variant == variantReorder {
		ups = slices.Clone(ups)
		sort.SliceStable(ups, func(i, j int) bool { return ups[i].Type < ups[j].Type })
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[ns] == nil {
		m.data[ns] = map[string]bson.Raw{}
	}
	for _, u := range ups {
		k := key(u.ID)
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			m.data[ns][k] = slices.Clone(u.Doc)
		case sdk.UpdateDelete:
			delete(m.data[ns], k)
		case sdk.UpdatePartial:
			cur, ok := m.data[ns][k]
			if !ok {
				continue
			}
			doc, err := applyPartial(cur, u)
			if err != nil {
				return sdk.Fatal(err)
			}
			m.data[ns][k] = doc
		}
	}
	return nil
}

// applyPartial sets the fields of u.Doc (dotted paths create embedded
// documents) and removes u.Unset, as MongoDB's $set and $unset do.
func applyPartial(cur bson.Raw, u sdk.Update) (bson.Raw, error) {
	var d bson.D
	if err := bson.Unmarshal(cur, &d); err != nil {
		return nil, err
	}
	elems, err := bson.Raw(u.Doc).Elements()
	if err != nil {
		return nil, err
	}
	for _, el := range elems {
		var v any
		if err := el.Value().Unmarshal(&v); err != nil {
			return nil, err
		}
		d = setPath(d, strings.Split(el.Key(), "."), v)
	}
	for _, f := range u.Unset {
		d = unsetPath(d, strings.Split(f, "."))
	}
	return bson.Marshal(d)
}

func setPath(d bson.D, path []string, v any) bson.D {
	for i, e := range d {
		if e.Key != path[0] {
			continue
		}
		if len(path) == 1 {
			d[i].Value = v
		} else {
			sub, _ := e.Value.(bson.D)
			d[i].Value = setPath(sub, path[1:], v)
		}
		return d
	}
	if len(path) == 1 {
		return append(d, bson.E{Key: path[0], Value: v})
	}
	return append(d, bson.E{Key: path[0], Value: setPath(nil, path[1:], v)})
}

func unsetPath(d bson.D, path []string) bson.D {
	for i, e := range d {
		if e.Key != path[0] {
			continue
		}
		if len(path) == 1 {
			return slices.Delete(d, i, i+1)
		}
		if sub, ok := e.Value.(bson.D); ok {
			d[i].Value = unsetPath(sub, path[1:])
		}
		return d
	}
	return d
}

// sinkOnly exposes only the sink side of a memConn.
type sinkOnly struct{ m *memConn }

var _ sdk.Sink = sinkOnly{}

func (s sinkOnly) Configure(ctx context.Context, cfg sdk.Config) error {
	return s.m.Configure(ctx, cfg)
}

func (s sinkOnly) Info(ctx context.Context) (sdk.Info, error) {
	info, err := s.m.Info(ctx)
	info.Source = nil
	return info, err
}

func (s sinkOnly) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	return s.m.WriteData(ctx, ns, docs)
}

func (s sinkOnly) WriteUpdates(ctx context.Context, ns string, ups []sdk.Update) error {
	return s.m.WriteUpdates(ctx, ns, ups)
}

// sourceOnly exposes a memConn as a source without updates or GetByIds.
type sourceOnly struct{ m *memConn }

var _ sdk.Source = sourceOnly{}

func (s sourceOnly) Configure(ctx context.Context, cfg sdk.Config) error {
	return s.m.Configure(ctx, cfg)
}

func (s sourceOnly) Info(ctx context.Context) (sdk.Info, error) {
	info, err := s.m.Info(ctx)
	info.Sink = nil
	info.Source = &sdk.SourceCapabilities{MultiNamespacePlan: true, DefaultPlan: true}
	return info, err
}

func (s sourceOnly) NamespaceMetadata(ctx context.Context, ns string) (sdk.NamespaceMetadata, error) {
	return s.m.NamespaceMetadata(ctx, ns)
}

func (s sourceOnly) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	return s.m.GeneratePlan(ctx, req)
}

func (s sourceOnly) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	return s.m.ListData(ctx, p, cursor)
}
