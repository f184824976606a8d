package pluginhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/wire"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// secretURL carries secrets that must never show outside Configure.
const secretURL = "testsrc://alice:s3cr3t-pw@db.example:1234/app?token=tok-123"

var secrets = []string{"s3cr3t-pw", "tok-123"}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartConfigureInfoListData(t *testing.T) {
	h := newHost(t, testOptions(t, nil))
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: secretURL})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "source.testsrc" || p.Connector() == nil || p.Transform() != nil {
		t.Errorf("Name() = %q, Connector() = %v, Transform() = %v", p.Name(), p.Connector(), p.Transform())
	}
	info := p.Info()
	if info.ID != "test:db.example" || info.Source == nil || info.ProtocolVersion != spi.ProtocolVersion {
		t.Errorf("Info() = %+v", info)
	}
	src := p.Connector()
	if got, err := src.Info(ctx); err != nil || got.ID != info.ID {
		t.Errorf("Connector.Info = %+v, %v", got, err)
	}
	docs, err := readAll(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 10 {
		t.Fatalf("read %d documents, want 10", len(docs))
	}
	for i, d := range docs {
		if id := d.Lookup("_id").Int32(); id != int32(i) {
			t.Errorf("doc %d has _id %d", i, id)
		}
	}
	if err := src.Configure(ctx, spi.Config{URL: secretURL}); err != nil {
		t.Errorf("Configure with the same config: %v", err)
	}
	if err := src.Configure(ctx, spi.Config{URL: "testsrc://other"}); !errors.Is(err, ErrAlreadyConfigured) ||
		spi.KindOf(err) != spi.KindFailedPrecondition {
		t.Errorf("Configure with another config: %v", err)
	}
	// A sink on the same host.
	snk, err := h.Start(ctx, Spec{Role: RoleSink, Arg: "testsrc://sinkhost/db"})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Connector().WriteData(ctx, "db.coll", docs); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ListData(ctx, spi.Partition{Namespace: "db.coll"}, nil); !errors.Is(err, ErrClosed) ||
		spi.KindOf(err) != spi.KindCanceled {
		t.Errorf("call after Close: %v", err)
	}
}

func TestSecretsNotInArgvOrEnv(t *testing.T) {
	t.Setenv("LEAKY_SOURCE_URL", secretURL) // the host environment holds it; the plugin's must not
	h := newHost(t, testOptions(t, nil))
	p, err := h.Start(ctxT(t), Spec{Role: RoleSource, Arg: secretURL})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	if pid == 0 {
		t.Fatal("no pid")
	}
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append(secrets, "alice", "LEAKY_SOURCE_URL") {
			if strings.Contains(string(b), s) {
				t.Errorf("/proc/%d/%s contains %q", pid, f, s)
			}
		}
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); strings.Join(args[1:], " ") != "plugin serve connector testsrc" {
		t.Errorf("plugin argv = %q", args)
	}
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if !strings.Contains(string(environ), "PLUGIN_UNIX_SOCKET_DIR="+h.SocketDir()+"/") {
		t.Errorf("plugin sockets are not in the host's private directory %s", h.SocketDir())
	}
	fi, err := os.Stat(h.SocketDir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

func TestRestartAfterKill(t *testing.T) {
	logs := &logBuffer{}
	h := newHost(t, testOptions(t, logs))
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: secretURL})
	if err != nil {
		t.Fatal(err)
	}
	src := p.Connector()
	part := spi.Partition{Namespace: "db.coll"}
	page, err := src.ListData(ctx, part, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid1 := p.PID()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}

	_, err = src.ListData(ctx, part, page.NextCursor)
	if !spi.IsRetryable(err) || !errors.Is(err, ErrPluginDied) {
		t.Fatalf("call after kill: %v (kind %v), want a retryable ErrPluginDied", err, spi.KindOf(err))
	}
	if msg := err.Error(); !strings.Contains(msg, `source plugin "testsrc" (built-in)`) || !strings.Contains(msg, "signal: killed") {
		t.Errorf("error %q should name the plugin and how it died", msg)
	}

	// The next call runs on a new process, from the durable cursor.
	page2, err := src.ListData(ctx, part, page.NextCursor)
	if err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	if got := page2.Docs[0].Lookup("_id").Int32(); got != 4 {
		t.Errorf("first _id after restart = %d, want 4", got)
	}
	if p.Restarts() != 1 {
		t.Errorf("Restarts() = %d, want 1", p.Restarts())
	}
	pid2 := p.PID()
	if pid2 == 0 || pid2 == pid1 {
		t.Errorf("pid after restart = %d, before = %d", pid2, pid1)
	}
	if got := page2.Docs[0].Lookup("pid").Int32(); int(got) != pid2 {
		t.Errorf("page served by pid %d, want %d", got, pid2)
	}
	waitGone(t, pid1, 5*time.Second)
	// The dead process's socket directory is removed.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		entries, _ := os.ReadDir(h.SocketDir())
		if len(entries) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket directory holds %d entries, want 1 (the live plugin's)", len(entries))
		}
	}
	if !strings.Contains(logs.String(), "plugin restarted") {
		t.Errorf("no restart in the log:\n%s", logs)
	}
}

func TestHungPluginIsRestarted(t *testing.T) {
	h := newHost(t, testOptions(t, nil))
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://h/db"})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = p.Connector().NamespaceMetadata(callCtx, "db.coll")
	if !spi.IsRetryable(err) || !errors.Is(err, ErrPluginDied) || !strings.Contains(err.Error(), "not answering") {
		t.Fatalf("call to a stopped plugin: %v", err)
	}
	waitGone(t, pid, 5*time.Second)
	if _, err := p.Connector().NamespaceMetadata(ctx, "db.coll"); err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	if p.PID() == pid || p.Restarts() != 1 {
		t.Errorf("PID() = %d (was %d), Restarts() = %d", p.PID(), pid, p.Restarts())
	}
}

func TestLaunchFailures(t *testing.T) {
	dir := shortTempDir(t)
	garbage := writeScript(t, dir, "garbage.sh", "echo garbage\n")
	exit3 := writeScript(t, dir, "exit3.sh", "echo 'boom: cannot read config' >&2\necho 'second line' >&2\nexit 3\n")
	hang := writeScript(t, dir, "hang.sh", "exec sleep 30\n")
	badHandshake := writeScript(t, dir, "badproto.sh", "echo '1|99|unix|/nowhere|grpc|'\nsleep 5\n")
	noCert := writeScript(t, dir, "nocert.sh", "echo '1|1|unix|/nowhere/sock|grpc|'\nexec sleep 30\n")
	noCertInsecure := writeScript(t, dir, "nocert-ok.sh", "echo '1|1|unix|/nowhere/sock|grpc|'\nexec sleep 30\n")
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte{0x7f, 'E', 'L', 'F', 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := testOptions(t, nil)
	opts.StartTimeout = 2 * time.Second
	opts.Insecure = []string{"nocert-ok.sh"}
	h := newHost(t, opts)
	tests := []struct {
		name    string
		path    string
		problem error
		has     []string
	}{
		{"garbage handshake", garbage, ErrHandshake, []string{`source plugin "garbage.sh" (` + garbage + `)`, "handshake failed", `"garbage"`}},
		{"exits at once", exit3, ErrExitedEarly, []string{`source plugin "exit3.sh" (` + exit3 + `)`,
			"exited before handshake (exit status 3)", "last stderr: boom: cannot read config | second line"}},
		{"no handshake", hang, ErrStartTimeout, []string{`source plugin "hang.sh"`, "no handshake line (waited 2s)"}},
		{"incompatible protocol", badHandshake, ErrHandshake, []string{`source plugin "badproto.sh"`, "handshake failed:", "99"}},
		{"not a program", noShebang, ErrStart, []string{`source plugin "noshebang"`, "cannot start", "exec format error"}},
		{"no mTLS", noCert, ErrHandshake, []string{`source plugin "nocert.sh"`, "offered no TLS certificate",
			"--plugin-insecure nocert.sh"}},
		{"no server", noCertInsecure, ErrConnect, []string{`source plugin "nocert-ok.sh"`, "connect failed: ", "/nowhere/sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Start(ctxT(t), Spec{Role: RoleSource, Arg: secretURL, ExplicitPath: tt.path})
			if !errors.Is(err, tt.problem) {
				t.Fatalf("Start error = %v, want %v", err, tt.problem)
			}
			var pe *PluginError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *PluginError", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, s := range tt.has {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error %q leaks %q", msg, s)
				}
			}
		})
	}
	entries, _ := os.ReadDir(h.SocketDir())
	if len(entries) != 0 {
		t.Errorf("failed launches left %d entries in the socket directory", len(entries))
	}
}

func TestConfigureInvalidArgument(t *testing.T) {
	h := newHost(t, testOptions(t, nil))
	_, err := h.Start(ctxT(t), Spec{Role: RoleSink, Arg: "testsrc://u:s3cr3t-pw@h/db?invalid=abc"})
	if spi.KindOf(err) != spi.KindInvalidArgument {
		t.Fatalf("Start error = %v (kind %v), want invalid argument", err, spi.KindOf(err))
	}
	msg := err.Error()
	if !strings.Contains(msg, `invalid option "abc": batchSize must be a number`) ||
		!strings.Contains(msg, `sink plugin "testsrc" (built-in)`) || strings.Contains(msg, "s3cr3t-pw") {
		t.Errorf("error = %q", msg)
	}
	if wire.Code(err) != codes.InvalidArgument {
		t.Errorf("gRPC code = %v", wire.Code(err))
	}
}

func TestRestartsExhaustedCrashLoop(t *testing.T) {
	opts := testOptions(t, nil)
	opts.MaxRestarts = 2
	h := newHost(t, opts)
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://h/db?crash=list"})
	if err != nil {
		t.Fatal(err)
	}
	src := p.Connector()
	part := spi.Partition{Namespace: "db.coll"}
	for i := range 2 {
		if _, err := src.ListData(ctx, part, nil); !spi.IsRetryable(err) {
			t.Fatalf("call %d: %v, want retryable", i, err)
		}
	}
	_, err = src.ListData(ctx, part, nil)
	if spi.KindOf(err) != spi.KindFatal || !errors.Is(err, ErrRestartsExhausted) {
		t.Fatalf("call 3: %v (kind %v), want fatal ErrRestartsExhausted", err, spi.KindOf(err))
	}
	msg := err.Error()
	for _, s := range []string{`source plugin "testsrc" (built-in)`, "gave up restarting", "exit status 7",
		"last stderr: ", "error: simulated crash in ListData"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if p.Restarts() != 2 {
		t.Errorf("Restarts() = %d, want 2", p.Restarts())
	}
	if _, err2 := src.ListData(ctx, part, nil); err2 == nil || err2.Error() != msg {
		t.Errorf("next call = %v, want the same fatal error", err2)
	}
}

func TestRestartsExhaustedLaunchFailure(t *testing.T) {
	dir := shortTempDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "started")
	script := writeScript(t, dir, "flaky", fmt.Sprintf(
		"if [ -e %q ]; then echo 'cannot start: disk on fire' >&2; exit 3; fi\ntouch %q\nexec %q \"$@\"\n", marker, marker, exe))
	opts := testOptions(t, nil)
	opts.MaxRestarts = 1
	h := newHost(t, opts)
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://h/db", ExplicitPath: script})
	if err != nil {
		t.Fatal(err)
	}
	src := p.Connector()
	if _, err := src.NamespaceMetadata(ctx, "db.coll"); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.NamespaceMetadata(ctx, "db.coll"); !spi.IsRetryable(err) {
		t.Fatalf("call after kill: %v, want retryable", err)
	}
	_, err = src.NamespaceMetadata(ctx, "db.coll")
	if spi.KindOf(err) != spi.KindFatal || !errors.Is(err, ErrRestartsExhausted) || !errors.Is(err, ErrExitedEarly) {
		t.Fatalf("call after failed restart: %v (kind %v)", err, spi.KindOf(err))
	}
	msg := err.Error()
	for _, s := range []string{`source plugin "flaky"`, "gave up restarting", "exited before handshake (exit status 3)",
		"last stderr: cannot start: disk on fire"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if strings.Count(msg, `source plugin "flaky"`) != 1 {
		t.Errorf("error names the plugin more than once: %q", msg)
	}
}

func TestSuccessResetsRestartCount(t *testing.T) {
	opts := testOptions(t, nil)
	opts.MaxRestarts = 1
	h := newHost(t, opts)
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://h/db"})
	if err != nil {
		t.Fatal(err)
	}
	src := p.Connector()
	for i := range 3 {
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if _, err := src.NamespaceMetadata(ctx, "db.coll"); !spi.IsRetryable(err) {
			t.Fatalf("round %d: call after kill: %v", i, err)
		}
		if _, err := src.NamespaceMetadata(ctx, "db.coll"); err != nil {
			t.Fatalf("round %d: call after restart: %v", i, err)
		}
	}
	if p.Restarts() != 3 {
		t.Errorf("Restarts() = %d, want 3", p.Restarts())
	}
}

func TestLogsAreRedacted(t *testing.T) {
	logs := &logBuffer{}
	h := newHost(t, testOptions(t, logs))
	ctx := ctxT(t)
	arg := "testsrc://alice:s3cr3t-pw@db.example:1234/app?logurl=1&token=tok-123"
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: arg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Connector().NamespaceMetadata(ctx, "leak")
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot open leak with testsrc://alice:xxxxx@db.example") {
		t.Errorf("error = %q, want the plugin's message with the URL redacted", msg)
	}
	if len(p.Stderr()) == 0 {
		t.Error("no stderr lines kept")
	}
	for _, l := range p.Stderr() {
		for _, s := range secrets {
			if strings.Contains(l, s) {
				t.Errorf("stderr line %q leaks %q", l, s)
			}
		}
	}
	// Lines the plugin prints to os.Stderr travel on go-plugin's stdio
	// stream, asynchronously.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "plain stderr:"); {
		if time.Now().After(deadline) {
			t.Fatal("the plugin's stdio line never reached the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	out := logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log leaks %q:\n%s", s, out)
		}
	}
	for _, s := range []string{
		`"msg":"starting plugin"`, `"plugin":"source.testsrc"`, `alice:xxxxx@db.example`,
		`"level":"INFO","msg":"configuring"`, // the plugin's own JSON log line, level kept
		`plain stderr: connecting to testsrc://alice:xxxxx@`,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("log does not contain %s:\n%s", s, out)
		}
	}
}

func TestInsecurePlugin(t *testing.T) {
	logs := &logBuffer{}
	opts := testOptions(t, logs)
	opts.Insecure = []string{"testsrc"}
	h := newHost(t, opts)
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://h/db"})
	if err != nil {
		t.Fatal(err)
	}
	if docs, err := readAll(ctx, p.Connector()); err != nil || len(docs) != 10 {
		t.Fatalf("read %d docs: %v", len(docs), err)
	}
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID()))
	if strings.Contains(string(environ), "PLUGIN_CLIENT_CERT") {
		t.Error("insecure plugin was sent a client certificate")
	}
	if !strings.Contains(logs.String(), "without mutual TLS") {
		t.Errorf("no warning for the insecure plugin:\n%s", logs)
	}
}

func TestTransformPlugin(t *testing.T) {
	h := newHost(t, testOptions(t, nil))
	ctx := ctxT(t)
	p, err := h.Start(ctx, Spec{Role: RoleTransform, Arg: "testxf:pre_"})
	if err != nil {
		t.Fatal(err)
	}
	xf := p.Transform()
	if xf == nil || p.Connector() != nil || p.Name() != "transform.testxf" {
		t.Fatalf("Transform() = %v, Name() = %q", xf, p.Name())
	}
	doc, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}})
	out, err := xf.TransformData(ctx, "db.a", []bson.Raw{doc})
	if err != nil || len(out) != 1 || out[0].Namespace != "pre_db.a" || len(out[0].Docs) != 1 {
		t.Fatalf("TransformData = %+v, %v", out, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := xf.TransformData(ctx, "db.a", []bson.Raw{doc}); !spi.IsRetryable(err) {
		t.Fatalf("after kill: %v", err)
	}
	if out, err := xf.TransformData(ctx, "db.a", []bson.Raw{doc}); err != nil || out[0].Namespace != "pre_db.a" {
		t.Fatalf("after restart: %+v, %v", out, err)
	}

	_, err = h.Start(ctx, Spec{Role: RoleTransform, Arg: "testxf"})
	if spi.KindOf(err) != spi.KindInvalidArgument || !strings.Contains(err.Error(), "testxf needs a prefix") {
		t.Errorf("transform without spec: %v", err)
	}
}

// serveNetworkConnector serves the test connector over plaintext TCP, as a
// connector deployed elsewhere would.
func serveNetworkConnector(t *testing.T, addr string) (*testConn, *grpc.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	impl := &testConn{}
	srv := grpc.NewServer(wire.ServerOptions()...)
	dsyncv1.RegisterConnectorServiceServer(srv, wire.NewConnectorServer(impl))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return impl, srv, lis.Addr().String()
}

func TestNetworkConnector(t *testing.T) {
	impl, srv, addr := serveNetworkConnector(t, "127.0.0.1:0")
	h := newHost(t, testOptions(t, nil))
	ctx := ctxT(t)
	arg := "grpc://" + addr + "/?token=tok-123"
	p, err := h.Start(ctx, Spec{Role: RoleSource, Arg: arg, Settings: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.PID() != 0 || p.Resolved().Addr != addr {
		t.Errorf("PID() = %d, Resolved() = %+v", p.PID(), p.Resolved())
	}
	impl.mu.Lock()
	got := impl.cfg
	impl.mu.Unlock()
	if got.URL != arg || got.Settings["k"] != "v" {
		t.Errorf("Configure got %+v, want the full argument", got)
	}
	if docs, err := readAll(ctx, p.Connector()); err != nil || len(docs) != 10 {
		t.Fatalf("read %d docs: %v", len(docs), err)
	}

	// The remote connector goes away and comes back: reconnect and
	// reconfigure.
	srv.Stop()
	if _, err := p.Connector().NamespaceMetadata(ctx, "db.coll"); !spi.IsRetryable(err) {
		t.Fatalf("call while down: %v", err)
	}
	impl2, _, _ := serveNetworkConnector(t, addr)
	if _, err := p.Connector().NamespaceMetadata(ctx, "db.coll"); err != nil {
		t.Fatalf("call after the connector came back: %v", err)
	}
	impl2.mu.Lock()
	defer impl2.mu.Unlock()
	if impl2.cfg.URL != arg {
		t.Errorf("not reconfigured: %+v", impl2.cfg)
	}
}

func TestNetworkConnectorUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	h := newHost(t, testOptions(t, nil))
	_, err = h.Start(ctxT(t), Spec{Role: RoleSink, Arg: "grpc://" + addr})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), `sink plugin "`+addr+`" (grpc): connect failed`) {
		t.Errorf("Start = %v", err)
	}
}

func TestHostCloseStopsPlugins(t *testing.T) {
	opts := testOptions(t, nil)
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var pids []int
	for _, spec := range []Spec{{Role: RoleSource, Arg: "testsrc://a"}, {Role: RoleSink, Arg: "testsrc://b"},
		{Role: RoleTransform, Arg: "testxf:x"}} {
		p, err := h.Start(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.PID())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("plugin %d still runs after Host.Close", pid)
		}
	}
	if _, err := os.Stat(h.SocketDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir remains: %v", err)
	}
	if _, err := h.Start(ctx, Spec{Role: RoleSource, Arg: "testsrc://a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v", err)
	}
}

// TestPluginDiesWithHost runs a host in a child process, kills it with
// SIGKILL and checks that its plugin exits too; a new host then removes the
// dead host's socket directory.
func TestPluginDiesWithHost(t *testing.T) {
	socketDir := shortTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=host", envSocketDir+"="+socketDir, envHostArg+"=testsrc://h/db")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || processGone(pid) {
		t.Fatalf("helper host printed %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, pid, 5*time.Second)

	stale, _ := filepath.Glob(filepath.Join(socketDir, socketDirPrefix+"*"))
	if len(stale) != 1 {
		t.Fatalf("want the dead host's socket directory, found %q", stale)
	}
	opts := testOptions(t, nil)
	opts.SocketDir = socketDir
	h := newHost(t, opts)
	if _, err := os.Stat(stale[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket directory %s not removed by New", stale[0])
	}
	_ = h
}
