package pluginhost

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"
)

// Builtins lists what the dsync executable serves itself.
type Builtins struct {
	// Connectors are URL schemes, e.g. "mongodb", "postgres", "file".
	Connectors []string
	// Transforms are transform names.
	Transforms []string
}

// Options configures a Host. The zero value is usable after EnsureDefaults;
// field docs state each default.
type Options struct {
	// Self is the dsync executable that serves built-ins, run as
	// `Self plugin serve connector <scheme>` or
	// `Self plugin serve transform <name>`. Default: os.Executable().
	Self string
	// Builtins are the schemes and transform names Self serves. Default:
	// none (every plugin is looked up as an executable).
	Builtins Builtins
	// PluginDir is searched for dsync-connector-<scheme> and
	// dsync-transform-<name> before PATH (--plugin-dir). Default: none.
	PluginDir string
	// Insecure names plugins that may run without AutoMTLS
	// (--plugin-insecure), by scheme or transform name, executable base
	// name or path. A warning is logged for each. Default: none.
	Insecure []string
	// Env is added to the environment of plugin processes, which otherwise
	// inherit the host's. It must not hold connection strings. Default:
	// none.
	Env []string
	// Logger receives the host's log and the plugins' log lines, with a
	// "plugin" attribute naming the plugin. Default: slog.Default().
	Logger *slog.Logger
	// SocketDir is where the host creates its private (0700) directory for
	// plugin unix sockets; stale directories of dead dsync processes found
	// there are removed. Keep it short: a unix socket path is limited to
	// about 100 bytes. Default: os.TempDir().
	SocketDir string
	// StartTimeout bounds the wait for a plugin's handshake line and for
	// its gRPC server to answer. Default: 20s.
	StartTimeout time.Duration
	// ShutdownTimeout bounds a graceful plugin shutdown before the process
	// is killed. Default: 5s.
	ShutdownTimeout time.Duration
	// MaxRestarts is how many consecutive restarts a plugin gets without a
	// successful call in between before its failure is fatal. A negative
	// value disables restarts. Default (zero): 5.
	MaxRestarts int
	// RestartBackoff is the delay before the first restart; it doubles for
	// each consecutive restart, with jitter. Default: 200ms.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps the restart delay. Default: 15s.
	MaxRestartBackoff time.Duration
}

// Defaults.
const (
	DefaultStartTimeout      = 20 * time.Second
	DefaultShutdownTimeout   = 5 * time.Second
	DefaultMaxRestarts       = 5
	DefaultRestartBackoff    = 200 * time.Millisecond
	DefaultMaxRestartBackoff = 15 * time.Second
)

// EnsureDefaults fills unset fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Self == "" {
		if exe, err := os.Executable(); err == nil {
			o.Self = exe
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SocketDir == "" {
		o.SocketDir = os.TempDir()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.MaxRestarts == 0 {
		o.MaxRestarts = DefaultMaxRestarts
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = DefaultRestartBackoff
	}
	if o.MaxRestartBackoff <= 0 {
		o.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if o.MaxRestartBackoff < o.RestartBackoff {
		o.MaxRestartBackoff = o.RestartBackoff
	}
	return o
}

var (
	schemeRE        = regexp.MustCompile(`^[a-z][a-z0-9+.\-]*$`)
	transformNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.\-]*$`)
)

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	if o.Self == "" && (len(o.Builtins.Connectors) > 0 || len(o.Builtins.Transforms) > 0) {
		return fmt.Errorf("%w: Self (the dsync executable) is unknown but built-ins are configured", ErrInvalidOptions)
	}
	for _, s := range o.Builtins.Connectors {
		if !schemeRE.MatchString(s) || s == grpcScheme {
			return fmt.Errorf("%w: built-in connector %q is not a lower-case URL scheme", ErrInvalidOptions, s)
		}
	}
	for _, s := range o.Builtins.Transforms {
		if !transformNameRE.MatchString(s) {
			return fmt.Errorf("%w: built-in transform %q is not a valid name", ErrInvalidOptions, s)
		}
	}
	if o.StartTimeout < 0 || o.ShutdownTimeout < 0 || o.RestartBackoff < 0 || o.MaxRestartBackoff < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalidOptions)
	}
	return nil
}
