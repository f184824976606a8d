package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/internal/version"
)

func TestConnectors(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{
		"dsync-connector-foo": 0o755,
		"dsync-connector-bar": 0o644, // not executable: not listed
		"dsync-transform-baz": 0o755,
		"other-tool":          0o755,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 1\n"), mode); err != nil {
			t.Fatal(err)
		}
	}

	r := mustRun(t, "connectors", "--json", "--plugin-dir", dir)
	var entries []connectorEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("connectors --json: %v\n%s", err, r.stdout)
	}
	byName := map[string]connectorEntry{}
	for _, e := range entries {
		if _, dup := byName[e.Kind+"/"+e.Name]; !dup {
			byName[e.Kind+"/"+e.Name] = e
		}
	}
	tests := []struct {
		key     string
		builtin bool
		path    string
		caps    []string
		notCaps []string
	}{
		{key: "connector/random", builtin: true, caps: []string{"source", "updates", "get-by-ids"}, notCaps: []string{"sink"}},
		{key: "connector/null", builtin: true, caps: []string{"sink"}, notCaps: []string{"source", "updates"}},
		{key: "connector/foo", path: filepath.Join(dir, "dsync-connector-foo")},
		{key: "transform/baz", path: filepath.Join(dir, "dsync-transform-baz")},
	}
	for _, tt := range tests {
		e, ok := byName[tt.key]
		if !ok {
			t.Errorf("connectors --json does not list %s:\n%s", tt.key, r.stdout)
			continue
		}
		if e.Builtin != tt.builtin || e.Path != tt.path {
			t.Errorf("%s: builtin %v, path %q; want %v, %q", tt.key, e.Builtin, e.Path, tt.builtin, tt.path)
		}
		if tt.builtin && e.Summary == "" {
			t.Errorf("%s has no summary", tt.key)
		}
		for _, c := range tt.caps {
			if !slices.Contains(e.Capabilities, c) {
				t.Errorf("%s: capabilities %q lack %q", tt.key, e.Capabilities, c)
			}
		}
		for _, c := range tt.notCaps {
			if slices.Contains(e.Capabilities, c) {
				t.Errorf("%s: capabilities %q include %q", tt.key, e.Capabilities, c)
			}
		}
	}
	if _, ok := byName["connector/bar"]; ok {
		t.Errorf("a non-executable dsync-connector-bar is listed:\n%s", r.stdout)
	}

	// The table shows the same, with the plugin's path.
	r = mustRun(t, "connectors", "--plugin-dir", dir)
	for _, want := range []string{"NAME", "random", "source,updates,get-by-ids", "built-in", filepath.Join(dir, "dsync-connector-foo")} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("connectors table does not contain %q:\n%s", want, r.stdout)
		}
	}
}

// TestConnectorsPluginDirFromEnv: DSYNC_PLUGIN_DIR works like --plugin-dir.
func TestConnectorsPluginDirFromEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsync-connector-envfoo"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DSYNC_PLUGIN_DIR", dir)
	if r := mustRun(t, "connectors"); !strings.Contains(r.stdout, filepath.Join(dir, "dsync-connector-envfoo")) {
		t.Errorf("connectors with DSYNC_PLUGIN_DIR does not list the plugin:\n%s", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	r := mustRun(t, "version")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if lines[0] != "dsync "+version.String() || lines[len(lines)-1] != "plugin protocol v1" || r.stderr != "" {
		t.Errorf("dsync version:\n%v", r)
	}
	for _, flag := range []string{"--version", "-v"} {
		if r := mustRun(t, flag); r.stdout != "dsync version "+version.String()+"\n" {
			t.Errorf("dsync %s: %q", flag, r.stdout)
		}
	}
}
