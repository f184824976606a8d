package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dsync.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence checks, for each kind of flag, that a value on the
// command line beats the DSYNC_* environment variable, which beats the
// --config file, which beats the default. Each case ends in a usage error
// whose message shows which value won, so nothing is started.
func TestConfigPrecedence(t *testing.T) {
	stateDir := t.TempDir()
	tests := []struct {
		name  string
		file  string // --config contents; none when empty
		env   map[string]string
		flags []string
		want  string
	}{
		// A string flag.
		{name: "string from file", file: "mode: file-mode",
			want: `unknown mode "file-mode"`},
		{name: "string from env over file", file: "mode: file-mode", env: map[string]string{"DSYNC_MODE": "env-mode"},
			want: `unknown mode "env-mode"`},
		{name: "string from flag over env and file", file: "mode: file-mode", env: map[string]string{"DSYNC_MODE": "env-mode"},
			flags: []string{"--mode", "flag-mode"}, want: `unknown mode "flag-mode"`},
		{name: "string from flag over file", file: "mode: file-mode", flags: []string{"--mode=flag-mode"},
			want: `unknown mode "flag-mode"`},
		// A size, and a default beaten by the file.
		{name: "size default against file", file: "max-inflight: 1MiB",
			want: "--batch-bytes (4194304) must not exceed --max-inflight (1048576)"},
		{name: "size from env over file", file: "batch-bytes: 1x", env: map[string]string{"DSYNC_BATCH_BYTES": "2x"},
			want: `--batch-bytes "2x"`},
		{name: "size from flag over env", file: "batch-bytes: 1x", env: map[string]string{"DSYNC_BATCH_BYTES": "2x"},
			flags: []string{"--batch-bytes", "3x"}, want: `--batch-bytes "3x"`},
		// A repeatable flag: a higher level replaces the list, it does not
		// add to it.
		{name: "list from file", file: "namespace: [a.b, 'file:x:y']",
			want: `entry "file:x:y" has more than one ':'`},
		{name: "list from env over file", file: "namespace: ['file:x:y']", env: map[string]string{"DSYNC_NAMESPACE": "a.b,env:x:y"},
			want: `entry "env:x:y"`},
		{name: "list from flag over env and file", file: "namespace: ['file:x:y']", env: map[string]string{"DSYNC_NAMESPACE": "env:x:y"},
			flags: []string{"-n", "a.b", "-n", "flag:x:y"}, want: `entry "flag:x:y"`},
		// An int: the file's 0 fails unless the environment overrides it,
		// and then the next check (--progress) fails instead.
		{name: "int from file", file: "parallel: 0", flags: []string{"--progress", "bogus"},
			want: "--parallel and --writers must be at least 1"},
		{name: "int from env over file", file: "parallel: 0", env: map[string]string{"DSYNC_PARALLEL": "2"},
			flags: []string{"--progress", "bogus"}, want: `--progress "bogus"`},
		// A duration from the file.
		{name: "duration from file", file: "until-lag: 5s\nmode: initial",
			want: "--until-lag needs a positive duration and --mode full or cdc"},
		{name: "duration from flag over file", file: "until-lag: 5s\nmode: initial", flags: []string{"--until-lag", "0s", "--progress", "bogus"},
			want: `--progress "bogus"`},
		// An empty variable counts as unset: the file, else the default,
		// applies.
		{name: "empty env string under file", file: "mode: file-mode", env: map[string]string{"DSYNC_MODE": ""},
			want: `unknown mode "file-mode"`},
		{name: "empty env int under file", file: "parallel: 0", env: map[string]string{"DSYNC_PARALLEL": ""},
			flags: []string{"--progress", "bogus"}, want: "--parallel and --writers must be at least 1"},
		{name: "empty env string without file", env: map[string]string{"DSYNC_MODE": "", "DSYNC_STATE_DIR": ""},
			flags: []string{"--progress", "bogus"}, want: `--progress "bogus"`},
		// The file itself named by the environment.
		{name: "config from env", env: map[string]string{"DSYNC_CONFIG": "FILE"}, file: "log-level: file-level",
			want: `--log-level "file-level"`},
		// Source and sink from the file; arguments replace them.
		{name: "source and sink from file", file: "source: 'random://?docs=1'\nsink: null://\nmode: file-mode",
			want: `unknown mode "file-mode"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"sync", "--state-dir", stateDir}
			if tt.file != "" {
				path := writeConfig(t, tt.file)
				if tt.env["DSYNC_CONFIG"] == "FILE" {
					t.Setenv("DSYNC_CONFIG", path)
				} else {
					args = append(args, "--config", path)
				}
			}
			for k, v := range tt.env {
				if k != "DSYNC_CONFIG" {
					t.Setenv(k, v)
				}
			}
			if !strings.Contains(tt.file, "source:") {
				args = append(args, "random://?docs=1", "null://")
			}
			args = append(args, tt.flags...)
			checkOneLineError(t, run(t, args...), ExitUsage, tt.want)
		})
	}
}

// TestConfigRun runs syncs configured by a file: source, sink and a
// namespace list come from it, and the command line or the environment
// replace the list.
func TestConfigRun(t *testing.T) {
	stateDir := t.TempDir()
	cfg := writeConfig(t, `# dsync sync --config
source: "random://?namespaces=2&docs=50"
sink: "null://"
mode: initial
progress: json
parallel: 2
writers: 2
batch-bytes: 256KiB
max-inflight: 1MiB
state-dir: `+stateDir+`
namespace:
  - random.ns0
  - random.ns1:other.ns1
`)
	flowOptions := func(t *testing.T, stdout string) (id string, namespaces []string) {
		t.Helper()
		final := progressLines(t, stdout)
		id = final[len(final)-1].Flow
		r := mustRun(t, "state", "show", id, "--json", "--state-dir", stateDir)
		var show struct {
			Flow struct {
				Mode    string `json:"mode"`
				Options struct {
					Namespaces []string `json:"namespaces"`
				} `json:"options"`
			} `json:"flow"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &show); err != nil {
			t.Fatalf("state show --json: %v\n%s", err, r.stdout)
		}
		if show.Flow.Mode != "initial" {
			t.Errorf("flow mode %q, want initial (from the file)", show.Flow.Mode)
		}
		return id, show.Flow.Options.Namespaces
	}

	r := mustRun(t, "sync", "--config", cfg)
	lines := progressLines(t, r.stdout)
	if got := lines[len(lines)-1].Docs; got != 100 {
		t.Errorf("copied %d docs, want 100 (both namespaces of the file's source)", got)
	}
	_, ns := flowOptions(t, r.stdout)
	if want := []string{"random.ns0", "random.ns1:other.ns1"}; !slices.Equal(ns, want) {
		t.Errorf("namespaces %q, want the file's list %q", ns, want)
	}

	r = mustRun(t, "sync", "--config", cfg, "--namespace", "random.ns0")
	_, ns = flowOptions(t, r.stdout)
	if want := []string{"random.ns0"}; !slices.Equal(ns, want) {
		t.Errorf("namespaces %q, want only the command line's %q", ns, want)
	}

	t.Setenv("DSYNC_NAMESPACE", "random.ns1")
	r = mustRun(t, "sync", "--config", cfg)
	_, ns = flowOptions(t, r.stdout)
	if want := []string{"random.ns1"}; !slices.Equal(ns, want) {
		t.Errorf("namespaces %q, want only the environment's %q", ns, want)
	}

	// Arguments replace the file's source and sink.
	r = mustRun(t, "sync", "random://?docs=7", "null://", "--config", cfg, "-n", "random.ns0")
	lines = progressLines(t, r.stdout)
	if got := lines[len(lines)-1].Docs; got != 7 {
		t.Errorf("copied %d docs, want 7 (the argument's source)", got)
	}
}

// TestConfigErrors: a config file that cannot be used is a usage error with
// a one-line message naming the file.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"invalid YAML", "mode: [initial\nparallel: 2\n", "did not find expected ',' or ']'"},
		{"tab indentation", "namespace:\n\t- a.b\n", "found character that cannot start any token"},
		{"not a mapping", "- mode\n- initial\n", "want a YAML mapping of flag names to values"},
		{"unknown key", "mdoe: initial\n", `unknown key "mdoe"`},
		{"key that is not a flag of the file", "config: other.yaml\n", `unknown key "config"`},
		{"wrong type for an int", "parallel: four\n", "parallel"},
		{"wrong type for a bool", "reset: maybe\n", "reset"},
		{"wrong type for a list", "namespace: {a: b}\n", "namespace"},
		{"scalar for a list is one entry", "namespace: 'x:y:z'\n", `entry "x:y:z" has more than one ':'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.yaml)
			r := run(t, "sync", "random://?docs=1", "null://", "--state-dir", dir, "--config", path)
			checkOneLineError(t, r, ExitUsage, tt.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		r := run(t, "sync", "random://?docs=1", "null://", "--config", missing)
		checkOneLineError(t, r, ExitUsage, "--config: open "+missing+": no such file or directory")
	})
	t.Run("directory", func(t *testing.T) {
		r := run(t, "sync", "random://?docs=1", "null://", "--config", dir)
		checkOneLineError(t, r, ExitUsage, "is a directory")
	})
	t.Run("empty file", func(t *testing.T) {
		r := run(t, "sync", "--config", writeConfig(t, ""))
		checkOneLineError(t, r, ExitUsage, "sync needs SOURCE and SINK (as arguments or source/sink in --config)")
	})
}
