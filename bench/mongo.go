package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
)

// mongoParallel is the parallelism of both Mongo→Mongo copies: dsync's
// --parallel (its default) and the direct copy's readers.
const mongoParallel = 4

const (
	mongoDB   = "bench"
	mongoColl = "docs"
)

// benchTB is the part of testing.TB the test servers use, for a program:
// a failure panics with benchTBFailure, which startFerret recovers.
type benchTB struct {
	dirs     []string
	cleanups []func()
}

type benchTBFailure struct{ msg string }

func (t *benchTB) Helper() {}

func (t *benchTB) TempDir() string {
	d, err := os.MkdirTemp("", "dsync-bench-ferret-")
	if err != nil {
		panic(benchTBFailure{err.Error()})
	}
	t.dirs = append(t.dirs, d)
	return d
}

func (t *benchTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) Fatalf(format string, args ...any) {
	panic(benchTBFailure{fmt.Sprintf(format, args...)})
}
func (t *benchTB) Skipf(format string, args ...any) {
	panic(benchTBFailure{fmt.Sprintf(format, args...)})
}

// close runs the cleanups, last first, and removes the directories.
func (t *benchTB) close() {
	for _, f := range slices.Backward(t.cleanups) {
		f()
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}

// startFerret starts an embedded FerretDB (SQLite storage) that tb.close
// stops.
func startFerret(tb *benchTB) (uri string, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(benchTBFailure)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	return ferret.Start(tb), nil
}

// mongoRun is one Mongo→Mongo copy.
type mongoRun struct {
	Method string // "dsync", or "direct, P cursors"
	Wall   time.Duration
	Proc   procRun // dsync only
}

// mongoFigure is figure 5.
type mongoFigure struct {
	Docs     int64
	DocBytes int      // BSON size of one document
	Args     []string // of dsync, the URLs are placeholders
	Runs     []mongoRun
}

func (r mongoRun) DocsPerSec(n int64) float64 { return float64(n) / r.Wall.Seconds() }

// medianOf returns the median docs/s of the runs of method.
func (f mongoFigure) medianOf(method string) float64 {
	var v []float64
	for _, r := range f.Runs {
		if r.Method == method {
			v = append(v, r.DocsPerSec(f.Docs))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// methods are the direct-copy variants, best effort: the figure's ratio
// uses the faster.
func directMethod(readers int) string { return "direct, " + strconv.Itoa(readers) + " cursor(s)" }

// BestDirect is the faster direct copy and its median docs/s.
func (f mongoFigure) BestDirect() (string, float64) {
	best, rate := "", 0.0
	for _, m := range []string{directMethod(mongoParallel), directMethod(1)} {
		if r := f.medianOf(m); r > rate {
			best, rate = m, r
		}
	}
	return best, rate
}

func mongoDoc(i int64) bson.D {
	return bson.D{
		{Key: "_id", Value: i},
		{Key: "name", Value: fmt.Sprintf("user-%08d", i)},
		{Key: "n", Value: int32(i % 1000)},
		{Key: "score", Value: float64(i) / 7},
		{Key: "created", Value: time.Unix(1700000000+i, 0).UTC()},
		{Key: "tags", Value: bson.A{"a", "b", strconv.FormatInt(i%10, 10)}},
		{Key: "payload", Value: strings.Repeat(string(rune('a'+i%26)), 880)},
	}
}

// measureMongo starts two FerretDB servers, seeds A, and alternates dsync
// copies with direct driver copies from A to B.
func measureMongo(ctx context.Context, cfg config, logf func(string, ...any)) (mongoFigure, error) {
	fig := mongoFigure{Docs: cfg.mongoDocs}
	raw, err := bson.Marshal(mongoDoc(0))
	if err != nil {
		return fig, err
	}
	fig.DocBytes = len(raw)
	tb := &benchTB{}
	defer tb.close()
	uriA, err := startFerret(tb)
	if err != nil {
		return fig, fmt.Errorf("start FerretDB A: %w", err)
	}
	uriB, err := startFerret(tb)
	if err != nil {
		return fig, fmt.Errorf("start FerretDB B: %w", err)
	}
	a, err := mongo.Connect(options.Client().ApplyURI(uriA))
	if err != nil {
		return fig, err
	}
	defer a.Disconnect(context.Background())
	b, err := mongo.Connect(options.Client().ApplyURI(uriB))
	if err != nil {
		return fig, err
	}
	defer b.Disconnect(context.Background())

	start := time.Now()
	src := a.Database(mongoDB).Collection(mongoColl)
	for lo := int64(0); lo < fig.Docs; lo += 1000 {
		var docs []any
		for i := lo; i < min(lo+1000, fig.Docs); i++ {
			docs = append(docs, mongoDoc(i))
		}
		if _, err := src.InsertMany(ctx, docs); err != nil {
			return fig, fmt.Errorf("seed A: %w", err)
		}
	}
	logf("  seeded A with %d docs in %.1fs", fig.Docs, time.Since(start).Seconds())

	fig.Args = []string{"sync", "mongodb://A", "mongodb://B", "--namespace", mongoDB + "." + mongoColl, "--mode", "initial",
		"--parallel", strconv.Itoa(mongoParallel), "--progress", "none", "--state-dir", stateDirArg}
	dst := b.Database(mongoDB).Collection(mongoColl)
	for i := range cfg.mongoRuns {
		for _, method := range []string{"dsync", directMethod(mongoParallel), directMethod(1)} {
			if err := b.Database(mongoDB).Drop(ctx); err != nil {
				return fig, fmt.Errorf("drop B: %w", err)
			}
			r := mongoRun{Method: method}
			switch method {
			case "dsync":
				args, cleanup, err := withStateDir(fig.Args)
				if err != nil {
					return fig, err
				}
				args[1], args[2] = uriA, uriB
				r.Proc, _, err = runProc(ctx, cfg.dsync, args, nil)
				cleanup()
				if err != nil {
					return fig, err
				}
				r.Wall = r.Proc.Wall
			default:
				readers := mongoParallel
				if method == directMethod(1) {
					readers = 1
				}
				start := time.Now()
				if err := directCopy(ctx, src, dst, fig.Docs, readers); err != nil {
					return fig, fmt.Errorf("%s: %w", method, err)
				}
				r.Wall = time.Since(start)
			}
			n, err := dst.CountDocuments(ctx, bson.D{})
			if err != nil {
				return fig, err
			}
			if n != fig.Docs {
				return fig, fmt.Errorf("%s copied %d docs, want %d", method, n, fig.Docs)
			}
			logf("  run %d %-20s %.2fs, %.0f docs/s", i+1, method, r.Wall.Seconds(), r.DocsPerSec(fig.Docs))
			fig.Runs = append(fig.Runs, r)
		}
	}
	return fig, nil
}

// directCopy copies the n documents of src (_id 0..n-1) to dst with
// readers goroutines, each reading one _id range with one cursor and
// writing unordered InsertMany batches of 1000 documents.
func directCopy(ctx context.Context, src, dst *mongo.Collection, n int64, readers int) error {
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for k := range readers {
		lo, hi := n*int64(k)/int64(readers), n*int64(k+1)/int64(readers)
		wg.Go(func() {
			filter := bson.D{}
			if readers > 1 {
				filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}}}
			}
			cur, err := src.Find(ctx, filter, options.Find().SetBatchSize(1000))
			if err != nil {
				errs[k] = err
				return
			}
			defer cur.Close(ctx)
			batch := make([]any, 0, 1000)
			flush := func() error {
				if len(batch) == 0 {
					return nil
				}
				_, err := dst.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
				batch = batch[:0]
				return err
			}
			for cur.Next(ctx) {
				batch = append(batch, bson.Raw(slices.Clone(cur.Current)))
				if len(batch) == cap(batch) {
					if errs[k] = flush(); errs[k] != nil {
						return
					}
				}
			}
			if errs[k] = cur.Err(); errs[k] == nil {
				errs[k] = flush()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f mongoFigure) write(w io.Writer, dsync string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 5. MongoDB → MongoDB copy: dsync vs a direct driver copy\n\n")
	p("Two embedded FerretDB v1.24 servers (SQLite storage, in the benchmark process, loopback TCP) stand in for MongoDB. A holds `%s.%s`: %d documents of %d bytes of BSON (int64 `_id` 0..n-1, a name, numbers, a date, an array and an %d-character string), inserted with InsertMany of 1000. Before each copy B's database is dropped; after it B's count must equal A's. The three methods take turns, %d round(s):\n\n",
		mongoDB, mongoColl, f.Docs, f.DocBytes, 880, len(f.Runs)/3)
	p("- **dsync**: `%s` (URLs of A and B: mongodb://127.0.0.1:PORT/), fresh state directory; wall time of the process, plugin start-up included. Its plugins are the mongodb source and sink.\n", cmdLine(dsync, f.Args))
	p("- **%s**: mongo-driver v2 from the benchmark process, %d goroutines, each reading one `_id` range (`{_id: {$gte: lo, $lt: hi}}`, batch size 1000) with one cursor and writing unordered InsertMany batches of 1000 to B. FerretDB does not push `_id` filters down, so each range query scans the collection.\n", directMethod(mongoParallel), mongoParallel)
	p("- **%s**: the same with one cursor over the whole collection (no filter), the better choice on FerretDB. Clients are connected before the timing starts.\n\n", directMethod(1))
	p("| Method | Round | Wall time | docs/s | MB/s | Coordinator peak RSS | Plugin peak RSS |\n|---|---:|---:|---:|---:|---:|---|\n")
	round := map[string]int{}
	for _, r := range f.Runs {
		round[r.Method]++
		rss, pl := "", ""
		if r.Method == "dsync" {
			rss, pl = fmt.Sprintf("%.1f MiB", mib(r.Proc.Coordinator.HWM)), r.Proc.pluginPeaks()
		}
		p("| %s | %d | %s | %.0f | %.1f | %s | %s |\n", r.Method, round[r.Method], r.Wall.Round(time.Millisecond), r.DocsPerSec(f.Docs),
			r.DocsPerSec(f.Docs)*float64(f.DocBytes)/1e6, rss, pl)
	}
	best, rate := f.BestDirect()
	d := f.medianOf("dsync")
	p("\n**dsync / best direct copy (%s): %.2f** (median docs/s %.0f / %.0f, same run; dsync / %s: %.2f).\n\n",
		best, d/rate, d, rate, directMethod(mongoParallel), d/f.medianOf(directMethod(mongoParallel)))
}
