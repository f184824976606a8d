package pluginhost

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Discovered is one plugin Discover found.
type Discovered struct {
	// Name is the scheme or transform name, e.g. "mongodb".
	Name string
	// Kind is connector or transform.
	Kind PluginKind
	// Path is the executable (Options.Self for built-ins).
	Path string
	// Builtin is set for plugins served by the dsync executable.
	Builtin bool
	// Shadowed is set when an earlier entry with the same kind and name
	// wins resolution (built-ins, then the plugin directory, then PATH in
	// order).
	Shadowed bool
}

// Discover lists the plugins Resolve can find: the built-ins, then
// dsync-connector-* and dsync-transform-* executables in opts.PluginDir and
// in each PATH directory, in resolution order. Unreadable directories and
// non-executable files are skipped.
func Discover(opts Options) []Discovered {
	opts.EnsureDefaults()
	var out []Discovered
	seen := map[string]bool{}
	add := func(d Discovered) {
		key := string(d.Kind) + "/" + d.Name
		d.Shadowed = seen[key]
		seen[key] = true
		out = append(out, d)
	}
	for _, b := range sorted(opts.Builtins.Connectors) {
		add(Discovered{Name: b, Kind: KindConnector, Path: opts.Self, Builtin: true})
	}
	for _, b := range sorted(opts.Builtins.Transforms) {
		add(Discovered{Name: b, Kind: KindTransform, Path: opts.Self, Builtin: true})
	}
	dirs := filepath.SplitList(os.Getenv("PATH"))
	if opts.PluginDir != "" {
		dirs = append([]string{opts.PluginDir}, dirs...)
	}
	visited := map[string]bool{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		if visited[dir] {
			continue
		}
		visited[dir] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			var kind PluginKind
			var name string
			switch n := e.Name(); {
			case strings.HasPrefix(n, ConnectorPrefix):
				kind, name = KindConnector, strings.TrimPrefix(n, ConnectorPrefix)
			case strings.HasPrefix(n, TransformPrefix):
				kind, name = KindTransform, strings.TrimPrefix(n, TransformPrefix)
			default:
				continue
			}
			p := filepath.Join(dir, e.Name())
			if name == "" || checkExecutable(p) != nil {
				continue
			}
			add(Discovered{Name: name, Kind: kind, Path: p})
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
