package coordinator

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/internal/spi"
)

// stateSink applies writes to a random.State with MongoDB semantics.
type stateSink struct {
	mu    sync.Mutex
	state random.State
}

func (s *stateSink) Configure(context.Context, spi.Config) error { return nil }

func (s *stateSink) Info(context.Context) (spi.Info, error) {
	return spi.Info{ID: "state-sink", Sink: &spi.SinkCapabilities{DataTypes: []spi.DataType{spi.DataTypeBSON}}}, nil
}

func (s *stateSink) WriteData(_ context.Context, ns string, docs []bson.Raw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		if err := s.state.Apply(ns, spi.Update{ID: idOf(d), Type: spi.UpdateReplace, Doc: d}); err != nil {
			return spi.Fatal(err)
		}
	}
	return nil
}

func (s *stateSink) WriteUpdates(_ context.Context, ns string, ups []spi.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range ups {
		if err := s.state.Apply(ns, u); err != nil {
			return spi.Fatal(err)
		}
	}
	return nil
}

// stoppingSource cancels a context after a number of ListData calls.
type stoppingSource struct {
	*random.Connector
	calls   atomic.Int64
	stopAt  int64
	stopped context.CancelFunc
}

func (s *stoppingSource) ListData(ctx context.Context, p spi.Partition, cursor []byte) (spi.Page, error) {
	if n := s.calls.Add(1); n == s.stopAt && s.stopped != nil {
		s.stopped()
	}
	return s.Connector.ListData(ctx, p, cursor)
}

// The random source end to end: a copy stopped halfway, resumed, followed by
// CDC until a cut-over; the sink then holds the initial data with exactly
// the events before the final cursor applied.
func TestRandomSourceEndToEnd(t *testing.T) {
	conn := random.New()
	url := "random://?namespaces=3&docs=3000&size=300&partitions=4&updates=20000&page=100"
	if err := conn.Configure(t.Context(), spi.Config{URL: url}); err != nil {
		t.Fatal(err)
	}
	opts, _ := conn.Options()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src := &stoppingSource{Connector: conn, stopAt: 25, stopped: cancel}
	sink := &stateSink{state: make(random.State)}
	store := openStore(t)
	cfg := Config{
		Source:     src,
		Sink:       sink,
		Store:      store,
		Parallel:   4,
		Writers:    6,
		BatchBytes: 8 << 10,
		UntilLag:   2 * time.Second,
		Settle:     200 * time.Millisecond,
		Logger:     testLogger(),
	}
	res, err := runFlow(t, ctx, cfg)
	if err != nil || !res.Stopped || res.Phase != PhaseCopy {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	src.stopped = nil
	res, err = runFlow(t, t.Context(), cfg)
	if err != nil || !res.Cutover || !res.Resumed || res.Phase != PhaseCDC {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	if len(res.Cursors) != 1 {
		t.Fatalf("cursors %+v", res.Cursors)
	}
	applied := int64(res.Cursors[0].Events)
	want := opts.InitialState()
	for e := range opts.Events(0) {
		if e.Seq >= applied {
			break
		}
		if err := want.Apply(e.Namespace, e.Update); err != nil {
			t.Fatal(err)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	diffs := 0
	for ns, docs := range want {
		if len(sink.state[ns]) != len(docs) {
			t.Errorf("%s: %d documents, want %d", ns, len(sink.state[ns]), len(docs))
		}
		for id, d := range docs {
			if !bytes.Equal(sink.state[ns][id], d) {
				if diffs++; diffs <= 3 {
					t.Errorf("%s _id %d differs", ns, id)
				}
			}
		}
	}
	t.Logf("cut over after %d of %d events", applied, opts.Updates)
}
