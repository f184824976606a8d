package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
)

// The test binary stands in for the dsync binary: the plugin host re-executes
// os.Executable() to serve built-ins (`plugin serve connector random`), and a
// symbolic link to it named dsync-connector-vault serves a third-party style
// connector.
const vaultPlugin = "dsync-connector-vault"

// testHome is $HOME for the whole test process, so that the default
// --state-dir in help texts does not depend on who runs the tests, and
// nothing is written to the real home directory.
const testHome = "/home/dsync-test"

func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	if filepath.Base(os.Args[0]) == vaultPlugin {
		sdk.Serve(sdk.Plugin{Connector: &vaultConnector{Connector: random.New()}})
		os.Exit(0)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DSYNC_") {
			os.Unsetenv(k)
		}
	}
	os.Setenv("HOME", testHome)
	os.Unsetenv("XDG_STATE_HOME")
	// Plugin processes are race-instrumented test binaries: skip the race
	// runtime's one-second sleep at exit.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// vaultConnector is a random:// source behind a URL that carries
// credentials, vault://USER:PASSWORD@HOST/?token=T&<random options>. It is
// deliberately careless: it logs the connection string, and with
// fail=configure returns it in an error, so that tests can prove the host
// and the CLI scrub secrets from plugin output.
type vaultConnector struct {
	*random.Connector
}

func (c *vaultConnector) Configure(ctx context.Context, cfg sdk.Config) error {
	slog.Info("connecting to " + cfg.URL)
	slog.Info("configure", "url", cfg.URL)
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return sdk.InvalidArgument("vault: %v", err)
	}
	q := u.Query()
	if q.Get("fail") == "configure" {
		return sdk.InvalidArgument("vault: cannot log in to %s", cfg.URL)
	}
	q.Del("token")
	return c.Connector.Configure(ctx, sdk.Config{URL: "random://?" + q.Encode()})
}

// installVault creates a plugin directory holding the vault connector.
func installVault(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, vaultPlugin)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers: progress and
// log lines come from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs dsync in-process. A run that has not ended after a minute (a
// sync that should have failed but streams changes forever) is stopped.
func run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr lockedBuffer
	code := Run(ctx, args, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("dsync %s: still running after a minute", strings.Join(args, " "))
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs dsync and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != ExitOK {
		t.Fatalf("dsync %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// checkOneLineError checks an error exit: the code, nothing on stdout and a
// single "dsync: " line on stderr containing want.
func checkOneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\n%v", r.code, code, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout is not empty:\n%s", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "dsync: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting with \"dsync: \":\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}
