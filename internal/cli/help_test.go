package cli

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/internal/version"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestHelpGolden compares help texts with testdata/*.golden; run
// `go test ./internal/cli -run TestHelpGolden -update` after changing a
// command and review the diff.
func TestHelpGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"dsync", []string{"--help"}},
		{"dsync", []string{"help"}},
		{"dsync", []string{}},
		{"sync", []string{"sync", "--help"}},
		{"sync", []string{"help", "sync"}},
		{"sync", []string{"sync", "random://", "null://", "--help"}},
		{"state", []string{"state", "--help"}},
		{"state", []string{"state"}},
		{"state-list", []string{"state", "list", "--help"}},
		{"state-show", []string{"state", "show", "--help"}},
		{"state-reset", []string{"state", "reset", "--help"}},
		{"connectors", []string{"connectors", "--help"}},
		{"version", []string{"version", "--help"}},
		{"conformance", []string{"conformance", "--help"}},
	}
	written := map[string]bool{}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"dsync"}, tt.args...), " "), func(t *testing.T) {
			r := run(t, tt.args...)
			if r.code != ExitOK || r.stderr != "" {
				t.Fatalf("want exit 0 and an empty stderr: %v", r)
			}
			got := strings.ReplaceAll(r.stdout, version.String(), "VERSION")
			path := filepath.Join("testdata", "help-"+tt.golden+".golden")
			if *update && !written[path] {
				written[path] = true
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("help differs from %s (run with -update if intended):\n--- got:\n%s\n--- want:\n%s", path, got, want)
			}
		})
	}
}

// TestHelpHidesPluginCommand: the re-exec entry point is not for users.
func TestHelpHidesPluginCommand(t *testing.T) {
	r := mustRun(t, "--help")
	if regexp.MustCompile(`(?m)^\s+plugin\s`).MatchString(r.stdout) {
		t.Errorf("dsync --help lists the hidden plugin command:\n%s", r.stdout)
	}
}
