package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/goleak"

	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/wire"
)

// The test binary doubles as a plugin and as a helper host process,
// selected by envRole.
const (
	envRole      = "PLUGINHOST_TEST_ROLE"
	envSocketDir = "PLUGINHOST_TEST_SOCKET_DIR"
	envHostArg   = "PLUGINHOST_TEST_HOST_ARG"
)

// pluginTestEnv makes a child test binary serve a plugin; under -race, it
// also skips the race runtime's one-second sleep at exit.
var pluginTestEnv = []string{envRole + "=plugin", "GORACE=atexit_sleep_ms=0"}

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "plugin":
		servePlugin(os.Args[1:])
		os.Exit(0)
	case "host":
		if err := helperHost(); err != nil {
			fmt.Fprintln(os.Stderr, "helper host:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// servePlugin serves the in-test plugin named by args (`plugin serve
// connector testsrc`), or the test connector when run without arguments
// through a wrapper script.
func servePlugin(args []string) {
	if len(args) == 4 && args[2] == "transform" {
		wire.Serve(wire.ServeOptions{Transform: &testTransform{}})
		return
	}
	wire.Serve(wire.ServeOptions{Connector: &testConn{}})
}

// helperHost starts a host and a plugin, prints the plugin's pid and waits
// to be killed.
func helperHost() error {
	h, err := New(Options{
		Builtins:  Builtins{Connectors: []string{"testsrc"}},
		Env:       pluginTestEnv,
		SocketDir: os.Getenv(envSocketDir),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	p, err := h.Start(context.Background(), Spec{Role: RoleSource, Arg: os.Getenv(envHostArg)})
	if err != nil {
		return err
	}
	fmt.Println(p.PID())
	select {}
}

// testConn is a source of 10 documents in "db.coll" and an in-memory sink.
// Query parameters of its URL change its behaviour: invalid=X fails
// Configure with InvalidArgument, logurl=1 logs the URL (a careless
// plugin), crash=list exits in ListData.
type testConn struct {
	mu      sync.Mutex
	cfg     spi.Config
	crash   string
	written map[string][]bson.Raw
}

var (
	_ spi.Source = (*testConn)(nil)
	_ spi.Sink   = (*testConn)(nil)
)

func (c *testConn) Configure(_ context.Context, cfg spi.Config) error {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return spi.InvalidArgument("cannot parse the connection string: %v", err)
	}
	q := u.Query()
	if v := q.Get("invalid"); v != "" {
		return spi.InvalidArgument("invalid option %q: batchSize must be a number", v)
	}
	if q.Get("logurl") != "" {
		slog.Info("configuring", "url", cfg.URL)
		fmt.Fprintln(os.Stderr, "plain stderr: connecting to", cfg.URL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg, c.crash = cfg, q.Get("crash")
	c.written = map[string][]bson.Raw{}
	return nil
}

func (c *testConn) Info(context.Context) (spi.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, _ := url.Parse(c.cfg.URL)
	return spi.Info{
		ID: "test:" + u.Hostname(), DBType: "test", Version: "1",
		Source: &spi.SourceCapabilities{},
		Sink:   &spi.SinkCapabilities{},
	}, nil
}

func (c *testConn) NamespaceMetadata(_ context.Context, ns string) (spi.NamespaceMetadata, error) {
	if ns == "leak" {
		c.mu.Lock()
		defer c.mu.Unlock()
		return spi.NamespaceMetadata{}, fmt.Errorf("cannot open %s with %s", ns, c.cfg.URL)
	}
	return spi.NamespaceMetadata{Count: 10}, nil
}

func (c *testConn) GeneratePlan(context.Context, spi.PlanRequest) (spi.Plan, error) {
	return spi.Plan{Partitions: []spi.Partition{{Namespace: "db.coll", EstimatedCount: 10}}}, nil
}

func (c *testConn) ListData(_ context.Context, _ spi.Partition, cursor []byte) (spi.Page, error) {
	c.mu.Lock()
	crash := c.crash
	c.mu.Unlock()
	if crash == "list" {
		slog.Error("simulated crash in ListData")
		os.Exit(7)
	}
	start := 0
	if len(cursor) > 0 {
		start, _ = strconv.Atoi(string(cursor))
	}
	var page spi.Page
	end := min(start+4, 10)
	for i := start; i < end; i++ {
		d, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(i)}, {Key: "pid", Value: int32(os.Getpid())}})
		page.Docs = append(page.Docs, d)
	}
	if end < 10 {
		page.NextCursor = []byte(strconv.Itoa(end))
	}
	return page, nil
}

func (c *testConn) WriteData(_ context.Context, ns string, docs []bson.Raw) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written[ns] = append(c.written[ns], docs...)
	return nil
}

func (c *testConn) WriteUpdates(context.Context, string, []spi.Update) error { return nil }

// testTransform prefixes namespaces with its spec.
type testTransform struct{ prefix string }

func (t *testTransform) Configure(_ context.Context, spec string) error {
	if spec == "" {
		return spi.InvalidArgument("testxf needs a prefix: testxf:PREFIX")
	}
	t.prefix = spec
	return nil
}

func (t *testTransform) TransformData(_ context.Context, ns string, docs []bson.Raw) ([]spi.DataBatch, error) {
	return []spi.DataBatch{{Namespace: t.prefix + ns, Docs: docs}}, nil
}

func (t *testTransform) TransformUpdates(_ context.Context, ns string, ups []spi.Update) ([]spi.UpdatesBatch, error) {
	return []spi.UpdatesBatch{{Namespace: t.prefix + ns, Updates: ups}}, nil
}

// logBuffer collects log output safely.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// shortTempDir is a temporary directory with a short path, since unix
// socket paths are limited to about 100 bytes and t.TempDir's are long.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ph")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// testOptions are host options serving the in-test plugins as built-ins.
func testOptions(t *testing.T, logs io.Writer) Options {
	if logs == nil {
		logs = io.Discard
	}
	return Options{
		Builtins:          Builtins{Connectors: []string{"testsrc"}, Transforms: []string{"testxf"}},
		Env:               pluginTestEnv,
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SocketDir:         shortTempDir(t),
		StartTimeout:      10 * time.Second,
		RestartBackoff:    10 * time.Millisecond,
		MaxRestartBackoff: 50 * time.Millisecond,
	}
}

// newHost starts a host closed at the end of the test, checking that its
// socket directory is gone and that no goroutine outlives it.
func newHost(t *testing.T, opts Options) *Host {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
		if _, err := os.Stat(h.SocketDir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket directory %s still exists after Close (stat: %v)", h.SocketDir(), err)
		}
		goleak.VerifyNone(t, ignore)
	})
	return h
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// wrapperScript runs the test binary as the test connector.
func wrapperScript(t *testing.T, dir, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return writeScript(t, dir, name, fmt.Sprintf("exec %q \"$@\"\n", exe))
}

// readAll lists every document of the test source's single partition.
func readAll(ctx context.Context, src spi.Source) ([]bson.Raw, error) {
	plan, err := src.GeneratePlan(ctx, spi.PlanRequest{InitialSync: true})
	if err != nil {
		return nil, err
	}
	var docs []bson.Raw
	for _, part := range plan.Partitions {
		var cursor []byte
		for {
			page, err := src.ListData(ctx, part, cursor)
			if err != nil {
				return nil, err
			}
			docs = append(docs, page.Docs...)
			if len(page.NextCursor) == 0 {
				break
			}
			cursor = page.NextCursor
		}
	}
	return docs, nil
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after %s", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
