package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/wire"
)

// probeTimeout bounds the health check that decides whether a plugin whose
// call failed is still alive.
const probeTimeout = 2 * time.Second

// Plugin is a supervised plugin: one process (or network connection) at a
// time, relaunched and reconfigured when it dies. Get the spi
// implementation with Connector or Transform. Safe for concurrent use.
type Plugin struct {
	h        *Host
	res      Resolved
	desc     string
	arg      string // what Configure receives; may hold secrets
	settings map[string]string
	insecure bool
	log      *slog.Logger
	scrub    func(string) string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	// launchSem serialises launches; Close takes it to wait for one.
	launchSem chan struct{}
	wg        sync.WaitGroup // background instance stops

	mu          sync.Mutex
	cur         *instance // nil when dead or closed
	last        *instance // most recent launch attempt, for stderr
	info        spi.Info
	restarts    int
	consecutive int // restarts since the last successful call
	fatal       error
	closed      bool
}

// instance is one launched plugin process or network connection.
type instance struct {
	client    *plugin.Client // nil for a network connector
	runner    *procRunner    // nil for a network connector
	conn      *grpc.ClientConn
	ownConn   bool // the conn is ours to close (network connector)
	health    healthpb.HealthClient
	stderr    *stderrRing
	connector *wire.ConnectorClient
	transform *wire.TransformClient
	stopOnce  sync.Once
}

func newPlugin(h *Host, res Resolved, spec Spec) *Plugin {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Plugin{
		h:         h,
		res:       res,
		desc:      res.String(),
		arg:       configArg(spec),
		settings:  spec.Settings,
		log:       h.opts.Logger.With("plugin", res.LogName()),
		scrub:     scrubber(spec.Arg),
		ctx:       ctx,
		cancel:    cancel,
		launchSem: make(chan struct{}, 1),
	}
	if res.Addr == "" {
		for _, n := range h.opts.Insecure {
			if res.matches(n) {
				p.insecure = true
			}
		}
	}
	return p
}

// Name is the plugin's name in logs, e.g. "source.mongodb".
func (p *Plugin) Name() string { return p.res.LogName() }

// Resolved says what runs the plugin.
func (p *Plugin) Resolved() Resolved { return p.res }

// String describes the plugin, e.g. `source plugin "mongodb" (built-in)`.
func (p *Plugin) String() string { return p.desc }

// Info is the connector's Info as read after the latest (re)configuration;
// zero for a transform.
func (p *Plugin) Info() spi.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

// Restarts is the number of relaunch attempts since Start.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// PID is the pid of the running plugin process, or 0 (network connector,
// or no live process).
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.runner == nil {
		return 0
	}
	return p.cur.runner.pid()
}

// Stderr returns the last lines (at most 20, redacted) the latest plugin
// process wrote to stderr.
func (p *Plugin) Stderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return nil
	}
	return p.last.stderr.Lines()
}

// Kill sends SIGKILL to the plugin process and waits for it to exit, without
// telling the supervisor: the next call notices. It is meant for tests.
func (p *Plugin) Kill() error {
	p.mu.Lock()
	inst := p.cur
	p.mu.Unlock()
	if inst == nil || inst.runner == nil {
		return fmt.Errorf("pluginhost: %s has no running process", p.desc)
	}
	if err := inst.runner.Kill(context.Background()); err != nil {
		return err
	}
	if !inst.runner.waitExit(5 * time.Second) {
		return fmt.Errorf("pluginhost: %s: process did not exit after SIGKILL", p.desc)
	}
	return nil
}

// Close stops the plugin: a graceful shutdown through go-plugin's
// controller, SIGKILL after Options.ShutdownTimeout. Calls made afterwards
// fail with ErrClosed (spi.KindCanceled).
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	inst := p.cur
	p.cur = nil
	p.mu.Unlock()
	p.cancel()
	p.launchSem <- struct{}{} // wait for a launch in progress to give up
	<-p.launchSem
	if inst != nil {
		p.log.Debug("stopping plugin")
		inst.stop(p.h.opts.ShutdownTimeout)
	}
	p.wg.Wait()
	p.h.forget(p)
	return nil
}

// start performs the first launch.
func (p *Plugin) start(ctx context.Context) error {
	select {
	case p.launchSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.launchSem }()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return closedErr()
	}
	if p.insecure {
		p.log.Warn("plugin runs without mutual TLS (insecure opt-out); its socket is in a private directory",
			"dir", p.h.dir)
	}
	attrs := []any{"arg", p.scrub(p.arg)}
	switch {
	case p.res.Addr != "":
		attrs = append(attrs, "addr", p.res.Addr)
	case p.res.Builtin:
		attrs = append(attrs, "builtin", true)
	default:
		attrs = append(attrs, "path", p.res.Path)
	}
	p.log.Info("starting plugin", attrs...)
	begin := time.Now()
	inst, info, err := p.launch(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		inst.stop(p.h.opts.ShutdownTimeout)
		return closedErr()
	}
	p.cur, p.last, p.info = inst, inst, info
	attrs = []any{"took", time.Since(begin).Round(time.Millisecond).String()}
	if pid := inst.pid(); pid != 0 {
		attrs = append(attrs, "pid", pid)
	}
	if inst.connector != nil {
		attrs = append(attrs, "dataset", info.ID, "db_type", info.DBType, "version", info.Version)
	}
	p.log.Info("plugin ready", attrs...)
	return nil
}

// launch starts one instance and configures it. The returned error is a
// *PluginError for launch failures and the Configure/Info error otherwise.
func (p *Plugin) launch(ctx context.Context) (*instance, spi.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	var inst *instance
	var err error
	if p.res.Addr != "" {
		inst, err = p.dialNetwork(ctx)
	} else {
		inst, err = p.startProcess(ctx)
	}
	p.mu.Lock()
	if inst != nil {
		p.last = inst
	}
	p.mu.Unlock()
	if err != nil {
		return nil, spi.Info{}, err
	}
	info, err := p.configure(ctx, inst)
	if err != nil {
		inst.stop(p.h.opts.ShutdownTimeout)
		return nil, spi.Info{}, err
	}
	return inst, info, nil
}

func (p *Plugin) startProcess(ctx context.Context) (*instance, error) {
	opts := p.h.opts
	ring := newStderrRing(p.scrub)
	var run atomic.Pointer[procRunner]
	var socketDir atomic.Pointer[string]
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.VersionedPlugins(),
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, dir string) (runner.Runner, error) {
			socketDir.Store(&dir)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// cmd.Env holds only go-plugin's variables (SkipHostEnv); they
			// go last so they win.
			r, err := newProcRunner(p.res.Path, p.res.Args, append(pluginEnv(opts, p.arg), cmd.Env...))
			if err != nil {
				return nil, err
			}
			run.Store(r)
			return r, nil
		},
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         !p.insecure,
		GRPCDialOptions:  wire.DialOptions(),
		Logger:           newHCLogAdapter(p.log, p.res.LogName(), p.scrub),
		Stderr:           ring,
		SyncStdout:       p.stdioWriter("stdout", ring),
		SyncStderr:       p.stdioWriter("stderr", ring),
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: p.h.dir},
		StartTimeout:     opts.StartTimeout,
	})
	// go-plugin's handshake wait ignores ctx: kill the process to abort it.
	abort := context.AfterFunc(ctx, func() {
		if r := run.Load(); r != nil {
			_ = r.Kill(context.Background())
		}
	})
	defer abort()
	begin := time.Now()
	rpc, err := client.Client()
	if err != nil {
		client.Kill() // reaps the process
		// go-plugin leaves the socket directory behind when the process
		// never started.
		if d := socketDir.Load(); d != nil {
			_ = os.RemoveAll(*d)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: start aborted: %w", p.desc, ctx.Err())
		}
		return &instance{stderr: ring}, p.launchError(err, run.Load(), ring, time.Since(begin))
	}
	r := run.Load()
	inst := &instance{client: client, runner: r, stderr: ring}
	fail := func(problem error, detail string, cause error) (*instance, error) {
		inst.kill()
		return inst, &PluginError{Plugin: p.desc, Problem: problem, Detail: detail, Err: cause, Stderr: ring.Lines()}
	}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return fail(ErrHandshake, "the plugin does not speak gRPC", nil)
	}
	inst.conn = gc.Conn
	inst.health = healthpb.NewHealthClient(gc.Conn)
	raw, err := rpc.Dispense(p.dispenseName())
	if err != nil {
		return fail(ErrHandshake, "", err)
	}
	switch c := raw.(type) {
	case *wire.ConnectorClient:
		inst.connector = c
	case *wire.TransformClient:
		inst.transform = c
	default:
		return fail(ErrHandshake, fmt.Sprintf("unexpected plugin client %T", raw), nil)
	}
	if !p.insecure {
		if line, _ := r.stdout.first(); !offersCert(line) {
			return fail(ErrHandshake, fmt.Sprintf("the plugin offered no TLS certificate but mutual TLS is required "+
				"(allow it explicitly with --plugin-insecure %s)", p.res.Name), nil)
		}
	}
	if err := inst.ping(ctx, opts.StartTimeout); err != nil {
		if ctx.Err() != nil {
			inst.kill()
			return inst, fmt.Errorf("%s: start aborted: %w", p.desc, ctx.Err())
		}
		return fail(ErrConnect, "", err)
	}
	return inst, nil
}

// stdioWriter receives what the plugin writes to its os.Stdout or
// os.Stderr after go-plugin redirected them (its stdio stream): each line is
// logged at Info and kept for error messages.
func (p *Plugin) stdioWriter(stream string, ring *stderrRing) io.Writer {
	return &lineWriter{fn: func(line string) {
		line = p.scrub(line)
		ring.pushLine(line)
		p.log.Info(line, "stream", stream)
	}}
}

func (p *Plugin) dialNetwork(ctx context.Context) (*instance, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, wire.DialOptions()...)
	conn, err := grpc.NewClient(p.res.Addr, opts...)
	if err != nil {
		return nil, &PluginError{Plugin: p.desc, Problem: ErrConnect, Err: err}
	}
	inst := &instance{conn: conn, ownConn: true, health: healthpb.NewHealthClient(conn), stderr: newStderrRing(p.scrub)}
	if p.res.Role == RoleTransform {
		inst.transform = wire.NewTransformClient(conn)
	} else {
		inst.connector = wire.NewConnectorClient(conn)
	}
	if err := inst.ping(ctx, p.h.opts.StartTimeout); err != nil {
		inst.stop(0)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: connect aborted: %w", p.desc, ctx.Err())
		}
		return nil, &PluginError{Plugin: p.desc, Problem: ErrConnect, Err: err}
	}
	return inst, nil
}

func (p *Plugin) dispenseName() string {
	if p.res.Role == RoleTransform {
		return wire.TransformPluginName
	}
	return wire.ConnectorPluginName
}

// offersCert reports whether a handshake line carries a server certificate
// in its 6th field (go-plugin ignores fields of 50 bytes or less).
func offersCert(line string) bool {
	parts := strings.Split(line, "|")
	return len(parts) >= 6 && len(parts[5]) > 50
}

// launchError explains why go-plugin could not start the plugin, from what
// the runner saw rather than from go-plugin's message text.
func (p *Plugin) launchError(err error, r *procRunner, ring *stderrRing, took time.Duration) error {
	pe := &PluginError{Plugin: p.desc, Stderr: ring.Lines()}
	if r == nil || !r.started() {
		pe.Problem, pe.Err = ErrStart, err
		return pe
	}
	line, sawOutput := r.stdout.first()
	switch {
	case !sawOutput && took >= p.h.opts.StartTimeout:
		pe.Problem, pe.Detail = ErrStartTimeout, fmt.Sprintf("(waited %s)", p.h.opts.StartTimeout)
	case !sawOutput:
		pe.Problem, pe.Detail = ErrExitedEarly, "("+r.exitStatus()+")"
	case strings.Count(line, "|") < 3:
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		pe.Problem = ErrHandshake
		pe.Detail = fmt.Sprintf("unexpected output on stdout %q (want a go-plugin handshake line such as "+
			"1|1|unix|/path/to.sock|grpc|<cert>; is it a dsync plugin?)", p.scrub(line))
	default:
		pe.Problem, pe.Err = ErrHandshake, errors.New(p.scrub(oneLine(firstLine(err.Error()))))
	}
	return pe
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// configure calls Configure then, for connectors, Info.
func (p *Plugin) configure(ctx context.Context, inst *instance) (spi.Info, error) {
	if inst.transform != nil {
		if err := inst.transform.Configure(ctx, p.arg); err != nil {
			return spi.Info{}, p.wrapf(err, "configure")
		}
		return spi.Info{}, nil
	}
	if err := inst.connector.Configure(ctx, spi.Config{URL: p.arg, Settings: p.settings}); err != nil {
		return spi.Info{}, p.wrapf(err, "configure")
	}
	info, err := inst.connector.Info(ctx)
	if err != nil {
		return spi.Info{}, p.wrapf(err, "info")
	}
	return info, nil
}

// callError is a plugin's error with a scrubbed message; it unwraps to the
// original so that spi kinds and wire.RemoteError survive.
type callError struct {
	msg string
	err error
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// wrapf prefixes err with the plugin's description and op, scrubbed.
func (p *Plugin) wrapf(err error, op string) error {
	return &callError{msg: p.desc + ": " + op + ": " + p.scrub(err.Error()), err: err}
}

// scrubErr removes secrets from err's message, keeping err when it has
// none.
func (p *Plugin) scrubErr(err error) error {
	msg := err.Error()
	if s := p.scrub(msg); s != msg {
		return &callError{msg: s, err: err}
	}
	return err
}

func (p *Plugin) maxRestarts() int { return max(p.h.opts.MaxRestarts, 0) }

// acquire returns the live instance, relaunching a dead one first.
func (p *Plugin) acquire(ctx context.Context) (*instance, error) {
	for {
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			return nil, closedErr()
		case p.fatal != nil:
			err := p.fatal
			p.mu.Unlock()
			return nil, err
		case p.cur != nil:
			inst := p.cur
			p.mu.Unlock()
			return inst, nil
		}
		p.mu.Unlock()
		select {
		case p.launchSem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, closedErr()
		}
		err := p.restart(ctx)
		<-p.launchSem
		if err != nil {
			return nil, err
		}
	}
}

// restart relaunches a dead plugin after a backoff. It returns nil when
// acquire should look again (relaunched, or someone else did).
func (p *Plugin) restart(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.fatal != nil || p.cur != nil {
		p.mu.Unlock()
		return nil
	}
	p.consecutive++
	p.restarts++
	n := p.consecutive
	p.mu.Unlock()

	delay := p.backoff(n)
	p.log.Info("restarting plugin", "attempt", n, "max", p.maxRestarts(), "after", delay.Round(time.Millisecond).String())
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		p.mu.Lock()
		p.consecutive--
		p.restarts--
		p.mu.Unlock()
		return ctx.Err()
	case <-p.ctx.Done():
		t.Stop()
		return closedErr()
	}

	inst, info, err := p.launch(ctx)
	if err != nil {
		if p.ctx.Err() != nil {
			return closedErr()
		}
		if ctx.Err() != nil {
			return err
		}
		p.log.Warn("plugin restart failed", "attempt", n, "err", p.scrub(err.Error()))
		p.mu.Lock()
		defer p.mu.Unlock()
		if n >= p.maxRestarts() {
			p.fatal = spi.Fatal(&PluginError{Plugin: p.desc, Problem: ErrRestartsExhausted,
				Detail: fmt.Sprintf("%d consecutive restarts without a successful call, the last one failed", n),
				Err:    &callError{msg: strings.TrimPrefix(err.Error(), p.desc+": "), err: err}})
			return p.fatal
		}
		var pe *PluginError
		if errors.As(err, &pe) {
			return spi.Retryable(err)
		}
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.stopAsync(inst)
		return closedErr()
	}
	if prev := p.info.ID; inst.connector != nil && prev != "" && info.ID != prev {
		p.stopAsync(inst)
		p.fatal = spi.Fatal(&PluginError{Plugin: p.desc, Problem: ErrDatasetChanged,
			Detail: fmt.Sprintf("was %q, now %q", prev, info.ID)})
		return p.fatal
	}
	p.cur, p.info = inst, info
	p.log.Info("plugin restarted", "attempt", n, "pid", inst.pid())
	return nil
}

// backoff is the delay before the nth consecutive restart: RestartBackoff
// doubled n-1 times, capped at MaxRestartBackoff, with jitter in [d/2, d].
func (p *Plugin) backoff(n int) time.Duration {
	d, limit := p.h.opts.RestartBackoff, p.h.opts.MaxRestartBackoff
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// done classifies the outcome of a call on inst: success resets the
// restart counter; a failure of a dead instance schedules a restart and is
// returned marked retryable (or fatal once restarts are exhausted); other
// errors are returned, scrubbed.
func (p *Plugin) done(ctx context.Context, inst *instance, err error) error {
	if err == nil {
		p.succeeded(inst)
		return nil
	}
	// A call the caller cancelled says nothing about the plugin; one that
	// ran out of time may have hit a hung plugin, so check it.
	if errors.Is(ctx.Err(), context.Canceled) || inst.alive() {
		return p.scrubErr(err)
	}
	return p.died(inst, err)
}

func (p *Plugin) succeeded(inst *instance) {
	p.mu.Lock()
	if p.cur == inst {
		p.consecutive = 0
	}
	p.mu.Unlock()
}

func (p *Plugin) died(inst *instance, err error) error {
	how := "not answering"
	if inst.runner != nil && inst.runner.waitExit(500*time.Millisecond) {
		how = inst.runner.exitStatus()
	}
	cause := p.scrubErr(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return closedErr()
	}
	if p.cur == inst {
		p.cur = nil
		if inst.runner != nil && !inst.runner.hasExited() {
			_ = inst.runner.Kill(context.Background()) // alive but not answering
		}
		p.stopAsync(inst)
		p.log.Warn("plugin died", "status", how, "err", cause.Error(), "stderr", strings.Join(inst.stderr.Lines(), " | "))
		if p.consecutive >= p.maxRestarts() {
			p.fatal = spi.Fatal(&PluginError{Plugin: p.desc, Problem: ErrRestartsExhausted,
				Detail: fmt.Sprintf("died (%s) after %d consecutive restarts without a successful call", how, p.consecutive),
				Err:    cause, Stderr: inst.stderr.Lines()})
		}
	}
	if p.fatal != nil {
		return p.fatal
	}
	return spi.Retryable(&PluginError{Plugin: p.desc, Problem: ErrPluginDied, Detail: "(" + how + "); it is restarted on the next call", Err: cause})
}

// stopAsync stops inst in the background; Close waits for it. p.mu is held.
func (p *Plugin) stopAsync(inst *instance) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		inst.stop(p.h.opts.ShutdownTimeout)
	}()
}

func (i *instance) pid() int {
	if i.runner == nil {
		return 0
	}
	return i.runner.pid()
}

// ping checks the plugin's grpc.health.v1 service "plugin". A network
// connector without a health service counts as healthy.
func (i *instance) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := i.health.Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
	switch {
	case err != nil && i.client == nil && status.Code(err) == codes.Unimplemented:
		return nil
	case err != nil:
		return err
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return fmt.Errorf("health check: %s", resp.GetStatus())
	}
	return nil
}

// alive reports whether the instance still answers.
func (i *instance) alive() bool {
	if i.runner != nil && i.runner.hasExited() {
		return false
	}
	return i.ping(context.Background(), probeTimeout) == nil
}

// kill stops an instance that cannot be shut down gracefully (it failed to
// start): SIGKILL first, then the usual cleanup.
func (i *instance) kill() {
	if i.runner != nil {
		_ = i.runner.Kill(context.Background())
	}
	i.stop(0)
}

// stop shuts the instance down: go-plugin's graceful Kill (controller
// Shutdown, then SIGKILL after 2s), bounded by timeout, after which the
// process is killed outright.
func (i *instance) stop(timeout time.Duration) {
	i.stopOnce.Do(func() {
		if i.client == nil {
			if i.ownConn && i.conn != nil {
				i.conn.Close()
			}
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			i.client.Kill()
		}()
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = i.runner.Kill(context.Background())
			<-done
		}
	})
}
