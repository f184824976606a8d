package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The secrets of the connection strings below. None may appear in what
// dsync prints, logs or stores.
var secrets = []string{"s3cretpw", "t0kensecret"}

// checkNoSecret fails when one of secrets appears in text.
func checkNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, text)
		}
	}
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// TestSecretsRedacted runs a sync whose source URL holds a password and a
// token through a third-party style plugin that logs its connection string,
// and checks that neither secret reaches stdout, stderr, the log file or the
// checkpoint store.
func TestSecretsRedacted(t *testing.T) {
	pluginDir := installVault(t)
	stateDir := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "dsync.log")
	src := "vault://admin:s3cretpw@db.example:5432/?namespaces=1&docs=100&token=t0kensecret"

	r := mustRun(t, "sync", src, "null://", "--mode", "initial", "--progress", "json",
		"--state-dir", stateDir, "--plugin-dir", pluginDir, "--log-level", "debug", "--log-file", logFile)
	if r.stderr != "" {
		t.Errorf("with --log-file, stderr should stay empty:\n%s", r.stderr)
	}
	lines := progressLines(t, r.stdout)
	if last := lines[len(lines)-1]; last.Docs != 100 {
		t.Errorf("copied %d docs, want 100", last.Docs)
	}
	log := readLog(t, logFile)
	checkNoSecret(t, "stdout", r.stdout)
	checkNoSecret(t, "the log file", log)
	// The plugin's careless log lines did reach the log, scrubbed, as did
	// the host's mention of the source.
	for _, want := range []string{"connecting to", "source.vault", "admin:xxxxx@db.example:5432"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not contain %q:\n%s", want, log)
		}
	}

	outputs := []result{
		mustRun(t, "state", "list", "--state-dir", stateDir),
		mustRun(t, "state", "list", "--json", "--state-dir", stateDir),
	}
	flow := lines[len(lines)-1].Flow
	outputs = append(outputs,
		mustRun(t, "state", "show", flow, "--state-dir", stateDir),
		mustRun(t, "state", "show", flow, "--json", "--state-dir", stateDir))
	for _, o := range outputs {
		checkNoSecret(t, "state output", o.stdout+o.stderr)
	}
	if !strings.Contains(outputs[0].stdout, "vault://admin:xxxxx@db.example:5432/") {
		t.Errorf("state list does not show the redacted source:\n%s", outputs[0].stdout)
	}
	// Nor is a secret written to any file of the store.
	err := filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("store file %s holds the secret %q", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecretsRedactedInErrors: connection strings that fail, before or
// while a plugin is configured, are reported without their secrets.
func TestSecretsRedactedInErrors(t *testing.T) {
	pluginDir := installVault(t)
	tests := []struct {
		name     string
		src, snk string
		want     string
	}{
		{"user info the source rejects", "random://admin:s3cretpw@?docs=10", "null://", "random: the URL has a host"},
		{"secret option the source rejects", "random://?docs=10&password=s3cretpw", "null://", `unknown option "password"`},
		{"user info the sink rejects", "random://?docs=10", "null://admin:s3cretpw@", "null: the URL has a host"},
		{"unknown scheme", "nosuchdb://admin:s3cretpw@db.example/db", "null://", `"nosuchdb://admin:xxxxx@db.example/db"`},
		{"no scheme", "admin:s3cretpw@db.example:5432/db", "null://", "admin:xxxxx@db.example:5432/db"},
		{"plugin error quoting its URL", "vault://admin:s3cretpw@db.example/?fail=configure&token=t0kensecret", "null://", "vault: cannot log in to vault://admin:xxxxx@db.example/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "dsync.log")
			r := run(t, "sync", tt.src, tt.snk, "--mode", "initial", "--state-dir", t.TempDir(),
				"--plugin-dir", pluginDir, "--log-level", "debug", "--log-file", logFile)
			checkOneLineError(t, r, ExitUsage, tt.want)
			checkNoSecret(t, "stderr", r.stderr)
			checkNoSecret(t, "the log file", readLog(t, logFile))
		})
	}
}
