package verify

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/internal/spi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name; -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update if intended):\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// goldenRun verifies with a frozen clock, so that times are zero.
func goldenRun(t *testing.T, o Options) *Result {
	t.Helper()
	frozen := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	o.now = func() time.Time { return frozen }
	o.Retry = fastRetry()
	if o.Store == nil && !o.CountOnly {
		o.Store = openStore(t)
	}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func outputs(t *testing.T, r *Result, maxIDs int) (summary, report string) {
	t.Helper()
	var s, rep strings.Builder
	if err := WriteSummary(&s, r, maxIDs); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(&rep, r); err != nil {
		t.Fatal(err)
	}
	return s.String(), rep.String()
}

// The human summary and the JSON report, with every kind of mismatch.
func TestGoldenReport(t *testing.T) {
	a, b := pairOfDBs(12, "db.x", "db.y")
	b.nss["new.y"] = b.nss["db.y"]
	delete(b.nss, "db.y")
	mutate(b, "db.x")
	b.put("new.y", bson.D{{Key: "_id", Value: "only-in-b"}})
	// A's plan returns db.y's first partition twice.
	a.planHook = func(p []spi.Partition) []spi.Partition {
		for _, q := range p {
			if q.Namespace == "db.y" {
				return append(p, q)
			}
		}
		return p
	}
	m, err := coordinator.ParseNamespaceMap([]string{"db.x", "db.y:new.y"})
	if err != nil {
		t.Fatal(err)
	}
	r := goldenRun(t, Options{A: a, B: b, Namespaces: m, ADisplay: "mem://a", BDisplay: "mem://b"})
	summary, report := outputs(t, r, 8)
	golden(t, "summary.golden", summary)
	golden(t, "report.golden", report)
}

func TestGoldenRepair(t *testing.T) {
	a, b := pairOfDBs(12, "db.x")
	mutate(b, "db.x")
	r := goldenRun(t, Options{A: a, B: b, Repair: true, Recheck: time.Millisecond, ADisplay: "mem://a", BDisplay: "mem://b"})
	summary, report := outputs(t, r, 8)
	golden(t, "repair-summary.golden", summary)
	golden(t, "repair-report.golden", report)
}

func TestGoldenIdentical(t *testing.T) {
	a, b := pairOfDBs(12, "db.x", "db.y")
	summary, _ := outputs(t, goldenRun(t, Options{A: a, B: b, ADisplay: "mem://a", BDisplay: "mem://b"}), 8)
	golden(t, "identical-summary.golden", summary)

	a.partitions = 10
	b.del("db.x", int64(3))
	summary, _ = outputs(t, goldenRun(t, Options{A: a, B: b, SamplePercent: 20, SampleSeed: 7, ADisplay: "mem://a", BDisplay: "mem://b"}), 8)
	golden(t, "sample-summary.golden", summary)
}

func TestGoldenCountOnly(t *testing.T) {
	a, b := pairOfDBs(12, "db.x", "db.y")
	b.del("db.y", int64(3))
	summary, report := outputs(t, goldenRun(t, Options{A: a, B: b, CountOnly: true, ADisplay: "mem://a", BDisplay: "mem://b"}), 8)
	golden(t, "count-only-summary.golden", summary)
	golden(t, "count-only-report.golden", report)
}
