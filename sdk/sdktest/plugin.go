package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/wire"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
	"github.com/dsyncio/dsync/sdk"
)

// Time limits of plugin management.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	// prompt is how soon a call with a canceled context must return.
	prompt = 2 * time.Second
)

// env is the state of one case: the harness, the URL of its fresh state and
// the plugins it launched, stopped when the case ends.
type env struct {
	t   TB
	h   *Harness
	ctx context.Context
	url string

	sockDir string
	log     *logSink

	mu       sync.Mutex
	launched int
	live     []*instance
}

func newEnv(t TB, h *Harness) *env {
	t.Helper()
	// The URL first: cleanups it registers (a database server, say) then run
	// after the plugins using it are stopped.
	var url string
	if h.URL != nil {
		url = h.URL(t)
	}
	ctx, cancel := context.WithTimeout(t.Context(), h.CaseTimeout)
	e := &env{t: t, h: h, ctx: ctx, url: url, log: &logSink{t: t}}
	// Plugin sockets go to a short private directory: a killed plugin leaves
	// its socket behind, and unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "dsync-sdktest-")
	if err != nil {
		cancel()
		t.Fatalf("create plugin socket directory: %v", err)
	}
	e.sockDir = dir
	t.Cleanup(func() {
		e.mu.Lock()
		live := e.live
		e.live = nil
		e.mu.Unlock()
		for _, p := range live {
			if p.exitedByItself(t.Failed()) {
				t.Errorf("plugin #%d (pid %d) exited by itself during the case; a plugin runs until its host stops it%s", p.n, p.cmd.Process.Pid, e.log.tailNote())
			}
			p.stop()
		}
		e.log.close()
		cancel()
		_ = os.RemoveAll(dir)
	})
	return e
}

// instance is one running plugin.
type instance struct {
	e      *env
	n      int
	C      *wire.ConnectorClient
	client *plugin.Client
	cmd    *exec.Cmd

	// Transform plugins only: the host's client, which negotiates the data
	// type and converts, and the raw gRPC client for malformed requests.
	T    *wire.TransformClient
	rawT dsyncv1.TransformServiceClient

	// In-process plugins only.
	cancelServe context.CancelFunc
	served      chan struct{}

	stopped bool // by the suite
	once    sync.Once
}

// launch starts a new plugin and dispenses its connector; it does not
// configure it.
func (e *env) launch() *instance {
	e.t.Helper()
	e.mu.Lock()
	e.launched++
	p := &instance{e: e, n: e.launched}
	e.mu.Unlock()
	var err error
	if e.h.Command != nil {
		err = p.startProcess()
	} else {
		err = p.startInProcess()
	}
	if err != nil {
		p.stop()
		e.t.Fatalf("launch plugin #%d: %v%s", p.n, err, e.log.tailNote())
	}
	e.mu.Lock()
	e.live = append(e.live, p)
	e.mu.Unlock()
	return p
}

func (e *env) clientConfig() *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.VersionedPlugins(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		StartTimeout:     startTimeout,
		// Raw stderr (hclog JSON lines, panics) and what a Go plugin writes
		// to os.Stdout and os.Stderr while serving (go-plugin's stdio
		// stream).
		Stderr:     e.log,
		SyncStdout: e.log,
		SyncStderr: e.log,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "go-plugin",
			Output: ownLines{e.log},
			// Plugin stderr reaches the log raw through Stderr; this logger
			// adds go-plugin's own errors (e.g. how the process exited).
			Level:       hclog.Error,
			DisableTime: true,
		}),
	}
}

func (p *instance) startProcess() error {
	cmd := p.e.h.Command()
	if cmd == nil {
		return errors.New("Harness.Command returned a nil command")
	}
	if cmd.Process != nil {
		return errors.New("Harness.Command returned a started command; it must return a new one on each call")
	}
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+p.e.sockDir)
	p.cmd = cmd
	cfg := p.e.clientConfig()
	cfg.Cmd = cmd
	cfg.AutoMTLS = !p.e.h.Insecure
	p.client = plugin.NewClient(cfg)
	return p.dispense()
}

func (p *instance) startInProcess() error {
	impl := p.e.h.Connector()
	if impl == nil {
		return errors.New("Harness.Connector returned nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancelServe = cancel
	p.served = make(chan struct{})
	reattach := make(chan *plugin.ReattachConfig, 1)
	go func() {
		defer close(p.served)
		wire.Serve(wire.ServeOptions{Connector: impl, Test: &plugin.ServeTestConfig{
			Context:          ctx,
			ReattachConfigCh: reattach,
		}})
	}()
	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-p.served:
		return errors.New("in-process plugin stopped before serving")
	case <-time.After(startTimeout):
		return fmt.Errorf("in-process plugin did not serve within %v", startTimeout)
	}
	// go-plugin's default reattach runner polls the process (this one) for
	// exit forever; this one waits for the in-process server instead.
	rc.ReattachFunc = func() (runner.AttachedRunner, error) {
		return inProcessRunner{served: p.served, stop: cancel}, nil
	}
	cfg := p.e.clientConfig()
	cfg.Reattach = rc
	// A reattached client does not negotiate a version: give it the set.
	cfg.Plugins = wire.VersionedPlugins()[spi.ProtocolVersion]
	p.client = plugin.NewClient(cfg)
	return p.dispense()
}

func (p *instance) dispense() error {
	rpc, err := p.client.Client()
	if err != nil {
		return err
	}
	if p.e.h.Transform != nil {
		gc, ok := rpc.(*plugin.GRPCClient)
		if !ok {
			return fmt.Errorf("the plugin does not speak gRPC (%T)", rpc)
		}
		raw, err := rpc.Dispense(wire.TransformPluginName)
		if err != nil {
			return fmt.Errorf("dispense %q: %w", wire.TransformPluginName, err)
		}
		t, ok := raw.(*wire.TransformClient)
		if !ok {
			return fmt.Errorf("dispense %q returned %T, want *wire.TransformClient", wire.TransformPluginName, raw)
		}
		p.T, p.rawT = t, dsyncv1.NewTransformServiceClient(gc.Conn)
		return nil
	}
	raw, err := rpc.Dispense(wire.ConnectorPluginName)
	if err != nil {
		return fmt.Errorf("dispense %q: %w", wire.ConnectorPluginName, err)
	}
	c, ok := raw.(*wire.ConnectorClient)
	if !ok {
		return fmt.Errorf("dispense %q returned %T, want *wire.ConnectorClient", wire.ConnectorPluginName, raw)
	}
	p.C = c
	return nil
}

// inProcessRunner is the go-plugin runner of an in-process plugin.
type inProcessRunner struct {
	served <-chan struct{}
	stop   context.CancelFunc
}

func (r inProcessRunner) Wait(context.Context) error {
	<-r.served
	return nil
}

func (r inProcessRunner) Kill(context.Context) error {
	r.stop()
	return nil
}

func (inProcessRunner) ID() string { return "in-process" }

func (inProcessRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (inProcessRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// exitedByItself reports whether a subprocess plugin exited without being
// stopped. A failed case waits a little for go-plugin to notice an exit
// that caused the failure.
func (p *instance) exitedByItself(wait bool) bool {
	if p.cmd == nil || p.stopped {
		return false
	}
	deadline := time.Now().Add(time.Second)
	for !p.client.Exited() {
		if !wait || time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// crash kills the plugin without warning (SIGKILL for a subprocess; for an
// in-process plugin, the server is torn down and the instance dropped).
func (p *instance) crash() {
	p.e.t.Helper()
	p.stopped = true
	if p.cmd != nil && p.cmd.Process != nil {
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.e.t.Fatalf("kill plugin #%d (pid %d): %v", p.n, p.cmd.Process.Pid, err)
		}
	}
	if p.cancelServe != nil {
		p.cancelServe()
	}
	p.stop()
}

// stop shuts the plugin down and waits until go-plugin's goroutines for it
// are gone. It is idempotent.
func (p *instance) stop() {
	p.once.Do(func() {
		p.stopped = true
		if p.client == nil {
			if p.cancelServe != nil {
				p.cancelServe()
				p.waitServed()
			}
			return
		}
		if p.cancelServe == nil {
			p.client.Kill()
			return
		}
		// A reattached test-mode client does not stop anything on Kill: end
		// the in-process server, then close the connection. (Asking the
		// server to shut down first would race with go-plugin's own
		// shutdown of a test-mode server.)
		p.cancelServe()
		p.waitServed()
		if rpc, err := p.client.Client(); err == nil {
			_ = rpc.Close()
		}
		p.client.Kill()
	})
}

func (p *instance) waitServed() {
	select {
	case <-p.served:
	case <-time.After(stopTimeout):
		p.e.t.Errorf("in-process plugin #%d did not stop within %v of its shutdown", p.n, stopTimeout)
	}
}

// configure calls Configure with the case URL and the harness settings.
func (p *instance) configure(ctx context.Context) error {
	return p.C.Configure(ctx, sdk.Config{URL: p.e.url, Settings: p.e.h.Settings})
}

// start launches a plugin, configures it with the case URL and returns it
// with its Info.
func (e *env) start() (*instance, sdk.Info) {
	e.t.Helper()
	p := e.launch()
	if err := p.configure(e.ctx); err != nil {
		e.t.Fatalf("Configure with the harness URL: %s%s", describeErr(err), e.log.tailNote())
	}
	info, err := p.C.Info(e.ctx)
	if err != nil {
		e.t.Fatalf("GetInfo after Configure: %s%s", describeErr(err), e.log.tailNote())
	}
	return p, info
}

// restart kills p and starts a fresh plugin configured with the same URL.
func (e *env) restart(p *instance) (*instance, sdk.Info) {
	e.t.Helper()
	p.crash()
	return e.start()
}

// ownLines passes on go-plugin's own log entries and drops its copies of
// plugin stderr lines (logged by sub-loggers "go-plugin.<plugin>"), which
// the log already has raw.
type ownLines struct{ w io.Writer }

func (o ownLines) Write(b []byte) (int, error) {
	if strings.Contains(string(b[:min(len(b), 64)]), "] go-plugin.") {
		return len(b), nil
	}
	return o.w.Write(b)
}

// logSink receives plugin stderr and go-plugin's log: it forwards complete
// lines to the case log while the case runs and keeps the last ones for
// failure messages.
type logSink struct {
	t TB

	mu      sync.Mutex
	closed  bool
	partial []byte
	tail    []string
}

// Lines kept, and lines shown in failure messages.
const (
	keptLines  = 200
	shownLines = 20
	panicLines = 40
)

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, b...)
	for {
		i := strings.IndexByte(string(s.partial), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(s.partial[:i]), "\r")
		s.partial = s.partial[i+1:]
		if line == "" {
			continue
		}
		s.tail = append(s.tail, line)
		if len(s.tail) > keptLines {
			s.tail = s.tail[len(s.tail)-keptLines:]
		}
		if !s.closed {
			s.t.Logf("plugin: %s", line)
		}
	}
	return len(b), nil
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// tailNote returns the last plugin stderr lines as a suffix for a failure
// message, or "". When a plugin panicked, it shows the panic from its
// first line.
func (s *logSink) tailNote() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := s.tail[max(0, len(s.tail)-shownLines):]
	for i := len(s.tail) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.tail[i], "panic: ") || strings.HasPrefix(s.tail[i], "fatal error: ") {
			lines = s.tail[i:min(len(s.tail), i+panicLines)]
			break
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "\nlast plugin stderr lines:\n  " + strings.Join(lines, "\n  ")
}
