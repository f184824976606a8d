package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/goleak"

	"github.com/dsyncio/dsync/internal/testserver/pg"
	"github.com/dsyncio/dsync/sdk"
)

// servePluginEnv makes the test binary serve the connector as a plugin
// (the conformance kit re-executes it).
const servePluginEnv = "DSYNC_POSTGRES_SERVE_PLUGIN"

var (
	clusterOnce sync.Once
	cluster     *pg.Cluster
	clusterErr  error
	dbSeq       atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv(servePluginEnv) == "1" {
		sdk.Serve(sdk.Plugin{Connector: New()})
		os.Exit(0)
	}
	code := m.Run()
	if cluster != nil {
		cluster.Close()
	}
	// Streams, pools and retries must leave no goroutine behind.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testCluster returns the package's PostgreSQL cluster, started on first
// use and shared by the tests (each uses its own databases).
func testCluster(t testing.TB) *pg.Cluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = pg.New() })
	if errors.Is(clusterErr, pg.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: PostgreSQL tests must run, not skip)", clusterErr)
		}
		t.Skipf("skipping: %v", clusterErr)
	}
	if clusterErr != nil {
		t.Fatalf("start PostgreSQL: %v", clusterErr)
	}
	return cluster
}

// newDB creates a fresh database and returns its URL.
func newDB(t testing.TB) string {
	t.Helper()
	c := testCluster(t)
	name := fmt.Sprintf("db%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return c.URL(name)
}

// exec runs statements, each in its own transaction.
func exec(t testing.TB, url string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// queryStrings runs a query and returns its rows in text form ("NULL"
// for null).
func queryStrings(t testing.TB, url, sql string, args ...any) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, mustConfig(t, url))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, append([]any{textResults}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		var r []string
		for _, v := range rows.RawValues() {
			if v == nil {
				r = append(r, "NULL")
			} else {
				r = append(r, string(v))
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func queryOne(t testing.TB, url, sql string, args ...any) string {
	t.Helper()
	rows := queryStrings(t, url, sql, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: got %v, want one value", sql, rows)
	}
	return rows[0][0]
}

// mustConfig is a connection config with the connector's session
// settings.
func mustConfig(t testing.TB, url string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	return cfg
}

// configured returns a connector configured with url, closed at the end of
// the test.
func configured(t testing.TB, url string) *Connector {
	t.Helper()
	c := New()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Configure(ctx, sdk.Config{URL: url}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads every partition of a plan and returns the documents by
// namespace.
func readAll(t testing.TB, c *Connector, plan sdk.Plan) map[string][]bson.Raw {
	t.Helper()
	out := map[string][]bson.Raw{}
	for _, p := range plan.Partitions {
		out[p.Namespace] = append(out[p.Namespace], readPartition(t, c, p, nil)...)
	}
	return out
}

func readPartition(t testing.TB, c *Connector, p sdk.Partition, cursor []byte) []bson.Raw {
	t.Helper()
	var docs []bson.Raw
	for {
		page, err := c.ListData(context.Background(), p, cursor)
		if err != nil {
			t.Fatalf("ListData(%s): %v", p.Namespace, err)
		}
		docs = append(docs, page.Docs...)
		if len(page.NextCursor) == 0 {
			return docs
		}
		cursor = page.NextCursor
	}
}

func plan(t testing.TB, c *Connector, req sdk.PlanRequest) sdk.Plan {
	t.Helper()
	p, err := c.GeneratePlan(context.Background(), req)
	if err != nil {
		t.Fatalf("GeneratePlan: %v", err)
	}
	return p
}

func pgxConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, url)
}
