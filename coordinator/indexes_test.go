package coordinator

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
)

// indexSource lists one index per namespace.
type indexSource struct {
	*fakeSource
	fail error
}

func (s *indexSource) ListIndexes(_ context.Context, ns string) ([]bson.Raw, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	spec, _ := bson.Marshal(bson.D{{Key: "key", Value: bson.D{{Key: "v", Value: int32(1)}}}, {Key: "name", Value: "v_1_" + ns}})
	return []bson.Raw{spec}, nil
}

// indexSink records created indexes, and the order of index creation
// relative to writes.
type indexSink struct {
	*fakeSink
	noIndexes bool
	mu        sync.Mutex
	created   map[string][]string
	order     []string
}

func (s *indexSink) Info(ctx context.Context) (spi.Info, error) {
	info, err := s.fakeSink.Info(ctx)
	info.Sink.Indexes = !s.noIndexes
	return info, err
}

func (s *indexSink) CreateIndexes(_ context.Context, ns string, specs []bson.Raw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spec := range specs {
		s.created[ns] = append(s.created[ns], spec.Lookup("name").StringValue())
	}
	s.order = append(s.order, "indexes")
	return nil
}

func (s *indexSink) WriteUpdates(ctx context.Context, ns string, ups []spi.Update) error {
	s.mu.Lock()
	s.order = append(s.order, "updates")
	s.mu.Unlock()
	return s.fakeSink.WriteUpdates(ctx, ns, ups)
}

func TestIndexesCopiedBetweenCopyAndCDC(t *testing.T) {
	cases := []struct {
		name      string
		noIndexes bool // sink cannot create indexes
		optOut    bool // Config.NoIndexes
		want      int  // namespaces with indexes created
	}{
		{"copied", false, false, 2},
		{"sink cannot", true, false, 0},
		{"opted out", false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := newFakeSource(makeParts([]string{"db.a", "db.b"}, 2, 100, 1, 50),
				[]fakeStream{{namespaces: []string{"db.a", "db.b"}, events: genEvents(rand.New(rand.NewPCG(1, 2)), []string{"db.a", "db.b"}, 50, 100, 200, 0)}})
			fs.caps.Indexes = true
			src := &indexSource{fakeSource: fs}
			sink := &indexSink{fakeSink: newFakeSink(), noIndexes: c.noIndexes, created: map[string][]string{}}
			cfg := testConfig(fs, sink.fakeSink, openStore(t), ModeFull)
			cfg.Source, cfg.Sink = src, sink
			cfg.NoIndexes = c.optOut
			cfg.UntilLag = 1e9
			cfg.Settle = 1
			if _, err := Run(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if len(sink.created) != c.want {
				t.Fatalf("indexes created on %v, want %d namespaces", sink.created, c.want)
			}
			if c.want > 0 {
				if got := sink.created["db.a"]; len(got) != 1 || got[0] != "v_1_db.a" {
					t.Errorf("db.a indexes %v", got)
				}
				if sink.order[0] != "indexes" {
					t.Errorf("a change was applied before the indexes were built: %v", sink.order[:3])
				}
			}
		})
	}
}

func TestIndexListingErrorFailsTheRun(t *testing.T) {
	fs := newFakeSource(makeParts([]string{"db.a"}, 1, 10, 1, 10), nil)
	fs.caps.Indexes = true
	src := &indexSource{fakeSource: fs, fail: spi.Fatal(errors.New("not authorized to list indexes"))}
	sink := &indexSink{fakeSink: newFakeSink(), created: map[string][]string{}}
	cfg := testConfig(fs, sink.fakeSink, openStore(t), ModeInitial)
	cfg.Source, cfg.Sink = src, sink
	_, err := Run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `list indexes of source namespace "db.a"`) || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("err = %v", err)
	}
}
