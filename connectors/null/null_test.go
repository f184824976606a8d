package null

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

func configured(t testing.TB, url string) *Connector {
	t.Helper()
	c := New()
	if err := c.Configure(context.Background(), sdk.Config{URL: url}); err != nil {
		t.Fatalf("Configure(%s): %v", url, err)
	}
	return c
}

func docs(n int) []bson.Raw {
	out := make([]bson.Raw, n)
	for k := range out {
		b, err := bson.Marshal(bson.D{{Key: "_id", Value: int64(k)}})
		if err != nil {
			panic(err)
		}
		out[k] = b
	}
	return out
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want Options
	}{
		{"null://", Options{}},
		{"null:", Options{}},
		{"null://?delay=10ms", Options{Delay: 10 * time.Millisecond}},
		{"null://?delay=0s&fail=fatal", Options{Fail: "fatal"}},
		{"null://?fail=fatal@100", Options{Fail: "fatal@100"}},
		{"null://?fail=", Options{}},
		{"null://?fail=retryable:3", Options{Fail: "retryable:3"}},
		{"null://?fail=retryable-every:10,fatal@0", Options{Fail: "retryable-every:10,fatal@0"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseURLInvalid(t *testing.T) {
	tests := []struct{ url, mentions string }{
		{"random://", "null://"},
		{"null://host", "host"},
		{"null://?x=1", `unknown option "x"`},
		{"null://?delay=10", "delay=10ms"},
		{"null://?delay=-1s", "out of range"},
		{"null://?delay=2h", "out of range"},
		{"null://?delay=1ms&delay=2ms", "once"},
		{"null://?fail=boom", `unknown kind "boom"`},
		{"null://?fail=fatal:0", "integer >= 1"},
		{"null://?fail=retryable:x", "not a count"},
		{"null://?fail=retryable-every:0", "not a count"},
		{"null://?fail=fatal@-1", "not a count"},
		{"null://?fail=fatal,,retryable", "unknown kind"},
		{"null://?fail=Fatal", "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := ParseURL(tt.url)
			if sdk.KindOf(err) != sdk.KindInvalidArgument {
				t.Fatalf("got %v, want invalid argument", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.mentions) || strings.Contains(msg, "\n") {
				t.Errorf("message %q does not mention %q on one line", msg, tt.mentions)
			}
		})
	}
}

// call is one write in a failure-injection scenario.
type call struct {
	updates bool
	n       int
	want    sdk.ErrorKind // KindCanceled stands for success
}

const ok = sdk.KindCanceled

func TestFailureInjection(t *testing.T) {
	r, f := sdk.KindRetryable, sdk.KindFatal
	tests := []struct {
		fail  string
		calls []call
	}{
		{"", []call{{false, 5, ok}, {true, 5, ok}}},
		{"fatal", []call{{false, 1, f}, {true, 1, f}, {false, 0, f}}},
		{"retryable", []call{{false, 1, r}, {true, 1, r}}},
		{"retryable:3", []call{{false, 1, r}, {true, 1, r}, {false, 1, r}, {false, 2, ok}, {true, 2, ok}}},
		{"fatal:1", []call{{false, 1, f}, {false, 1, ok}}},
		{"fatal@5", []call{{false, 3, ok}, {true, 1, ok}, {false, 2, ok}, {false, 1, f}, {true, 1, f}}},
		{"fatal@0", []call{{false, 1, f}}},
		{"retryable-every:3", []call{{false, 1, ok}, {false, 1, ok}, {true, 1, r}, {false, 1, ok}, {false, 1, ok}, {false, 1, r}, {false, 1, ok}}},
		// The first matching rule wins; failed calls count as calls.
		{"retryable-every:2,fatal@3", []call{{false, 2, ok}, {false, 1, r}, {false, 1, ok}, {false, 1, r}, {false, 1, f}}},
		{"retryable:1,fatal", []call{{false, 1, r}, {false, 1, f}}},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			c := configured(t, "null://?fail="+tt.fail)
			var want Counts
			for k, cl := range tt.calls {
				var err error
				if cl.updates {
					ups := make([]sdk.Update, cl.n)
					for j := range ups {
						ups[j] = sdk.Update{ID: bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}}, Type: sdk.UpdateDelete}
					}
					err = c.WriteUpdates(t.Context(), "db.c", ups)
				} else {
					d := docs(cl.n)
					err = c.WriteData(t.Context(), "db.c", d)
					if err == nil {
						for _, x := range d {
							want.Bytes += uint64(len(x))
						}
					}
				}
				want.Calls++
				if cl.want == ok {
					if err != nil {
						t.Fatalf("call %d: %v, want success", k+1, err)
					}
					if cl.updates {
						want.Updates += uint64(cl.n)
					} else {
						want.Docs += uint64(cl.n)
					}
					continue
				}
				want.Failures++
				if !errors.Is(err, ErrInjected) || sdk.KindOf(err) != cl.want {
					t.Fatalf("call %d: %v (kind %v), want an injected %v error", k+1, err, sdk.KindOf(err), cl.want)
				}
			}
			if got := c.Counts(); got != want {
				t.Errorf("counts %+v, want %+v", got, want)
			}
		})
	}
}

func TestDelayHonoursContext(t *testing.T) {
	c := configured(t, "null://?delay=1h")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.WriteData(ctx, "db.c", docs(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if got := c.Counts(); got != (Counts{}) {
		t.Errorf("cancelled write counted: %+v", got)
	}

	c = configured(t, "null://?delay=20ms")
	start = time.Now()
	if err := c.WriteUpdates(t.Context(), "db.c", []sdk.Update{{ID: bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}}, Type: sdk.UpdateDelete}}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("delay=20ms write took %v", d)
	}

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if err := configured(t, "null://").WriteData(ctx, "db.c", docs(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestMalformedInput(t *testing.T) {
	c := configured(t, "null://")
	id := bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}}
	good := docs(1)[0]
	tests := []struct {
		name string
		run  func() error
	}{
		{"short document", func() error { return c.WriteData(t.Context(), "db.c", []bson.Raw{{1, 2}}) }},
		{"wrong length", func() error { return c.WriteData(t.Context(), "db.c", []bson.Raw{good[:len(good)-1]}) }},
		{"nil document", func() error { return c.WriteData(t.Context(), "db.c", []bson.Raw{nil}) }},
		{"no namespace", func() error { return c.WriteData(t.Context(), "", docs(1)) }},
		{"update without id", func() error {
			return c.WriteUpdates(t.Context(), "db.c", []sdk.Update{{Type: sdk.UpdateDelete}})
		}},
		{"insert without doc", func() error {
			return c.WriteUpdates(t.Context(), "db.c", []sdk.Update{{ID: id, Type: sdk.UpdateInsert}})
		}},
		{"unknown type", func() error {
			return c.WriteUpdates(t.Context(), "db.c", []sdk.Update{{ID: id, Type: 7, Doc: good}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); sdk.KindOf(err) != sdk.KindFatal || errors.Is(err, ErrInjected) {
				t.Errorf("got %v, want a fatal error", err)
			}
		})
	}
	if got := c.Counts(); got != (Counts{}) {
		t.Errorf("malformed writes counted: %+v", got)
	}
	if err := c.WriteUpdates(t.Context(), "db.c", []sdk.Update{{ID: id, Type: sdk.UpdatePartial, Unset: []string{"a"}}}); err != nil {
		t.Errorf("partial update with only unset: %v", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	c := configured(t, "null://?fail=retryable-every:7")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_ = c.WriteData(context.Background(), "db.c", docs(3))
			}
		})
	}
	wg.Wait()
	got := c.Counts()
	if got.Calls != 800 || got.Failures != 800/7 || got.Docs != 3*(800-800/7) {
		t.Errorf("counts %+v", got)
	}
}

func TestInfoAndNotConfigured(t *testing.T) {
	c := New()
	if _, err := c.Info(t.Context()); sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("Info before Configure: %v", err)
	}
	if err := c.WriteData(t.Context(), "db.c", docs(1)); sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("WriteData before Configure: %v", err)
	}
	if err := c.Configure(t.Context(), sdk.Config{URL: "null://", Settings: map[string]string{"delay": "1ms"}}); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.Options(); o.Delay != time.Millisecond {
		t.Errorf("settings not applied: %+v", o)
	}
	info, err := c.Info(t.Context())
	if err != nil || info.ID != "null" || info.DBType != "null" || info.Sink == nil || info.Source != nil {
		t.Errorf("info %+v, %v", info, err)
	}
}

func BenchmarkWriteData(b *testing.B) {
	c := configured(b, "null://")
	batch := docs(1000)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteData(context.Background(), "db.c", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "docs/s")
}
