package pg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dsyncio/dsync/internal/testserver/pg"
)

func TestCluster(t *testing.T) {
	c := pg.Start(t)
	url := c.CreateDB("app")
	c.Exec("app", "create table t (id int primary key)", "insert into t values (1), (2)")

	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		var level string
		if err := conn.QueryRow(context.Background(), "select count(*), current_setting('wal_level') from t").Scan(&n, &level); err != nil {
			t.Fatal(err)
		}
		if level != "logical" {
			t.Errorf("wal_level = %q, want logical", level)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}

	c.Stop()
	if conn, err := pgx.Connect(context.Background(), url); err == nil {
		conn.Close(context.Background())
		t.Fatal("connected to a stopped cluster")
	}
	c.Start()
	if n := count(); n != 2 {
		t.Fatalf("after restart: count = %d, want 2", n)
	}

	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close", dir)
	}
}

// TestWatchdog: a cluster whose process dies without closing it is
// removed.
func TestWatchdog(t *testing.T) {
	if os.Getenv("DSYNC_PG_WATCHDOG_CHILD") == "1" {
		c, err := pg.New()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(c.Dir())
		os.Exit(0) // without Close
	}
	if _, err := exec.LookPath("initdb"); err != nil {
		pg.Start(t) // skips or fails as Start does
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$")
	cmd.Env = append(os.Environ(), "DSYNC_PG_WATCHDOG_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	dir := strings.TrimSpace(strings.Split(string(out), "\n")[0])
	if !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("child printed %q", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 20 s after its process ended", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
