package random

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// streamAll streams from cursor until the end-of-stream heartbeat and
// returns the batches with updates.
func streamAll(t testing.TB, c *Connector, req sdk.StreamRequest) []sdk.UpdateBatch {
	t.Helper()
	o, _ := c.Options()
	end := encodePos(prefixUpdates, o.Updates)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var batches []sdk.UpdateBatch
	err := c.StreamUpdates(ctx, req, func(b sdk.UpdateBatch) error {
		if len(b.Updates) == 0 {
			if b.Namespace != "" {
				t.Errorf("heartbeat with namespace %q", b.Namespace)
			}
			if bytes.Equal(b.NextCursor, end) {
				cancel()
			}
			return nil
		}
		batches = append(batches, b)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("StreamUpdates returned %v, want context.Canceled", err)
	}
	return batches
}

func flatten(t testing.TB, batches []sdk.UpdateBatch) []Event {
	t.Helper()
	var out []Event
	for _, b := range batches {
		for _, u := range b.Updates {
			out = append(out, Event{Namespace: b.Namespace, Update: u})
		}
	}
	return out
}

func sameUpdate(a, b sdk.Update) bool {
	return a.Type == b.Type && a.ID.Type == b.ID.Type && bytes.Equal(a.ID.Value, b.ID.Value) &&
		bytes.Equal(a.Doc, b.Doc) && reflect.DeepEqual(a.Unset, b.Unset)
}

func TestStreamUpdates(t *testing.T) {
	tests := []string{
		"random://?docs=50&updates=1000&size=200",
		"random://?namespaces=3&docs=20&updates=2000&size=0&seed=11",
		"random://?namespaces=2&docs=0&updates=300",   // starts empty: inserts first
		"random://?updates=0",                         // heartbeats only
		"random://?docs=3&updates=60&size=1500000",    // batches bounded by bytes
		"random://?namespaces=5&docs=10&updates=3333", // many namespace runs
	}
	for _, url := range tests {
		t.Run(url, func(t *testing.T) {
			c := configured(t, url)
			o, _ := c.Options()
			plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{Updates: true})
			if err != nil {
				t.Fatal(err)
			}
			up := plan.UpdatesPartitions[0]
			batches := streamAll(t, c, sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor})

			// Batches: one namespace, consecutive, cursor after the last event.
			var want []Event
			for e := range o.Events(0) {
				want = append(want, e)
			}
			pos := 0
			var lastTime time.Time
			for _, b := range batches {
				if len(b.Updates) > maxBatchEvents {
					t.Errorf("batch of %d updates", len(b.Updates))
				}
				size := 0
				for _, u := range b.Updates[:len(b.Updates)-1] {
					size += len(u.Doc)
				}
				if size > pageBytes {
					t.Errorf("batch of %d updates holds more than %d bytes before its last", len(b.Updates), size)
				}
				for _, u := range b.Updates {
					if pos >= len(want) {
						t.Fatalf("more than %d events", len(want))
					}
					if want[pos].Namespace != b.Namespace || !sameUpdate(u, want[pos].Update) {
						t.Fatalf("event %d: got %s %s %v, want %s %s %v", pos, b.Namespace, u.Type, u.ID, want[pos].Namespace, want[pos].Update.Type, want[pos].Update.ID)
					}
					pos++
				}
				if got, want := string(b.NextCursor), string(encodePos(prefixUpdates, int64(pos))); got != want {
					t.Errorf("batch ending at %d has cursor %s, want %s", pos, got, want)
				}
				if b.SourceTime.Before(lastTime) {
					t.Errorf("source time goes back")
				}
				lastTime = b.SourceTime
			}
			if pos != len(want) || int64(pos) != o.Updates {
				t.Errorf("streamed %d events, want %d", pos, o.Updates)
			}
		})
	}
}

func TestStreamUpdatesResume(t *testing.T) {
	const url = "random://?namespaces=2&docs=30&updates=1500&size=300&seed=4"
	a := configured(t, url)
	all := streamAll(t, a, sdk.StreamRequest{})
	events := flatten(t, all)
	pos := 0
	for k, b := range all {
		pos += len(b.Updates)
		if k%3 != 0 {
			continue
		}
		// A new instance, as after a restart.
		rest := flatten(t, streamAll(t, configured(t, url), sdk.StreamRequest{Cursor: bytes.Clone(b.NextCursor)}))
		if len(rest) != len(events)-pos {
			t.Fatalf("resume at %s: %d events, want %d", b.NextCursor, len(rest), len(events)-pos)
		}
		for j := range rest {
			if rest[j].Namespace != events[pos+j].Namespace || !sameUpdate(rest[j].Update, events[pos+j].Update) {
				t.Fatalf("resume at %s: event %d differs", b.NextCursor, j)
			}
		}
	}
}

func TestStreamUpdatesFiltered(t *testing.T) {
	c := configured(t, "random://?namespaces=4&docs=10&updates=2000&size=0")
	o, _ := c.Options()
	req := sdk.StreamRequest{Namespaces: []string{"random.ns1", "random.ns3"}}
	got := flatten(t, streamAll(t, c, req))
	var want []Event
	for e := range o.Events(0) {
		if e.Namespace == "random.ns1" || e.Namespace == "random.ns3" {
			want = append(want, e)
		}
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for k := range want {
		if got[k].Namespace != want[k].Namespace || !sameUpdate(got[k].Update, want[k].Update) {
			t.Fatalf("event %d differs", k)
		}
	}
	err := c.StreamUpdates(t.Context(), sdk.StreamRequest{Namespaces: []string{"random.ns4"}}, func(sdk.UpdateBatch) error { return nil })
	if sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("unknown namespace: %v", err)
	}
}

func TestStreamUpdatesBadCursor(t *testing.T) {
	c := configured(t, "random://?updates=10")
	for _, cur := range []string{"u1:11", "u1:-1", "d1:0", "junk"} {
		err := c.StreamUpdates(t.Context(), sdk.StreamRequest{Cursor: []byte(cur)}, func(sdk.UpdateBatch) error { return nil })
		if sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("cursor %q: %v, want invalid argument", cur, err)
		}
		if err := c.AckUpdates(t.Context(), []byte(cur)); sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("AckUpdates(%q): %v, want invalid argument", cur, err)
		}
	}
	if err := c.AckUpdates(t.Context(), []byte("u1:10")); err != nil {
		t.Errorf("AckUpdates: %v", err)
	}
}

func TestStreamUpdatesSendError(t *testing.T) {
	c := configured(t, "random://?updates=10")
	boom := errors.New("boom")
	if err := c.StreamUpdates(t.Context(), sdk.StreamRequest{}, func(sdk.UpdateBatch) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("got %v, want the send error", err)
	}
}

// TestExpectedState applies the streamed events to the copied documents and
// compares with ExpectedState.
func TestExpectedState(t *testing.T) {
	for _, url := range []string{
		"random://?namespaces=3&docs=40&updates=3000&size=200&seed=2",
		"random://?docs=0&updates=500",
		"random://?docs=1&updates=500",
	} {
		t.Run(url, func(t *testing.T) {
			c := configured(t, url)
			o, _ := c.Options()
			plan, err := c.GeneratePlan(t.Context(), sdk.PlanRequest{InitialSync: true, Updates: true})
			if err != nil {
				t.Fatal(err)
			}
			got := State{}
			for _, p := range plan.Partitions {
				docs, _ := readPartition(t, c, p, nil)
				for _, d := range docs {
					if got[p.Namespace] == nil {
						got[p.Namespace] = map[int64]bson.Raw{}
					}
					got[p.Namespace][d.Lookup("_id").Int64()] = d
				}
			}
			if !reflect.DeepEqual(got, o.InitialState()) && o.Docs > 0 {
				t.Fatal("copied documents differ from InitialState")
			}
			up := plan.UpdatesPartitions[0]
			for _, b := range streamAll(t, c, sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor}) {
				for _, u := range b.Updates {
					if err := got.Apply(b.Namespace, u); err != nil {
						t.Fatal(err)
					}
				}
			}
			want, err := o.ExpectedState()
			if err != nil {
				t.Fatal(err)
			}
			for ns := range want {
				if len(got[ns]) != len(want[ns]) {
					t.Errorf("%s: %d documents, want %d", ns, len(got[ns]), len(want[ns]))
				}
				for id, d := range want[ns] {
					if !bytes.Equal(got[ns][id], d) {
						t.Errorf("%s _id %d: %s, want %s", ns, id, got[ns][id], d)
					}
				}
			}
		})
	}
}

// TestEventsAreConsistent checks that inserts target missing ids and every
// other event an existing one, and that the mix has every type.
func TestEventsAreConsistent(t *testing.T) {
	o, err := ParseURL("random://?namespaces=2&docs=100&updates=20000&size=0")
	if err != nil {
		t.Fatal(err)
	}
	exists := o.InitialState()
	counts := map[sdk.UpdateType]int{}
	reinserts := 0
	for e := range o.Events(0) {
		id, _ := idOf(e.Update.ID)
		_, ok := exists[e.Namespace][id]
		counts[e.Update.Type]++
		switch e.Update.Type {
		case sdk.UpdateInsert:
			if ok {
				t.Fatalf("event %d inserts existing _id %d", e.Seq, id)
			}
			if id < o.Docs {
				reinserts++
			}
		default:
			if !ok {
				t.Fatalf("event %d: %s of missing _id %d", e.Seq, e.Update.Type, id)
			}
		}
		if err := exists.Apply(e.Namespace, e.Update); err != nil {
			t.Fatal(err)
		}
		if d := exists[e.Namespace][id]; d != nil {
			if err := d.Validate(); err != nil {
				t.Fatalf("event %d: %v", e.Seq, err)
			}
		}
	}
	for _, typ := range []sdk.UpdateType{sdk.UpdateInsert, sdk.UpdateReplace, sdk.UpdatePartial, sdk.UpdateDelete} {
		if counts[typ] < 1000 {
			t.Errorf("%d %s events of 20000", counts[typ], typ)
		}
	}
	if reinserts == 0 {
		t.Error("no deleted id is inserted again")
	}
}

func TestApplyPartial(t *testing.T) {
	doc := func(d bson.D) bson.Raw {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}}, {Key: "z", Value: "s"}}
	tests := []struct {
		name    string
		set     bson.D
		unset   []string
		want    bson.D
		wantErr bool
	}{
		{"set existing keeps place", bson.D{{Key: "a", Value: "new"}}, nil,
			bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: "new"}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}}, {Key: "z", Value: "s"}}, false},
		{"set new goes last", bson.D{{Key: "b", Value: true}}, nil,
			bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}}, {Key: "z", Value: "s"}, {Key: "b", Value: true}}, false},
		{"dotted existing", bson.D{{Key: "sub.x", Value: 9}}, nil,
			bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}, {Key: "sub", Value: bson.D{{Key: "x", Value: 9}, {Key: "y", Value: 2}}}, {Key: "z", Value: "s"}}, false},
		{"dotted creates", bson.D{{Key: "m.n.o", Value: 3}}, nil,
			bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}}, {Key: "z", Value: "s"}, {Key: "m", Value: bson.D{{Key: "n", Value: bson.D{{Key: "o", Value: 3}}}}}}, false},
		{"unset top and dotted and missing", nil, []string{"a", "sub.y", "nope", "sub.nope", "z.q"},
			bson.D{{Key: "_id", Value: 1}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "z", Value: "s"}}, false},
		{"set through a scalar", bson.D{{Key: "a.b", Value: 1}}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set bson.Raw
			if tt.set != nil {
				set = doc(tt.set)
			}
			got, err := ApplyPartial(doc(base), set, tt.unset)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := doc(tt.want); !bytes.Equal(got, want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestStateApplyErrors(t *testing.T) {
	s := State{}
	tests := []sdk.Update{
		{ID: int64Value(1), Type: sdk.UpdatePartial, Doc: bson.Raw{5, 0, 0, 0, 0}},
		{ID: int64Value(1), Type: sdk.UpdateInsert},
		{ID: bson.RawValue{Type: bson.TypeString, Value: []byte{2, 0, 0, 0, 'x', 0}}, Type: sdk.UpdateDelete},
		{ID: int64Value(1), Type: 99},
	}
	for _, u := range tests {
		if err := s.Apply("x", u); err == nil {
			t.Errorf("%s of %v: no error", u.Type, u.ID)
		}
	}
	if err := s.Apply("x", sdk.Update{ID: int64Value(1), Type: sdk.UpdateDelete}); err != nil {
		t.Errorf("delete of a missing id: %v", err)
	}
}

func TestStreamUpdatesRate(t *testing.T) {
	c := configured(t, "random://?docs=10&updates=20&rate=200")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var n int
	var prev time.Time
	err := c.StreamUpdates(ctx, sdk.StreamRequest{}, func(b sdk.UpdateBatch) error {
		n += len(b.Updates)
		if len(b.Updates) > 0 {
			if b.SourceTime.Before(prev) || b.SourceTime.After(time.Now()) {
				t.Errorf("source time %v after %v or in the future", b.SourceTime, prev)
			}
			prev = b.SourceTime
		}
		if n == 20 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("StreamUpdates: %v", err)
	}
	// 20 events at 200/s take 100 ms from Configure.
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("20 events at 200/s in %v", d)
	}
}

func TestStreamLSN(t *testing.T) {
	tests := []struct {
		url    string
		req    sdk.StreamRequest
		want   func(o Options) uint64
		waitMs int
	}{
		{"random://?updates=100", sdk.StreamRequest{}, func(Options) uint64 { return 100 }, 0},
		{"random://?updates=100", sdk.StreamRequest{Cursor: []byte("u1:30")}, func(Options) uint64 { return 70 }, 0},
		{"random://?updates=100", sdk.StreamRequest{Cursor: []byte("u1:100")}, func(Options) uint64 { return 0 }, 0},
		{"random://?namespaces=3&updates=1000", sdk.StreamRequest{Namespaces: []string{"random.ns1"}, Cursor: []byte("u1:10")}, func(o Options) uint64 {
			var n uint64
			for e := range o.Events(10) {
				if e.Namespace == "random.ns1" {
					n++
				}
			}
			return n
		}, 0},
		// With a rate, nothing is produced right after Configure.
		{"random://?updates=100&rate=0.001", sdk.StreamRequest{}, func(Options) uint64 { return 0 }, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.url, " ", string(tt.req.Cursor)), func(t *testing.T) {
			c := configured(t, tt.url)
			o, _ := c.Options()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var got []uint64
			err := c.StreamLSN(ctx, tt.req, func(n uint64) error {
				got = append(got, n)
				cancel()
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("StreamLSN: %v", err)
			}
			if want := tt.want(o); len(got) != 1 || got[0] != want {
				t.Errorf("got %v, want [%d]", got, want)
			}
		})
	}
}

func TestStreamLSNRateGrows(t *testing.T) {
	c := configured(t, "random://?updates=1000000&rate=1000")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []uint64
	err := c.StreamLSN(ctx, sdk.StreamRequest{}, func(n uint64) error {
		got = append(got, n)
		if len(got) == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("StreamLSN: %v", err)
	}
	// Reports come a second apart: about 1000 more events.
	if len(got) != 2 || got[1] < got[0]+500 || got[1] > got[0]+2000 {
		t.Errorf("reports %v", got)
	}
}

// TestCancellation checks that blocked calls return promptly with ctx.Err().
func TestCancellation(t *testing.T) {
	tests := []struct {
		name string
		url  string
		run  func(ctx context.Context, c *Connector) error
	}{
		{"StreamUpdates heartbeats", "random://?updates=10", func(ctx context.Context, c *Connector) error {
			return c.StreamUpdates(ctx, sdk.StreamRequest{}, func(sdk.UpdateBatch) error { return nil })
		}},
		{"StreamUpdates waiting for a slow rate", "random://?updates=10&rate=0.01", func(ctx context.Context, c *Connector) error {
			return c.StreamUpdates(ctx, sdk.StreamRequest{}, func(sdk.UpdateBatch) error { return nil })
		}},
		{"StreamUpdates endless sends", "random://?updates=1000000000000&docs=10", func(ctx context.Context, c *Connector) error {
			return c.StreamUpdates(ctx, sdk.StreamRequest{}, func(sdk.UpdateBatch) error { return nil })
		}},
		{"StreamUpdates replaying a far cursor", "random://?updates=1000000000000&docs=10", func(ctx context.Context, c *Connector) error {
			return c.StreamUpdates(ctx, sdk.StreamRequest{Cursor: []byte("u1:900000000000")}, func(sdk.UpdateBatch) error { return nil })
		}},
		{"StreamLSN", "random://?updates=10", func(ctx context.Context, c *Connector) error {
			return c.StreamLSN(ctx, sdk.StreamRequest{}, func(uint64) error { return nil })
		}},
		{"StreamLSN counting a filtered stream", "random://?namespaces=2&updates=1000000000000", func(ctx context.Context, c *Connector) error {
			return c.StreamLSN(ctx, sdk.StreamRequest{Namespaces: []string{"random.ns0"}}, func(uint64) error { return nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configured(t, tt.url)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- tt.run(ctx, c) }()
			time.Sleep(50 * time.Millisecond)
			cancel()
			start := time.Now()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("returned %v, want context.Canceled", err)
				}
				if d := time.Since(start); d > 500*time.Millisecond {
					t.Errorf("returned %v after cancel", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("did not return after cancel")
			}
		})
	}
}
