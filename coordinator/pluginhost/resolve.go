package pluginhost

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/dsyncio/dsync/internal/redact"
)

// Role is what a plugin is started for.
type Role string

// Roles.
const (
	RoleSource    Role = "source"
	RoleSink      Role = "sink"
	RoleTransform Role = "transform"
)

// PluginKind is the protocol a plugin serves.
type PluginKind string

// Plugin kinds.
const (
	KindConnector PluginKind = "connector"
	KindTransform PluginKind = "transform"
)

func (r Role) kind() PluginKind {
	if r == RoleTransform {
		return KindTransform
	}
	return KindConnector
}

func (r Role) valid() bool { return r == RoleSource || r == RoleSink || r == RoleTransform }

// Executable name prefixes of external plugins.
const (
	ConnectorPrefix = "dsync-connector-"
	TransformPrefix = "dsync-transform-"
)

// grpcScheme selects a connector already serving on the network.
const grpcScheme = "grpc"

// Spec says which plugin to start and how to configure it.
type Spec struct {
	// Role is source, sink or transform.
	Role Role
	// Arg is the user's argument: a connection string for connectors (it
	// may hold secrets and is only ever sent through Configure), or
	// "name:spec" for transforms.
	Arg string
	// ExplicitPath is the executable named by --source-plugin,
	// --sink-plugin or --transform-plugin; Arg is then passed to it
	// verbatim. A name without a slash that is not a file in the working
	// directory is looked up on PATH.
	ExplicitPath string
	// Settings are passed to a connector's Configure with the URL.
	Settings map[string]string
}

// Resolved is the outcome of Resolve. It holds no secret.
type Resolved struct {
	// Role is the Spec's role.
	Role Role
	// Name is the scheme or transform name, the base name of an explicit
	// executable, or host:port for a network connector.
	Name string
	// Builtin is set when the dsync executable serves the plugin.
	Builtin bool
	// Path is the executable to run (Options.Self for built-ins); empty
	// for a network connector.
	Path string
	// Args are the arguments after Path.
	Args []string
	// Addr is host:port of a network (grpc://) connector.
	Addr string
}

// String describes the plugin for messages, e.g.
// `source plugin "dsync-connector-foo" (/usr/local/bin/dsync-connector-foo)`,
// `sink plugin "mongodb" (built-in)`, `source plugin "10.0.0.5:7000" (grpc)`.
func (r Resolved) String() string {
	switch {
	case r.Builtin:
		return fmt.Sprintf("%s plugin %q (built-in)", r.Role, r.Name)
	case r.Addr != "":
		return fmt.Sprintf("%s plugin %q (grpc)", r.Role, r.Addr)
	}
	return fmt.Sprintf("%s plugin %q (%s)", r.Role, filepath.Base(r.Path), r.Path)
}

// LogName is the plugin's name in logs: role.name, e.g. "source.mongodb".
func (r Resolved) LogName() string { return string(r.Role) + "." + r.Name }

// matches reports whether name designates this plugin (for --plugin-insecure).
func (r Resolved) matches(name string) bool {
	return name != "" && (name == r.Name || (r.Path != "" && !r.Builtin && (name == r.Path || name == filepath.Base(r.Path))))
}

var connSchemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.\-]*):`)

// Resolve decides which plugin serves spec, following DESIGN §1: an
// explicit path wins; then a connection string's scheme (a transform's
// name) selects a built-in, else a dsync-connector-<scheme>
// (dsync-transform-<name>) executable in opts.PluginDir, then on PATH;
// grpc://host:port selects a connector already serving on the network.
// Nothing is started. Errors are one line and never contain a secret.
func Resolve(opts Options, spec Spec) (Resolved, error) {
	opts.EnsureDefaults()
	if !spec.Role.valid() {
		return Resolved{}, fmt.Errorf("%w %q: want source, sink or transform", ErrInvalidRole, spec.Role)
	}
	if spec.ExplicitPath != "" {
		return resolveExplicit(spec)
	}
	if spec.Role == RoleTransform {
		return resolveTransform(opts, spec)
	}
	return resolveConnector(opts, spec)
}

func resolveExplicit(spec Spec) (Resolved, error) {
	p := spec.ExplicitPath
	if !strings.ContainsRune(p, filepath.Separator) {
		if _, err := os.Stat(p); err != nil {
			if lp, lerr := exec.LookPath(p); lerr == nil {
				p = lp
			}
		}
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if err := checkExecutable(p); err != nil {
		return Resolved{}, fmt.Errorf("%w: %s plugin %s%s", errors.Unwrap(err), spec.Role, p, err.(*execError).why)
	}
	return Resolved{Role: spec.Role, Name: filepath.Base(p), Path: p}, nil
}

func resolveConnector(opts Options, spec Spec) (Resolved, error) {
	m := connSchemeRE.FindStringSubmatch(spec.Arg)
	if m == nil {
		return Resolved{}, fmt.Errorf("%w %q for the %s: want scheme://..., e.g. mongodb://host/db", ErrMalformedURL, redact.URL(spec.Arg), spec.Role)
	}
	scheme := strings.ToLower(m[1])
	if scheme == grpcScheme {
		u, err := url.Parse(spec.Arg)
		if err != nil || u.Host == "" {
			return Resolved{}, fmt.Errorf("%w %q for the %s: want grpc://host:port", ErrMalformedURL, redact.URL(spec.Arg), spec.Role)
		}
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return Resolved{}, fmt.Errorf("%w %q for the %s: want grpc://host:port", ErrMalformedURL, redact.URL(spec.Arg), spec.Role)
		}
		return Resolved{Role: spec.Role, Name: u.Host, Addr: u.Host}, nil
	}
	if slices.Contains(opts.Builtins.Connectors, scheme) {
		return Resolved{Role: spec.Role, Name: scheme, Builtin: true, Path: opts.Self,
			Args: []string{"plugin", "serve", "connector", scheme}}, nil
	}
	path, err := findExecutable(opts, ConnectorPrefix+scheme)
	if err != nil {
		if !errors.Is(err, ErrPluginNotFound) {
			return Resolved{}, fmt.Errorf("%w: %s plugin %s%s", errors.Unwrap(err), spec.Role, filepath.Join(opts.PluginDir, ConnectorPrefix+scheme), err.(*execError).why)
		}
		return Resolved{}, fmt.Errorf("%w %q in %q: not a built-in connector (%s) and no executable %s%s %s",
			ErrUnknownScheme, scheme, redact.URL(spec.Arg), listOrNone(opts.Builtins.Connectors), ConnectorPrefix, scheme, searchedWhere(opts))
	}
	return Resolved{Role: spec.Role, Name: scheme, Path: path}, nil
}

func resolveTransform(opts Options, spec Spec) (Resolved, error) {
	name, _, _ := strings.Cut(spec.Arg, ":")
	name = strings.ToLower(name)
	if !transformNameRE.MatchString(name) {
		return Resolved{}, fmt.Errorf("%w %q: want NAME or NAME:SPEC", ErrMalformedTransform, redact.URL(spec.Arg))
	}
	if slices.Contains(opts.Builtins.Transforms, name) {
		return Resolved{Role: spec.Role, Name: name, Builtin: true, Path: opts.Self,
			Args: []string{"plugin", "serve", "transform", name}}, nil
	}
	path, err := findExecutable(opts, TransformPrefix+name)
	if err != nil {
		if !errors.Is(err, ErrPluginNotFound) {
			return Resolved{}, fmt.Errorf("%w: transform plugin %s%s", errors.Unwrap(err), filepath.Join(opts.PluginDir, TransformPrefix+name), err.(*execError).why)
		}
		return Resolved{}, fmt.Errorf("%w %q: not a built-in transform (%s) and no executable %s%s %s",
			ErrUnknownTransform, name, listOrNone(opts.Builtins.Transforms), TransformPrefix, name, searchedWhere(opts))
	}
	return Resolved{Role: spec.Role, Name: name, Path: path}, nil
}

// configArg is what Configure receives for spec: the connection string, or
// for a transform resolved by name the text after "name:".
func configArg(spec Spec) string {
	if spec.Role != RoleTransform || spec.ExplicitPath != "" {
		return spec.Arg
	}
	_, s, _ := strings.Cut(spec.Arg, ":")
	return s
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	s := slices.Clone(names)
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func searchedWhere(opts Options) string {
	if opts.PluginDir != "" {
		return fmt.Sprintf("in the plugin directory %s or on PATH", opts.PluginDir)
	}
	return "on PATH (set a plugin directory with --plugin-dir)"
}

// findExecutable looks for exe in opts.PluginDir, then on PATH. A file in
// the plugin directory that is not executable is an error rather than being
// skipped, since the user clearly meant it.
func findExecutable(opts Options, exe string) (string, error) {
	if opts.PluginDir != "" {
		p := filepath.Join(opts.PluginDir, exe)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrPluginNotFound) {
			return "", err
		}
	}
	p, err := exec.LookPath(exe)
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return "", &execError{sentinel: ErrPluginNotFound}
	}
	if abs, aerr := filepath.Abs(p); aerr == nil {
		p = abs
	}
	return p, nil
}

// execError is checkExecutable's error: a sentinel and why.
type execError struct {
	sentinel error
	why      string
}

func (e *execError) Error() string { return e.sentinel.Error() + e.why }
func (e *execError) Unwrap() error { return e.sentinel }

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &execError{ErrPluginNotFound, ": no such file"}
	case err != nil:
		return &execError{ErrPluginNotFound, ": " + err.Error()}
	case fi.IsDir():
		return &execError{ErrNotExecutable, " is a directory"}
	case fi.Mode().Perm()&0o111 == 0:
		return &execError{ErrNotExecutable, fmt.Sprintf(" has mode %v (chmod +x it)", fi.Mode().Perm())}
	}
	return nil
}
