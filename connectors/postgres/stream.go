package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/sdk"
)

// Stream tuning.
const (
	// heartbeatEvery is how often an idle stream sends a heartbeat.
	heartbeatEvery = time.Second
	// statusEvery is how often the stream reports its acknowledged
	// position to the server even when it did not change (the server
	// ends silent replication connections after wal_sender_timeout).
	statusEvery = 10 * time.Second
	// ackLatency bounds how long an acknowledgment waits to be reported.
	ackLatency = 100 * time.Millisecond
	// linger is how long a batch waits for more changes before it is sent.
	linger = 2 * time.Millisecond
	// batchUpdates and batchBytes bound one StreamUpdates batch.
	batchUpdates = 1000
	batchBytes   = 4 << 20
	// slotBusyWait is how long StreamUpdates waits for a slot that a
	// closing session still holds.
	slotBusyWait = 20 * time.Second
)

// ackRegistry keeps the highest acknowledged position per slot and hands
// it to the live stream of that slot.
type ackRegistry struct {
	mu      sync.Mutex
	acked   map[string]pglogrepl.LSN
	streams map[string]*ackState
}

type ackState struct {
	acked atomic.Uint64
}

func (r *ackRegistry) register(slot string, floor pglogrepl.LSN) *ackState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.streams == nil {
		r.streams = map[string]*ackState{}
		r.acked = map[string]pglogrepl.LSN{}
	}
	a := &ackState{}
	a.acked.Store(uint64(max(floor, r.acked[slot])))
	r.streams[slot] = a
	return a
}

func (r *ackRegistry) unregister(slot string, a *ackState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.streams[slot] == a {
		delete(r.streams, slot)
	}
}

// ack records lsn for slot and reports whether a live stream took it.
func (r *ackRegistry) ack(slot string, lsn pglogrepl.LSN) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acked == nil {
		r.acked = map[string]pglogrepl.LSN{}
		r.streams = map[string]*ackState{}
	}
	if lsn > r.acked[slot] {
		r.acked[slot] = lsn
	}
	a := r.streams[slot]
	if a == nil {
		return false
	}
	for {
		old := a.acked.Load()
		if uint64(lsn) <= old || a.acked.CompareAndSwap(old, uint64(lsn)) {
			break
		}
	}
	return true
}

// live reports whether a stream of slot runs in this process.
func (r *ackRegistry) live(slot string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[slot] != nil
}

func (r *ackRegistry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = nil
}

// AckUpdates lets the slot of cursor release the changes up to it: the
// live stream reports the cursor's position as its flush position, which
// becomes the slot's confirmed_flush_lsn. Without a live stream in this
// process, the slot is advanced with pg_replication_slot_advance. The
// slot never moves past an acknowledged cursor.
func (c *Connector) AckUpdates(ctx context.Context, cursor []byte) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	cur, err := decodeUpdCursor(cursor)
	if err != nil {
		return err
	}
	lsn := cur.flushLSN()
	if st.acks.ack(cur.Slot, lsn) {
		return nil
	}
	// A stream that just ended may hold the slot for a moment.
	for attempt := 0; ; attempt++ {
		confirmed, ok, err := st.slotPosition(ctx, cur.Slot)
		if err != nil || !ok || lsn <= confirmed {
			return err
		}
		_, err = st.pool.Exec(ctx, "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", cur.Slot, lsn.String())
		if pgCode(err) != "55006" {
			return classify(err, "advance replication slot "+cur.Slot)
		}
		if attempt == 20 || st.acks.live(cur.Slot) {
			// In use by a stream, which reports the position itself.
			slog.Debug("postgres: slot in use; acknowledgment left to its stream", "slot", cur.Slot)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StreamUpdates streams the changes of req.Namespaces (none: every table of
// the publication) from req.Cursor, decoding the slot's pgoutput messages:
// transactions in commit order, each change as an insert, a replace (a
// delete and an insert when the key changed), a partial update (when
// unchanged TOAST values were not sent) or a delete. Batches hold changes
// of one table; their cursors are commit positions.
func (c *Connector) StreamUpdates(ctx context.Context, req sdk.StreamRequest, send func(sdk.UpdateBatch) error) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	cur, err := decodeUpdCursor(req.Cursor)
	if err != nil {
		return err
	}
	s := &stream{st: st, send: send, cur: cur, pos: *cur, rels: map[uint32]*relation{}}
	if len(req.Namespaces) > 0 {
		// Keyed by the canonical form, giving the name as requested.
		s.filter = map[string]string{}
		for _, ns := range req.Namespaces {
			schema, name, err := parseNamespace(ns)
			if err != nil {
				return err
			}
			s.filter[formatNamespace(schema, name)] = ns
		}
	}
	return s.run(ctx)
}

type stream struct {
	st     *state
	send   func(sdk.UpdateBatch) error
	cur    *updCursor        // where the stream started
	filter map[string]string // nil: every table
	rels   map[uint32]*relation
	conn   *pgconn.PgConn
	ack    *ackState

	// pos is the position after the last change processed.
	pos updCursor
	// The transaction being received.
	inTxn    bool
	txXid    uint32
	txCommit pglogrepl.LSN
	txTime   time.Time
	txIdx    int // changes seen in the transaction
	txSkip   int // leading changes of the transaction already delivered

	// The batch being built.
	batch      []sdk.Update
	batchNS    string
	batchBytes int
	batchCur   updCursor
	batchTime  time.Time
	batchSince time.Time

	lastSend     time.Time
	reported     pglogrepl.LSN // the last flush position reported
	received     pglogrepl.LSN // the end of what the server sent
	lastReported time.Time
}

// relation is a table as logical replication describes it.
type relation struct {
	t      *table
	ns     string
	wanted bool
}

func (s *stream) run(ctx context.Context) error {
	st := s.st
	r := s.cur.replication()
	confirmed, ok, err := st.slotPosition(ctx, r.Slot)
	if err != nil {
		return err
	}
	if !ok {
		return sdk.FailedPrecondition(fmt.Errorf("%w: slot %s (of cursor %s) is gone: the changes since the checkpoint are lost; start the flow again (--reset)", ErrNoSlot, r.Slot, s.cur))
	}
	if confirmed > s.cur.lsn {
		return sdk.FailedPrecondition(fmt.Errorf("%w: slot %s is at %s, after the cursor %s: the changes in between are gone (another client used the slot?); start the flow again (--reset)", ErrSlotAdvanced, r.Slot, confirmed, s.cur))
	}
	if err := s.start(ctx); err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.conn.Close(closeCtx)
		cancel()
	}()
	s.ack = st.acks.register(r.Slot, confirmed)
	defer st.acks.unregister(r.Slot, s.ack)
	s.reported = confirmed
	s.received = s.cur.lsn
	s.lastReported = time.Now()
	s.lastSend = time.Now()
	return s.loop(ctx)
}

// start opens the replication connection and starts streaming, waiting
// for a slot that a closing session still holds.
func (s *stream) start(ctx context.Context) error {
	deadline := time.Now().Add(slotBusyWait)
	for {
		conn, err := pgconn.ConnectConfig(ctx, s.st.replCfg)
		if err != nil {
			return replConnectError(err)
		}
		pub := strings.ReplaceAll(quoteIdent(s.cur.Pub), "'", "''")
		err = pglogrepl.StartReplication(ctx, conn, s.cur.Slot, s.cur.flushLSN(), pglogrepl.StartReplicationOptions{
			Mode:       pglogrepl.LogicalReplication,
			PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'"},
		})
		if err == nil {
			s.conn = conn
			return nil
		}
		conn.Close(context.Background())
		if pgCode(err) == "55006" && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if pgCode(err) == "42704" {
			return sdk.FailedPrecondition(fmt.Errorf("postgres: start replication from slot %s: %s", s.cur.Slot, pgMessage(err)))
		}
		return classify(err, "start replication from slot "+s.cur.Slot)
	}
}

func (s *stream) loop(ctx context.Context) error {
	var dl deadline
	defer dl.stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		if err := s.periodic(ctx, now); err != nil {
			return err
		}
		wait := earliest(s.lastSend.Add(heartbeatEvery), s.lastReported.Add(statusEvery), now.Add(ackLatency))
		if len(s.batch) > 0 {
			wait = earliest(wait, s.batchSince.Add(linger))
		}
		msg, err := s.conn.ReceiveMessage(dl.context(ctx, wait))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if len(s.batch) > 0 && !time.Now().Before(s.batchSince.Add(linger)) {
					if err := s.flush(); err != nil {
						return err
					}
				}
				continue
			}
			return classify(err, "receive changes from slot "+s.cur.Slot)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.copyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return classify(pgconn.ErrorResponseToPgError(m), "stream from slot "+s.cur.Slot)
		case *pgproto3.CopyDone:
			return sdk.Retryable(fmt.Errorf("postgres: the server ended the replication stream of slot %s", s.cur.Slot))
		}
	}
}

// periodic sends heartbeats and status updates that are due.
func (s *stream) periodic(ctx context.Context, now time.Time) error {
	if now.Sub(s.lastSend) >= heartbeatEvery {
		if len(s.batch) > 0 {
			if err := s.flush(); err != nil {
				return err
			}
		} else {
			hb := sdk.UpdateBatch{NextCursor: s.pos.encode(), SourceTime: time.Now()}
			if err := s.send(hb); err != nil {
				return err
			}
			s.lastSend = time.Now()
		}
	}
	acked := pglogrepl.LSN(s.ack.acked.Load())
	if acked > s.reported || now.Sub(s.lastReported) >= statusEvery {
		return s.status(false)
	}
	return nil
}

// status reports the stream's position to the server. When the
// acknowledged position moved, write, flush and apply are that position,
// which confirms the slot to it; the slot never moves further. Otherwise
// (a keepalive reply, the periodic report) flush and apply are left unset,
// which the slot ignores, and write is the position received: a server
// shutting down waits until its logical replication clients report having
// everything it sent, and must not wait for the flow to acknowledge it.
func (s *stream) status(reply bool) error {
	acked := pglogrepl.LSN(s.ack.acked.Load())
	write, flush := s.received, pglogrepl.LSN(0)
	if acked > s.reported {
		write, flush = acked, acked
	}
	data := make([]byte, 0, 34)
	data = append(data, pglogrepl.StandbyStatusUpdateByteID)
	data = binary.BigEndian.AppendUint64(data, uint64(write))
	data = binary.BigEndian.AppendUint64(data, uint64(flush))
	data = binary.BigEndian.AppendUint64(data, uint64(flush)) // apply
	data = binary.BigEndian.AppendUint64(data, uint64(time.Since(pgEpoch).Microseconds()))
	if reply {
		data = append(data, 1)
	} else {
		data = append(data, 0)
	}
	buf, err := (&pgproto3.CopyData{Data: data}).Encode(nil)
	if err == nil {
		err = s.conn.Frontend().SendUnbufferedEncodedCopyData(buf)
	}
	if err != nil {
		return classify(err, "report the position of slot "+s.cur.Slot)
	}
	if flush != 0 {
		s.reported = flush
	}
	s.lastReported = time.Now()
	return nil
}

// pgEpoch is the origin of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *stream) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return sdk.Fatal(fmt.Errorf("postgres: slot %s: %w", s.cur.Slot, err))
		}
		// Between transactions, every transaction that commits before the
		// server's position has been sent: the position may move there,
		// so that an idle stream lets the slot advance too.
		if !s.inTxn && s.pos.N == 0 && ka.ServerWALEnd > s.pos.lsn {
			s.pos = *newUpdCursor(ka.ServerWALEnd, 0, s.cur.replication())
		}
		s.received = max(s.received, ka.ServerWALEnd)
		if ka.ReplyRequested {
			return s.status(false)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return sdk.Fatal(fmt.Errorf("postgres: slot %s: %w", s.cur.Slot, err))
		}
		return s.message(ctx, xld.WALData)
	}
	return nil
}

func (s *stream) message(ctx context.Context, data []byte) error {
	m, err := pglogrepl.Parse(data)
	if err != nil {
		return sdk.Fatal(fmt.Errorf("postgres: slot %s: decode pgoutput message: %w", s.cur.Slot, err))
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		rel, err := s.relation(ctx, m)
		if err != nil {
			return err
		}
		s.rels[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		s.inTxn, s.txXid, s.txCommit, s.txTime, s.txIdx, s.txSkip = true, m.Xid, m.FinalLSN, m.CommitTime, 0, 0
		switch {
		case m.FinalLSN < s.cur.lsn:
			s.txSkip = -1 // delivered before the cursor
		case m.FinalLSN == s.cur.lsn:
			s.txSkip = s.cur.N
		}
	case *pglogrepl.CommitMessage:
		s.inTxn = false
		s.received = max(s.received, m.TransactionEndLSN)
		if s.txSkip == -1 {
			return nil
		}
		s.pos = *newUpdCursor(m.TransactionEndLSN, 0, s.cur.replication())
		if len(s.batch) > 0 && s.batchCur.N > 0 && s.batchCur.lsn == s.txCommit {
			s.batchCur = s.pos
		}
	case *pglogrepl.InsertMessage:
		return s.change(ctx, m.RelationID, func(rel *relation) ([]sdk.Update, error) {
			return s.insert(rel, m.Tuple)
		})
	case *pglogrepl.UpdateMessage:
		return s.change(ctx, m.RelationID, func(rel *relation) ([]sdk.Update, error) {
			return s.update(ctx, rel, m.OldTupleType, m.OldTuple, m.NewTuple)
		})
	case *pglogrepl.DeleteMessage:
		return s.change(ctx, m.RelationID, func(rel *relation) ([]sdk.Update, error) {
			return s.delete(rel, m.OldTuple)
		})
	case *pglogrepl.TruncateMessage:
		s.txIdx++
		if s.txSkip == -1 || s.txIdx <= s.txSkip {
			return nil
		}
		for _, id := range m.RelationIDs {
			if rel := s.rels[id]; rel != nil && rel.wanted {
				// Deliver what came before, then stop.
				if err := s.flush(); err != nil {
					return err
				}
				return sdk.Fatal(fmt.Errorf("%w: table %s was truncated (transaction committed at %s, %s): a TRUNCATE cannot be replayed as changes of documents: empty the target and start the flow again (--reset)",
					ErrTruncate, rel.t, s.txCommit, s.txTime.UTC().Format(time.RFC3339)))
			}
		}
		s.pos = *newUpdCursor(s.txCommit, s.txIdx, s.cur.replication())
	}
	return nil
}

// change handles one row change of a transaction.
func (s *stream) change(ctx context.Context, relID uint32, decode func(*relation) ([]sdk.Update, error)) error {
	s.txIdx++
	if s.txSkip == -1 || s.txIdx <= s.txSkip {
		return nil
	}
	rel := s.rels[relID]
	if rel == nil {
		return sdk.Fatal(fmt.Errorf("postgres: slot %s: a change of relation %d before its description", s.cur.Slot, relID))
	}
	pos := *newUpdCursor(s.txCommit, s.txIdx, s.cur.replication())
	s.pos = pos
	if !rel.wanted {
		return nil
	}
	ups, err := decode(rel)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if err := s.add(rel.ns, u, pos); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) add(ns string, u sdk.Update, pos updCursor) error {
	if len(s.batch) > 0 && s.batchNS != ns {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if len(s.batch) == 0 {
		s.batchSince = time.Now()
	}
	s.batch = append(s.batch, u)
	s.batchNS = ns
	s.batchBytes += len(u.Doc) + len(u.ID.Value) + 16
	s.batchCur = pos
	s.batchTime = s.txTime
	if len(s.batch) >= batchUpdates || s.batchBytes >= batchBytes {
		return s.flush()
	}
	return nil
}

func (s *stream) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	b := sdk.UpdateBatch{Namespace: s.batchNS, Updates: s.batch, NextCursor: s.batchCur.encode(), SourceTime: s.batchTime}
	s.batch, s.batchBytes = nil, 0
	if err := s.send(b); err != nil {
		return err
	}
	s.lastSend = time.Now()
	return nil
}

// relation describes a table from its Relation message: the columns as
// the messages send them (every column but generated ones), the primary
// key from the catalog (in key order).
func (s *stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) (*relation, error) {
	ns := formatNamespace(m.Namespace, m.RelationName)
	rel := &relation{ns: ns, wanted: s.filter == nil}
	if requested, ok := s.filter[ns]; ok {
		rel.ns, rel.wanted = requested, true
		ns = requested
	}
	t := &table{ns: ns, schema: m.Namespace, name: m.RelationName, byName: map[string]int{}, relkind: 'r', replIdent: m.ReplicaIdentity}
	for i, c := range m.Columns {
		typ, err := s.st.types.resolve(ctx, s.st.pool, c.DataType)
		if err != nil {
			return nil, classify(err, "describe table "+ns)
		}
		t.cols = append(t.cols, column{name: c.Name, typ: typ})
		t.byName[c.Name] = i
		t.src = append(t.src, i)
	}
	rel.t = t
	if !rel.wanted {
		return rel, nil
	}
	s.st.srcCache.Delete(ns) // the definition may have changed
	cat, err := s.st.sourceTable(ctx, ns)
	switch {
	case err == nil:
		t.relkind, t.oid = cat.relkind, cat.oid
		for _, k := range cat.pk {
			i, ok := t.byName[cat.cols[k].name]
			if !ok {
				return nil, sdk.Fatal(fmt.Errorf("postgres: table %s: primary key column %s is not in its change events", ns, cat.cols[k].name))
			}
			t.pk = append(t.pk, i)
		}
	case errors.Is(err, errNoTable) && m.ReplicaIdentity == 'd':
		// The table is gone from the catalog: the key columns are the
		// flagged ones.
		for i, c := range m.Columns {
			if c.Flags&1 == 1 {
				t.pk = append(t.pk, i)
			}
		}
	default:
		return nil, err
	}
	for _, i := range t.pk {
		t.cols[i].isKey = true
	}
	t.docTable = len(t.cols) == 2 && len(t.pk) == 1 && t.cols[t.pk[0]].name == "_id" &&
		t.cols[1-t.pk[0]].name == "doc" && t.cols[1-t.pk[0]].typ.kind == kJSONB
	return rel, nil
}

// tupleVals reads a tuple into values indexed like the relation's columns.
func tupleVals(rel *relation, tup *pglogrepl.TupleData) ([]rowVal, error) {
	vals := make([]rowVal, len(rel.t.cols))
	if tup == nil {
		return vals, nil
	}
	if len(tup.Columns) != len(rel.t.cols) {
		return nil, sdk.Fatal(fmt.Errorf("postgres: table %s: a change has %d columns, its description %d", rel.t, len(tup.Columns), len(rel.t.cols)))
	}
	for i, c := range tup.Columns {
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			vals[i] = rowVal{null: true, set: true}
		case pglogrepl.TupleDataTypeToast:
			vals[i] = rowVal{unchanged: true}
		case pglogrepl.TupleDataTypeText:
			vals[i] = rowVal{text: c.Data, set: true}
		default:
			return nil, sdk.Fatal(fmt.Errorf("postgres: table %s: column %s arrived in binary form", rel.t, rel.t.cols[i].name))
		}
	}
	return vals, nil
}

func (s *stream) insert(rel *relation, tup *pglogrepl.TupleData) ([]sdk.Update, error) {
	vals, err := tupleVals(rel, tup)
	if err != nil {
		return nil, err
	}
	doc, id, err := s.docAndID(rel, vals)
	if err != nil {
		return nil, err
	}
	return []sdk.Update{{ID: id, Type: sdk.UpdateInsert, Doc: doc}}, nil
}

func (s *stream) docAndID(rel *relation, vals []rowVal) (bson.Raw, bson.RawValue, error) {
	doc, err := rel.t.appendDoc(nil, vals, s.st.opts.Lossless)
	if err != nil {
		return nil, bson.RawValue{}, sdk.Fatal(fmt.Errorf("postgres: %w", err))
	}
	id, err := bson.Raw(doc).LookupErr("_id")
	if err != nil {
		return nil, bson.RawValue{}, sdk.Fatal(fmt.Errorf("postgres: table %s: a change without _id", rel.t))
	}
	return doc, id, nil
}

func hasUnchanged(vals []rowVal) bool {
	for _, v := range vals {
		if v.unchanged {
			return true
		}
	}
	return false
}

func (s *stream) update(ctx context.Context, rel *relation, oldType uint8, oldTup, newTup *pglogrepl.TupleData) ([]sdk.Update, error) {
	t := rel.t
	vals, err := tupleVals(rel, newTup)
	if err != nil {
		return nil, err
	}
	var old []rowVal
	if oldTup != nil {
		if old, err = tupleVals(rel, oldTup); err != nil {
			return nil, err
		}
		// With REPLICA IDENTITY FULL the old row has every value: fill in
		// the unchanged TOAST values. (An old key tuple has only the key.)
		if oldType == pglogrepl.UpdateMessageTupleTypeOld {
			for i := range vals {
				if vals[i].unchanged && old[i].set {
					vals[i] = old[i]
				}
			}
		}
	}
	unchanged := hasUnchanged(vals)
	for _, k := range t.pk {
		if vals[k].unchanged {
			return nil, sdk.Fatal(fmt.Errorf("postgres: table %s: a change event lacks its primary key column %s (an unchanged TOAST value): ALTER TABLE %s REPLICA IDENTITY FULL", t, t.cols[k].name, t))
		}
	}
	if t.docTable && vals[1-t.pk[0]].unchanged && (old == nil) {
		return nil, nil // only a TOASTed doc that did not change
	}
	var newID bson.RawValue
	if t.docTable && vals[1-t.pk[0]].unchanged {
		if newID, err = docTableKeyID(t, vals); err != nil {
			return nil, sdk.Fatal(fmt.Errorf("postgres: %w", err))
		}
	} else if newID, err = s.idOf(t, vals, unchanged); err != nil {
		return nil, err
	}
	if old != nil {
		var oldID bson.RawValue
		if t.docTable && oldType == pglogrepl.UpdateMessageTupleTypeKey {
			oldID, err = docTableKeyID(t, old)
		} else {
			oldID, err = t.idOf(old)
		}
		if err != nil {
			return nil, sdk.Fatal(fmt.Errorf("postgres: %w", err))
		}
		if oldID.Type != newID.Type || !bytes.Equal(oldID.Value, newID.Value) {
			// The key changed: the old document goes, the new one comes.
			ups := []sdk.Update{{ID: oldID, Type: sdk.UpdateDelete}}
			if !unchanged {
				doc, _, err := s.docAndID(rel, vals)
				if err != nil {
					return nil, err
				}
				return append(ups, sdk.Update{ID: newID, Type: sdk.UpdateInsert, Doc: doc}), nil
			}
			// Some values were not sent: read the row as it is now (later
			// changes of it follow in the stream), once the transaction
			// is visible: its commit reaches the stream before other
			// sessions see it.
			if err := s.waitVisible(ctx); err != nil {
				return nil, err
			}
			docs, err := s.st.getByIDs(ctx, s.st.pool, s.catalogTable(ctx, rel), []bson.RawValue{newID}, false)
			if err != nil {
				return nil, err
			}
			if docs[0] != nil {
				ups = append(ups, sdk.Update{ID: newID, Type: sdk.UpdateReplace, Doc: docs[0]})
			}
			return ups, nil
		}
	}
	if !unchanged {
		doc, _, err := s.docAndID(rel, vals)
		if err != nil {
			return nil, err
		}
		return []sdk.Update{{ID: newID, Type: sdk.UpdateReplace, Doc: doc}}, nil
	}
	// Unchanged TOAST values were not sent: set the columns that were.
	set, unset := s.partial(t, vals)
	return []sdk.Update{{ID: newID, Type: sdk.UpdatePartial, Doc: set, Unset: unset}}, nil
}

// waitVisible waits until the transaction being received is visible to new
// snapshots. Its commit record is written, and may be decoded and sent,
// before the committing session leaves the server's list of running
// transactions, and until then a query does not see its changes.
func (s *stream) waitVisible(ctx context.Context) error {
	const q = `WITH c AS (SELECT pg_current_snapshot() AS s)
		SELECT pg_snapshot_xmax(s)::text::bigint, ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x) FROM c`
	for {
		var xmax int64
		var xip []int64
		if err := s.st.pool.QueryRow(ctx, q).Scan(&xmax, &xip); err != nil {
			return classify(err, "read the running transactions")
		}
		// Transaction ids compare modulo 2^32: visible once below xmax
		// and not running.
		visible := int32(s.txXid-uint32(xmax)) < 0
		for _, x := range xip {
			if uint32(x) == s.txXid {
				visible = false
			}
		}
		if visible {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// catalogTable returns the catalog's definition of a relation's table.
func (s *stream) catalogTable(ctx context.Context, rel *relation) *table {
	if t, err := s.st.sourceTable(ctx, rel.ns); err == nil {
		return t
	}
	return rel.t
}

// idOf builds the _id of a new row; a table without a primary key has no
// id when values are missing.
func (s *stream) idOf(t *table, vals []rowVal, unchanged bool) (bson.RawValue, error) {
	if t.hashID() && unchanged {
		return bson.RawValue{}, sdk.Fatal(fmt.Errorf("postgres: table %s has no primary key and a change event lacks values (unchanged TOAST values): ALTER TABLE %s REPLICA IDENTITY FULL", t, t))
	}
	id, err := t.idOf(vals)
	if err != nil {
		return bson.RawValue{}, sdk.Fatal(fmt.Errorf("postgres: %w", err))
	}
	return id, nil
}

// partial builds the partial update of the columns a change sent: their
// values, and for each the exact text in MetaField.<column> or its
// removal.
func (s *stream) partial(t *table, vals []rowVal) (bson.Raw, []string) {
	idx, doc := bsoncore.AppendDocumentStart(nil)
	var unset []string
	var metas []int
	for _, i := range t.src {
		c := &t.cols[i]
		v := vals[i]
		if c.isKey || v.unchanged || !v.set {
			continue
		}
		if v.null {
			doc = bsoncore.AppendNullElement(doc, c.name)
			if s.st.opts.Lossless {
				unset = append(unset, MetaField+"."+c.name)
			}
			continue
		}
		h := len(doc)
		doc = bsoncore.AppendHeader(doc, bsoncore.TypeNull, c.name)
		var typ bsoncore.Type
		var exact bool
		doc, typ, exact = appendNatural(doc, c.typ, v.text)
		doc[h] = byte(typ)
		switch {
		case !s.st.opts.Lossless:
		case exact:
			unset = append(unset, MetaField+"."+c.name)
		default:
			metas = append(metas, i)
		}
	}
	for _, i := range metas {
		doc = bsoncore.AppendHeader(doc, bsoncore.TypeString, MetaField+"."+t.cols[i].name)
		doc = appendBSONString(doc, vals[i].text)
	}
	doc, _ = bsoncore.AppendDocumentEnd(doc, idx)
	return doc, unset
}

func (s *stream) delete(rel *relation, oldTup *pglogrepl.TupleData) ([]sdk.Update, error) {
	if oldTup == nil {
		return nil, sdk.Fatal(fmt.Errorf("postgres: table %s: a delete without the old key (REPLICA IDENTITY NOTHING?): ALTER TABLE %s REPLICA IDENTITY DEFAULT", rel.t, rel.t))
	}
	vals, err := tupleVals(rel, oldTup)
	if err != nil {
		return nil, err
	}
	t := rel.t
	var id bson.RawValue
	if t.docTable && !vals[1-t.pk[0]].set {
		id, err = docTableKeyID(t, vals)
	} else {
		id, err = t.idOf(vals)
	}
	if err != nil {
		return nil, sdk.Fatal(fmt.Errorf("postgres: %w", err))
	}
	return []sdk.Update{{ID: id, Type: sdk.UpdateDelete}}, nil
}

// docTableKeyID is the _id of a document table row known only by its _id
// column.
func docTableKeyID(t *table, vals []rowVal) (bson.RawValue, error) {
	v := vals[t.pk[0]]
	if !v.set || v.null {
		return bson.RawValue{}, errors.New("document table " + t.String() + ": a delete without _id")
	}
	if t.cols[t.pk[0]].typ.kind == kJSONB {
		return parseEJSONValue(v.text)
	}
	val, typ := appendKeyValue(nil, t.cols[t.pk[0]].typ, v.text)
	return bson.RawValue{Type: bson.Type(typ), Value: val}, nil
}

func earliest(ts ...time.Time) time.Time {
	e := ts[0]
	for _, t := range ts[1:] {
		if t.Before(e) {
			e = t
		}
	}
	return e
}

// deadline is a context with a deadline, reused while the deadline is the
// same: deadlines are rounded up to 10 ms so that a burst of messages
// shares one context.
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *deadline) context(parent context.Context, at time.Time) context.Context {
	if r := at.Truncate(10 * time.Millisecond); r.Before(at) {
		at = r.Add(10 * time.Millisecond)
	}
	if d.ctx == nil || !at.Equal(d.at) || d.ctx.Err() != nil {
		d.stop()
		d.ctx, d.cancel = context.WithDeadline(parent, at)
		d.at = at
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}
