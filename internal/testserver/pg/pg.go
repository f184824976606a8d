package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned by New when initdb or pg_ctl cannot be found.
var ErrNotInstalled = errors.New("pg: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL 15 (apt-get install -y postgresql)")

// runAs is the user initdb and pg_ctl run as when the process is root.
const runAs = "postgres"

// Cluster is a running throwaway PostgreSQL cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir  string // temporary directory: data/, the socket and the log
	bin  string // directory of initdb and pg_ctl
	port int
	root bool // run the binaries as runAs

	tb testing.TB // set by Start: errors end the test

	// watchdog removes the cluster if this process dies without Close
	// (a panic, a kill).
	watchdog *exec.Cmd

	mu      sync.Mutex
	running bool
}

// Start creates and starts a cluster that is stopped and removed when t
// ends. Without PostgreSQL binaries it skips t, or fails it when the
// environment variable CI is "true".
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := New()
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: PostgreSQL tests must run, not skip)", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	c.tb = t
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("remove PostgreSQL cluster: %v", err)
		}
	})
	return c
}

// New creates and starts a cluster; Close stops and removes it. Errors of
// the other methods panic on a cluster made by New (Start's make the test
// fail instead).
func New() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, root: os.Geteuid() == 0}
	// Not t.TempDir: its parent is private to the current user, and the
	// server runs as another one when we are root. Short, too: the socket
	// path is limited to about 100 bytes.
	c.dir, err = os.MkdirTemp("", "dsync-pg-")
	if err != nil {
		return nil, fmt.Errorf("pg: create temporary directory: %w", err)
	}
	if err := c.setup(); err != nil {
		c.Close()
		return nil, err
	}
	c.startWatchdog()
	return c, nil
}

// startWatchdog starts a shell that waits for this process to end and
// then stops the server and removes its directory. It runs in a process
// group of its own, so that signals to the test's group do not reach it.
func (c *Cluster) startWatchdog() {
	stop := fmt.Sprintf("%s -D %s -m immediate stop", shellQuote(filepath.Join(c.bin, "pg_ctl")), shellQuote(c.dataDir()))
	if c.root {
		stop = "runuser -u " + runAs + " -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s",
		os.Getpid(), stop, shellQuote(c.dir))
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err == nil {
		c.watchdog = cmd
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (c *Cluster) setup() error {
	if c.root {
		u, err := user.Lookup(runAs)
		if err != nil {
			return fmt.Errorf("pg: running as root, and initdb refuses root: need the %q user to run it: %w", runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("pg: hand %s to %s: %w", c.dir, runAs, err)
		}
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return err
	}
	out, err := c.run("initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust", "--no-sync",
		"--encoding=UTF8", "--locale=C")
	if err != nil {
		return fmt.Errorf("pg: initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		if err := c.writeConfig(); err != nil {
			return err
		}
		if lastErr = c.start(); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// writeConfig writes the settings to postgresql.auto.conf, which is read
// after postgresql.conf and overrides it.
func (c *Cluster) writeConfig() error {
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = logical
max_replication_slots = 100
max_wal_senders = 100
max_connections = 300
synchronous_commit = on
fsync = off
full_page_writes = off
shared_buffers = 64MB
wal_sender_timeout = 60s
log_min_messages = warning
`, c.port, c.dir)
	p := filepath.Join(c.dataDir(), "postgresql.auto.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("pg: write %s: %w", p, err)
	}
	if c.root {
		u, _ := user.Lookup(runAs)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return os.Chown(p, uid, gid)
	}
	return nil
}

// run runs one of the server binaries, as runAs when root.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.root {
		cmd = exec.Command("runuser", append([]string{"-u", runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	out, err := c.run("pg_ctl", "-w", "-t", "60", "-D", c.dataDir(), "-l", c.logFile(), "start")
	if err != nil {
		return fmt.Errorf("pg: pg_ctl start on port %d: %w\n%s\n%s", c.port, err, out, c.logTail())
	}
	c.running = true
	return nil
}

func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	out, err := c.run("pg_ctl", "-w", "-t", "60", "-D", c.dataDir(), "-m", mode, "stop")
	if err != nil {
		return fmt.Errorf("pg: pg_ctl stop: %w\n%s", err, out)
	}
	c.running = false
	return nil
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// Close stops the server at once and removes its directory.
func (c *Cluster) Close() error {
	if c.watchdog != nil {
		_ = c.watchdog.Process.Kill()
		_ = c.watchdog.Wait()
		c.watchdog = nil
	}
	err := c.stop("immediate")
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Stop shuts the server down (fast mode: sessions are disconnected) and
// waits until it is gone. The data stays; Start brings it back.
func (c *Cluster) Stop() { c.check(c.stop("fast")) }

// Start starts a stopped server again on the same port.
func (c *Cluster) Start() { c.check(c.start()) }

func (c *Cluster) check(err error) {
	if err == nil {
		return
	}
	if c.tb != nil {
		c.tb.Helper()
		c.tb.Fatal(err)
	}
	panic(err)
}

// Port is the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the temporary directory of the cluster: the data directory
// (data/), the server log (postgres.log) and the unix socket.
func (c *Cluster) Dir() string { return c.dir }

// URL is the connection string of database db as the superuser postgres
// over TCP.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// CreateDB creates database name and returns its URL.
func (c *Cluster) CreateDB(name string) string {
	if c.tb != nil {
		c.tb.Helper()
	}
	c.Exec("postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return c.URL(name)
}

// Exec runs each statement in its own transaction in database db.
func (c *Cluster) Exec(db string, stmts ...string) {
	if c.tb != nil {
		c.tb.Helper()
	}
	c.check(c.exec(db, stmts...))
}

func (c *Cluster) exec(db string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return fmt.Errorf("pg: connect to %s: %w", db, err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("pg: %s: %s: %w", db, s, err)
		}
	}
	return nil
}
