package pluginhost

import (
	"errors"
	"strings"
)

// Resolution errors, returned by Resolve and Host.Start before anything runs.
var (
	// ErrUnknownScheme is returned when a connection string's scheme is
	// neither a built-in connector nor a dsync-connector-<scheme>
	// executable in the plugin directory or on PATH.
	ErrUnknownScheme = errors.New("pluginhost: unknown scheme")
	// ErrUnknownTransform is returned when a transform name is neither a
	// built-in nor a dsync-transform-<name> executable.
	ErrUnknownTransform = errors.New("pluginhost: unknown transform")
	// ErrMalformedURL is returned when a connection string has no scheme,
	// or a grpc:// address has no host:port.
	ErrMalformedURL = errors.New("pluginhost: malformed connection string")
	// ErrMalformedTransform is returned when a transform argument is not
	// NAME or NAME:SPEC.
	ErrMalformedTransform = errors.New("pluginhost: malformed transform")
	// ErrPluginNotFound is returned when an explicit plugin path does not
	// exist.
	ErrPluginNotFound = errors.New("pluginhost: plugin not found")
	// ErrNotExecutable is returned when a plugin file exists but cannot be
	// executed (no execute permission, or a directory).
	ErrNotExecutable = errors.New("pluginhost: plugin is not executable")
	// ErrInvalidRole is returned for a Spec whose Role is not source, sink
	// or transform.
	ErrInvalidRole = errors.New("pluginhost: invalid plugin role")
	// ErrInvalidOptions is returned by Options.Validate.
	ErrInvalidOptions = errors.New("pluginhost: invalid options")
)

// Launch and supervision errors. They reach callers inside a *PluginError,
// which names the plugin and carries its last stderr lines; test them with
// errors.Is.
var (
	// ErrStart is returned when the plugin process cannot be started at
	// all (fork/exec failed).
	ErrStart = errors.New("pluginhost: cannot start")
	// ErrExitedEarly is returned when the plugin exits before it prints
	// its handshake line.
	ErrExitedEarly = errors.New("pluginhost: exited before handshake")
	// ErrHandshake is returned when the plugin prints something other than
	// a valid go-plugin handshake line, or an incompatible one.
	ErrHandshake = errors.New("pluginhost: handshake failed")
	// ErrStartTimeout is returned when the plugin prints no handshake line
	// within Options.StartTimeout.
	ErrStartTimeout = errors.New("pluginhost: no handshake line")
	// ErrConnect is returned when the handshake succeeded but the host
	// cannot reach the plugin's gRPC server (bad socket, TLS refused, no
	// health service).
	ErrConnect = errors.New("pluginhost: connect failed")
	// ErrPluginDied is returned, marked retryable, by a call that failed
	// because the plugin process died or stopped answering; the plugin is
	// restarted on the next call.
	ErrPluginDied = errors.New("pluginhost: plugin died")
	// ErrRestartsExhausted is returned, marked fatal, once the plugin
	// failed Options.MaxRestarts times after restarts without a single
	// successful call in between.
	ErrRestartsExhausted = errors.New("pluginhost: gave up restarting")
	// ErrDatasetChanged is returned, marked fatal, when a restarted
	// connector reports a different dataset id than before.
	ErrDatasetChanged = errors.New("pluginhost: dataset id changed across a restart")
	// ErrAlreadyConfigured is returned, marked failed-precondition, by
	// Configure on a supervised client with a configuration different from
	// the one it was started with.
	ErrAlreadyConfigured = errors.New("pluginhost: plugin is already configured differently")
	// ErrClosed is returned, marked canceled, by calls on a closed Plugin
	// or Host.
	ErrClosed = errors.New("pluginhost: closed")
)

// PluginError is a launch or supervision failure of one plugin. Its message
// is one line: `source plugin "dsync-connector-foo" (/path): handshake
// failed: <detail>: <cause>; last stderr: <line> | <line>`.
type PluginError struct {
	// Plugin describes the plugin, e.g. `sink plugin "mongodb" (built-in)`.
	Plugin string
	// Problem is one of the launch and supervision sentinels above.
	Problem error
	// Detail is extra one-line context, e.g. "(exit status 3)".
	Detail string
	// Err is the underlying cause, if any.
	Err error
	// Stderr holds the plugin's last stderr lines, redacted.
	Stderr []string
}

func (e *PluginError) Error() string {
	var b strings.Builder
	b.WriteString(e.Plugin)
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Problem.Error(), "pluginhost: "))
	if e.Detail != "" {
		if strings.HasPrefix(e.Detail, "(") {
			b.WriteString(" ")
		} else {
			b.WriteString(": ")
		}
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(oneLine(e.Err.Error()))
	}
	if len(e.Stderr) > 0 {
		b.WriteString("; last stderr: ")
		b.WriteString(strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// Unwrap returns the problem sentinel and the cause.
func (e *PluginError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Problem}
	}
	return []error{e.Problem, e.Err}
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)), " ")
}
