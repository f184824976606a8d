// Package pluginhost resolves, launches, supervises and stops dsync plugins:
// connectors and transforms that run as hashicorp/go-plugin gRPC
// subprocesses, built-in or third-party alike (DESIGN §1).
//
// # Resolution
//
// [Resolve] maps a [Spec] to a [Resolved] plugin without starting anything:
//
//  1. Spec.ExplicitPath (--source-plugin, --sink-plugin, --transform-plugin)
//     names the executable; Spec.Arg is passed to its Configure verbatim.
//  2. Otherwise the connection string's scheme (for a transform "name:spec",
//     the name) selects a built-in listed in Options.Builtins, run as
//     `<Options.Self> plugin serve connector <scheme>` (or `transform
//     <name>`); else the executable dsync-connector-<scheme>
//     (dsync-transform-<name>) in Options.PluginDir, then on PATH.
//  3. grpc://host:port connects to a connector already serving the
//     protocol on the network: no subprocess, plaintext gRPC (run it on a
//     trusted network, or behind a tunnel or a mesh that provides TLS). The
//     full argument still goes to Configure.
//
// Errors are one line, start with "pluginhost:", wrap a sentinel of
// errors.go and never contain a secret. [Discover] lists what resolution can
// find, for `dsync connectors`.
//
// # Secrets
//
// The connection string reaches a plugin only through the Configure RPC:
// never in argv, and never in the environment (host environment entries that
// contain it, or one of its secrets, are not passed on). Everything the host
// logs or returns about a plugin — its arguments, its stderr, its error
// messages — goes through package redact first.
//
// # Launch
//
// Plugins run under go-plugin with the gRPC protocol only, AutoMTLS (turned
// off only for plugins named in Options.Insecure, with a warning), the
// handshake and plugin set of package wire, and 64 MiB messages. Unix
// sockets live in a 0700 directory the host creates in Options.SocketDir and
// removes on Close; directories left by dsync processes that died are
// removed by [New]. A plugin runs in its own process group, killed with it,
// so children it spawned do not outlive it. Its stdin is a pipe that reaches
// EOF when the host exits, and on Linux it gets SIGTERM when the host dies
// (parent-death signal), so no plugin outlives its host. The plugin's log lines (hclog
// JSON on stderr, as package wire writes them) reach Options.Logger with
// their level and a "plugin" attribute such as "source.mongodb"; go-plugin's
// own messages are logged at Debug. The last 20 stderr lines are kept for
// error messages.
//
// [Host.Start] launches, then calls Configure with Spec.Arg (and
// Spec.Settings) and, for a connector, Info. A plugin that cannot start
// fails with a *[PluginError] naming it, e.g.
//
//	source plugin "dsync-connector-foo" (/usr/local/bin/dsync-connector-foo): exited before handshake (exit status 3); last stderr: foo: missing libfoo.so
//
// A Configure error keeps its spi kind (an invalid connection string stays
// spi.KindInvalidArgument) and gets the plugin's description as a prefix.
//
// # Supervision
//
// [Plugin.Connector] and [Plugin.Transform] implement the spi interfaces by
// delegating to the current process. When a call fails (other than by the
// caller cancelling it), the host checks the plugin: if its process exited,
// or it does not answer a health check within 2s (it is then killed), the
// call's error is returned wrapped in ErrPluginDied and
// marked retryable, and the next call relaunches and reconfigures the plugin
// after a capped exponential backoff with jitter (Options.RestartBackoff,
// Options.MaxRestartBackoff); the caller retries from its checkpoint. Errors
// of a live plugin are returned as they are. A successful call resets the
// count of consecutive restarts; once a plugin has failed after
// Options.MaxRestarts consecutive restarts, every call fails with a fatal
// ErrRestartsExhausted naming the plugin and its last stderr lines. A
// restarted connector must report the same dataset id. A network
// connector is "restarted" by reconnecting and reconfiguring.
//
// [Plugin.Close] and [Host.Close] shut plugins down gracefully (go-plugin's
// controller Shutdown), killing any that do not exit within
// Options.ShutdownTimeout.
package pluginhost
