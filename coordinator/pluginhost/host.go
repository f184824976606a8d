package pluginhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/internal/spi"
)

// Host starts and supervises plugins. Its methods are safe for concurrent
// use.
type Host struct {
	opts Options
	log  *slog.Logger
	dir  string

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// New validates opts, removes socket directories left by dead dsync
// processes and creates the host's private socket directory.
func New(opts Options) (*Host, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Builtins.Connectors = lowerAll(opts.Builtins.Connectors)
	opts.Builtins.Transforms = lowerAll(opts.Builtins.Transforms)
	log := opts.Logger.With("component", "pluginhost")
	for _, d := range sweepStale(opts.SocketDir) {
		log.Debug("removed stale plugin socket directory", "dir", d)
	}
	dir, err := os.MkdirTemp(opts.SocketDir, fmt.Sprintf("%s%d-", socketDirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pluginhost: create socket directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pluginhost: create socket directory: %w", err)
	}
	return &Host{opts: opts, log: log, dir: dir, plugins: map[*Plugin]struct{}{}}, nil
}

func lowerAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

// Options returns the host's options with defaults filled in.
func (h *Host) Options() Options { return h.opts }

// SocketDir is the host's private directory for plugin unix sockets.
func (h *Host) SocketDir() string { return h.dir }

// Resolve is Resolve with the host's options.
func (h *Host) Resolve(spec Spec) (Resolved, error) { return Resolve(h.opts, spec) }

// Start resolves spec, launches the plugin, configures it with spec.Arg
// (and spec.Settings) and, for a connector, reads its Info. Errors are
// returned as they happen, without retries: launch failures as a
// *PluginError naming the plugin; Configure errors keep their spi kind (an
// invalid connection string stays spi.KindInvalidArgument) and get the
// plugin's description as a prefix. Cancelling ctx aborts the launch.
func (h *Host) Start(ctx context.Context, spec Spec) (*Plugin, error) {
	res, err := Resolve(h.opts, spec)
	if err != nil {
		return nil, err
	}
	p := newPlugin(h, res, spec)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, closedErr()
	}
	h.plugins[p] = struct{}{}
	h.mu.Unlock()
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	delete(h.plugins, p)
	h.mu.Unlock()
}

// Close stops every plugin the host started (gracefully, each within
// Options.ShutdownTimeout, then by SIGKILL) and removes the socket
// directory. Calls on those plugins fail with ErrClosed afterwards.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	ps := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.Close() })
	}
	wg.Wait()
	if err := os.RemoveAll(h.dir); err != nil {
		return fmt.Errorf("pluginhost: remove socket directory: %w", err)
	}
	return nil
}

// scrubber returns a function removing spec's secrets from text: the whole
// argument becomes its redacted form, and every secret found in it is
// masked wherever it appears.
func scrubber(arg string) func(string) string {
	secrets := redact.Secrets(arg)
	shown := redact.URL(arg)
	return func(s string) string {
		if len(arg) >= redact.MinSecretLen && shown != arg {
			s = strings.ReplaceAll(s, arg, shown)
		}
		return redact.String(s, secrets...)
	}
}

// pluginEnv is the environment of a plugin process: the host's, then
// Options.Env, without any entry that holds the connection string or one of
// its secrets.
func pluginEnv(opts Options, arg string) []string {
	secrets := redact.Secrets(arg)
	if len(arg) >= redact.MinSecretLen {
		secrets = append(secrets, arg)
	}
	var env []string
outer:
	for _, kv := range append(os.Environ(), opts.Env...) {
		_, v, _ := strings.Cut(kv, "=")
		for _, s := range secrets {
			if len(s) >= redact.MinSecretLen && strings.Contains(v, s) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

func closedErr() error { return &spi.Error{Kind: spi.KindCanceled, Err: ErrClosed} }
