package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// event is one update of a stream with the cursor of its batch.
type event struct {
	ns     string
	u      sdk.Update
	cursor []byte // NextCursor of the batch; set on the batch's last update
}

func (e event) String() string {
	s := fmt.Sprintf("%s %s %s", e.ns, e.u.Type, e.u.ID)
	if e.u.Type == sdk.UpdatePartial {
		s += fmt.Sprintf(" set %s unset %v", e.u.Doc, e.u.Unset)
	}
	return s
}

// streamer runs StreamUpdates in the background.
type streamer struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error

	mu         sync.Mutex
	events     []event
	heartbeats [][]byte
	batches    int
}

func startStream(t testing.TB, c *Connector, namespaces []string, cursor []byte) *streamer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &streamer{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- c.StreamUpdates(ctx, sdk.StreamRequest{Namespaces: namespaces, Cursor: cursor}, func(b sdk.UpdateBatch) error {
			if len(b.NextCursor) == 0 {
				t.Errorf("a batch without a cursor")
			}
			if b.SourceTime.IsZero() {
				t.Errorf("a batch without a source time")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(b.Updates) == 0 {
				if b.Namespace != "" {
					t.Errorf("a heartbeat with namespace %q", b.Namespace)
				}
				s.heartbeats = append(s.heartbeats, b.NextCursor)
				return nil
			}
			s.batches++
			for i, u := range b.Updates {
				e := event{ns: b.Namespace, u: u}
				if i == len(b.Updates)-1 {
					e.cursor = b.NextCursor
				}
				s.events = append(s.events, e)
			}
			return nil
		})
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

// wait waits until the stream delivered n updates and returns them.
func (s *streamer) wait(n int) []event {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.events)
		evs := append([]event(nil), s.events...)
		s.mu.Unlock()
		if got >= n {
			return evs
		}
		select {
		case err := <-s.done:
			s.done <- err
			s.t.Fatalf("the stream ended after %d of %d updates: %v", got, n, err)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the stream delivered %d of %d updates in 30 s: %v", got, n, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heartbeatAfter waits for a heartbeat after the k-th one.
func (s *streamer) heartbeatAfter(k int) []byte {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		if len(s.heartbeats) > k {
			hb := s.heartbeats[len(s.heartbeats)-1]
			s.mu.Unlock()
			return hb
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no heartbeat within 15 s")
	return nil
}

func (s *streamer) heartbeatCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heartbeats)
}

// stop cancels the stream and checks that it ends with the cancellation.
func (s *streamer) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		if !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	case <-time.After(10 * time.Second):
		s.t.Errorf("StreamUpdates did not return within 10 s of its cancellation")
		return nil
	}
}

// waitErr waits for the stream to end by itself.
func (s *streamer) waitErr() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatalf("the stream did not end")
		return nil
	}
}

func summary(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s %s %s", e.ns, e.u.Type, idJSON(e.u.ID))
	}
	return out
}

// idJSON prints an id as relaxed Extended JSON.
func idJSON(v bson.RawValue) string {
	doc, _ := bson.Marshal(bson.D{{Key: "v", Value: v}})
	b, _ := bson.MarshalExtJSON(bson.Raw(doc), false, false)
	s := string(b)
	return strings.TrimSuffix(strings.TrimPrefix(s, `{"v":`), "}")
}

func currentLSN(t testing.TB, url string) pglogrepl.LSN {
	t.Helper()
	lsn, err := pglogrepl.ParseLSN(queryOne(t, url, "SELECT pg_current_wal_lsn()::text"))
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func slotConfirmed(t testing.TB, url, slot string) pglogrepl.LSN {
	t.Helper()
	lsn, err := pglogrepl.ParseLSN(queryOne(t, url, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot))
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

const cdcSchema = `CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, name text, n numeric, ts timestamptz, tags text[]);
CREATE TABLE app.other (k text, j int, v jsonb, PRIMARY KEY (k, j));
CREATE TABLE app.ignored (id int PRIMARY KEY)`

// TestCDC: the update cursor is captured before the copy; inserts, updates
// (a key change too), deletes and large transactions arrive in order; a
// new connector resumes from any batch cursor with exactly the rest; the
// slot's confirmed_flush_lsn follows acknowledgments and never passes
// them; idle streams send heartbeats that let the slot advance.
func TestCDC(t *testing.T) {
	url := newDB(t)
	exec(t, url, strings.Split(cdcSchema, ";\n")...)
	exec(t, url, "INSERT INTO app.items SELECT i, 'item ' || i FROM generate_series(1, 5) i")
	c := configured(t, url)
	nss := []string{"app.items", "app.other"}
	p := plan(t, c, sdk.PlanRequest{Namespaces: nss, InitialSync: true, Updates: true})
	if len(p.UpdatesPartitions) != 1 {
		t.Fatalf("%d update partitions, want 1", len(p.UpdatesPartitions))
	}
	start := p.UpdatesPartitions[0].Cursor
	rep, err := ReplicationOf(start)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.SlotOwned || !rep.PublicationOwned || !strings.HasPrefix(rep.Slot, "dsync_") {
		t.Errorf("replication %+v: want slot and publication derived and owned", rep)
	}
	startLSN, _ := pglogrepl.ParseLSN(rep.LSN)

	// A write after the plan but before the copy: the copy sees it, and so
	// does the stream from the plan's cursor.
	exec(t, url, "INSERT INTO app.items VALUES (100, 'during copy')")
	afterWrite := currentLSN(t, url)
	if startLSN >= afterWrite {
		t.Fatalf("the plan's cursor %s is not before a write made after the plan (%s)", startLSN, afterWrite)
	}
	copied := readAll(t, c, p)
	if n := len(copied["app.items"]); n != 6 {
		t.Errorf("the copy read %d items, want 6", n)
	}

	exec(t, url,
		"UPDATE app.items SET name = 'renamed', n = 1.5 WHERE id = 1",
		"DELETE FROM app.items WHERE id = 2",
		"INSERT INTO app.other VALUES ('a', 1, '{\"x\": 1}')",
		"INSERT INTO app.ignored VALUES (1)",
		"UPDATE app.items SET id = 50 WHERE id = 3",
		// One transaction across both tables.
		"DO $$ BEGIN INSERT INTO app.items VALUES (200, 'tx'); UPDATE app.other SET v = '[1]' WHERE k = 'a'; DELETE FROM app.items WHERE id = 200; END $$",
		// A large transaction: several batches with cursors inside it.
		"INSERT INTO app.items SELECT i, 'bulk', i / 7.0, now() FROM generate_series(1000, 3499) i",
		"UPDATE app.items SET ts = '2024-01-01 00:00:00.123456+00' WHERE id = 4",
	)
	expect := []string{
		"app.items insert 100", "app.items update 1", "app.items delete 2",
		`app.other insert {"k":"a","j":1}`,
		"app.items delete 3", "app.items insert 50",
		"app.items insert 200", `app.other update {"k":"a","j":1}`, "app.items delete 200",
	}
	for i := range 2500 {
		expect = append(expect, fmt.Sprintf("app.items insert %d", 1000+i))
	}
	expect = append(expect, "app.items update 4")
	s := startStream(t, c, nss, start)
	evs := s.wait(len(expect))
	got := summary(evs)
	for i := range expect {
		if i >= len(got) || got[i] != expect[i] {
			t.Fatalf("update %d is %q, want %q\ngot: %v", i, at(got, i), expect[i], head(got, 12))
		}
	}
	if len(got) != len(expect) {
		t.Fatalf("%d updates, want %d: extra %v", len(got), len(expect), got[len(expect):])
	}
	// Documents carry the row and the exact text of inexact values.
	last := evs[len(evs)-1].u.Doc
	if meta := last.Lookup(MetaField, "ts").StringValue(); meta != "2024-01-01 00:00:00.123456+00" {
		t.Errorf("update of 4: %s.ts = %q; doc %s", MetaField, meta, last)
	}
	if v := evs[1].u.Doc.Lookup("name").StringValue(); v != "renamed" {
		t.Errorf("update of 1: name %q; doc %s", v, evs[1].u.Doc)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("stream: %v", err)
	}

	// Resume from batch cursors with a new connector: exactly the rest
	// follows.
	var cuts []int
	for i, e := range evs {
		if e.cursor != nil {
			cuts = append(cuts, i+1)
		}
	}
	if len(cuts) < 5 {
		t.Fatalf("only %d batches", len(cuts))
	}
	midTx := 0
	for _, k := range cuts {
		cur, _ := decodeUpdCursor(evs[k-1].cursor)
		if cur.N > 0 {
			midTx++
		}
	}
	if midTx == 0 {
		t.Errorf("no batch ended inside the large transaction; want cursors inside transactions")
	}
	for _, k := range []int{cuts[0], cuts[2], cuts[len(cuts)/2], cuts[len(cuts)-2]} {
		c2 := configured(t, url)
		s2 := startStream(t, c2, nss, evs[k-1].cursor)
		rest := summary(s2.wait(len(evs) - k))
		if err := s2.stop(); err != nil {
			t.Fatalf("resumed stream: %v", err)
		}
		for i := range rest {
			if k+i >= len(got) || rest[i] != got[k+i] {
				t.Fatalf("resumed after update %d: update %d is %q, want %q", k, i, rest[i], at(got, k+i))
			}
		}
		if len(rest) != len(got)-k {
			t.Fatalf("resumed after update %d: %d updates, want %d", k, len(rest), len(got)-k)
		}
		c2.Close()
	}

	// Acknowledgments move the slot to exactly the acknowledged position;
	// a watcher checks all along that it never passes the last one.
	watch := watchSlot(t, url, rep.Slot, slotConfirmed(t, url, rep.Slot))
	defer watch.stop()
	ack := func(cursor []byte) pglogrepl.LSN {
		t.Helper()
		cur, _ := decodeUpdCursor(cursor)
		watch.allow(cur.flushLSN())
		if err := c.AckUpdates(context.Background(), cursor); err != nil {
			t.Fatal(err)
		}
		return cur.flushLSN()
	}
	s = startStream(t, c, nss, evs[cuts[0]-1].cursor)
	s.wait(len(evs) - cuts[0])
	for _, k := range []int{cuts[1], cuts[len(cuts)/2], cuts[len(cuts)-1]} {
		waitConfirmed(t, url, rep.Slot, ack(evs[k-1].cursor))
	}
	// An idle stream sends heartbeats; acknowledging one lets the slot
	// advance past changes of tables it does not stream, never further.
	exec(t, url, "INSERT INTO app.ignored SELECT generate_series(2, 100)")
	before := currentLSN(t, url)
	hb := s.heartbeatAfter(s.heartbeatCount())
	for {
		hc, _ := decodeUpdCursor(hb)
		if hc.lsn >= before {
			break
		}
		hb = s.heartbeatAfter(s.heartbeatCount())
	}
	waitConfirmed(t, url, rep.Slot, ack(hb))
	if err := s.stop(); err != nil {
		t.Fatalf("stream: %v", err)
	}

	// Without a live stream, AckUpdates advances the slot by SQL.
	exec(t, url, "INSERT INTO app.items VALUES (9999)")
	s3 := startStream(t, c, nss, hb)
	e3 := s3.wait(1)
	if err := s3.stop(); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, url, rep.Slot, ack(e3[0].cursor))
	if n := watch.stop(); n < 20 {
		t.Errorf("the slot watcher took %d samples; want more", n)
	}
}

// slotWatcher polls a slot's confirmed_flush_lsn and fails the test when
// it passes the allowed position.
type slotWatcher struct {
	mu      sync.Mutex
	allowed pglogrepl.LSN
	samples int
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchSlot(t *testing.T, url, slot string, initial pglogrepl.LSN) *slotWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &slotWatcher{allowed: initial, cancel: cancel, done: make(chan struct{})}
	conn, err := pgxConnect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			var s string
			if err := conn.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&s); err != nil {
				if ctx.Err() == nil {
					t.Errorf("watch slot: %v", err)
				}
				return
			}
			// Read the bound after the position: an acknowledgment
			// raises it before it is sent, so any position the server
			// shows was allowed by then.
			w.mu.Lock()
			allowed := w.allowed
			w.mu.Unlock()
			lsn, _ := pglogrepl.ParseLSN(s)
			if lsn > allowed {
				t.Errorf("slot %s is confirmed to %s, past the last acknowledged position %s", slot, lsn, allowed)
			}
			w.mu.Lock()
			w.samples++
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

func (w *slotWatcher) allow(lsn pglogrepl.LSN) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.allowed = max(w.allowed, lsn)
}

func (w *slotWatcher) stop() int {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples
}

// waitConfirmed waits until the slot's confirmed_flush_lsn is want, and
// fails if it is ever beyond it.
func waitConfirmed(t testing.TB, url, slot string, want pglogrepl.LSN) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := slotConfirmed(t, url, slot)
		if got > want {
			t.Fatalf("slot %s is confirmed to %s, past the acknowledged %s", slot, got, want)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s is confirmed to %s 10 s after the acknowledgment of %s", slot, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func at(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return "(none)"
}

func head(ss []string, n int) []string { return ss[:min(n, len(ss))] }
