package postgres

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dsyncio/dsync/sdk/sdktest"
)

const seedUsers = 500

// TestConformance runs the conformance kit against the connector as a real
// plugin subprocess (this test binary, re-executed) with mutual TLS, as
// source and sink of a fresh database per case.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite starts many plugins")
	}
	c := testCluster(t)
	sdktest.Run(t, sdktest.Harness{
		Command: func() *osexec.Cmd {
			cmd := osexec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), servePluginEnv+"=1")
			return cmd
		},
		URL: func(tb sdktest.TB) string {
			name := fmt.Sprintf("conf%d", dbSeq.Add(1))
			if err := seedConformance(c.URL("postgres"), c.URL(name), name); err != nil {
				tb.Fatalf("seed %s: %v", name, err)
			}
			return c.URL(name) + "&page_rows=100&partition_rows=200"
		},
		ExpectedCounts: map[string]int{"app.users": seedUsers},
		Mutate: func(tb sdktest.TB, url string) []sdktest.Change {
			_, url, err := parseConfig(url, nil) // without the dsync options
			if err != nil {
				tb.Fatalf("%v", err)
			}
			if err := execURL(url,
				"UPDATE app.users SET name = 'changed', at = '2024-01-01 00:00:00.123456+00' WHERE id = 7",
				"DELETE FROM app.users WHERE id = 8",
				"INSERT INTO app.users (id, name) VALUES (1000, 'new')",
				"UPDATE app.users SET age = age + 1 WHERE id = 7",
			); err != nil {
				tb.Fatalf("mutate: %v", err)
			}
			return []sdktest.Change{
				{Namespace: "app.users", ID: int64(7)},
				{Namespace: "app.users", ID: int64(8), Delete: true},
				{Namespace: "app.users", ID: int64(1000)},
				{Namespace: "app.users", ID: int64(7)},
			}
		},
		ReadBackWithGetByIDs: true,
		// Document tables store jsonb, which orders keys its own way.
		IgnoreFieldOrder: true,
		Expect:           sdktest.Expect{Source: true, Sink: true, Updates: true, GetByIDs: true},
	})
}

func seedConformance(adminURL, url, name string) error {
	if err := execURL(adminURL, "CREATE DATABASE "+name); err != nil {
		return err
	}
	return execURL(url,
		"CREATE SCHEMA app",
		`CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL, age int, at timestamptz,
			score numeric, tags text[], profile jsonb)`,
		fmt.Sprintf(`INSERT INTO app.users SELECT i, 'user ' || i, 20 + i %% 50, '2024-01-01'::timestamptz + i * interval '1 hour',
			i / 8.0, ARRAY['t' || i %% 3], jsonb_build_object('i', i, 'even', i %% 2 = 0)
			FROM generate_series(1, %d) i`, seedUsers),
	)
}

func execURL(url string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
