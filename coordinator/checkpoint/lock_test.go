//go:build unix

package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process: tests re-execute the test binary with helperEnv set to
// a mode, and the child runs TestHelperProcess only. It reports progress as
// lines on stdout and blocks on stdin when told to wait.
const (
	helperEnv    = "DSYNC_CHECKPOINT_HELPER"
	helperDirEnv = "DSYNC_CHECKPOINT_HELPER_DIR"
)

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	fail := func(err error) {
		fmt.Printf("error: %v\n", err)
		os.Exit(2)
	}
	dir := os.Getenv(helperDirEnv)
	switch mode {
	case "hold":
		s, err := Open(dir, Options{Command: "lock-helper"})
		if err != nil {
			fail(err)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := s.Close(); err != nil {
			fail(err)
		}
	case "checkpoint-pause", "checkpoint-run":
		s, err := Open(dir, Options{Command: "checkpoint-helper"})
		if err != nil {
			fail(err)
		}
		meta, parts, ups := testFlow("crash", 2, 1)
		if err := s.CreateFlow(meta, parts, ups); err != nil {
			fail(err)
		}
		for seq := uint64(1); seq <= 1000; seq++ {
			if err := s.CheckpointPartition("crash", 0, seq, crashCursor(seq), false, 10, 100); err != nil {
				fail(err)
			}
			fmt.Printf("checkpointed %d\n", seq)
			if mode == "checkpoint-pause" && seq == crashKillAt {
				_, _ = io.Copy(io.Discard, os.Stdin)
			}
		}
	default:
		fail(fmt.Errorf("unknown helper mode %q", mode))
	}
	os.Exit(0)
}

// crashKillAt is the checkpoint after which the parent kills the child.
const crashKillAt = 10

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startHelper starts the test binary as a helper process in mode on dir.
func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return h
}

// waitFor returns once the helper prints line, failing on an error line.
func (h *helper) waitFor(t *testing.T, line string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case got, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited before printing %q", line)
			}
			if strings.HasPrefix(got, "error:") {
				t.Fatalf("helper: %s", got)
			}
			if got == line {
				return
			}
		case <-timeout:
			t.Fatalf("helper did not print %q", line)
		}
	}
}

// kill SIGKILLs the helper and reaps it.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait()
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	for _, readOnly := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: readOnly})
		var le *LockedError
		if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
			t.Fatalf("second Open (read-only %t): %v, want ErrLocked", readOnly, err)
		}
		if le.PID != os.Getpid() {
			t.Errorf("LockedError.PID = %d, want %d", le.PID, os.Getpid())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, Options{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	h := startHelper(t, "hold", dir)
	h.waitFor(t, "locked")

	for _, readOnly := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: readOnly})
		var le *LockedError
		if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
			t.Fatalf("Open while the helper holds the lock (read-only %t): %v, want ErrLocked", readOnly, err)
		}
		pid := h.cmd.Process.Pid
		want := fmt.Sprintf("state directory %s is in use by another dsync process (pid %d); "+
			"wait for it to finish or use another --state-dir", dir, pid)
		if err.Error() != want {
			t.Errorf("error = %q\nwant    %q", err, want)
		}
		if le.PID != pid || le.Command != "lock-helper" || le.Dir != dir {
			t.Errorf("LockedError = %+v, want pid %d, command lock-helper", le, pid)
		}
	}

	// The kernel releases the lock of a killed owner; the stale lock file
	// does not matter.
	h.kill(t)
	s := mustOpen(t, dir, Options{Command: "after-kill"})
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"pid":%d,"command":"after-kill"`, os.Getpid()); !strings.Contains(string(b), want) {
		t.Errorf("lock file = %s, want it to contain %s", b, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenUnwritable(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		want error
	}{
		{"directory cannot be created", func(t *testing.T) string {
			return filepath.Join(unwritableDir(t), "state")
		}, fs.ErrPermission},
		{"directory is not writable", unwritableDir, fs.ErrPermission},
		{"path is a file", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}, syscall.ENOTDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			s, err := Open(dir, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", dir)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open(%s): %v, want %v", dir, err, tt.want)
			}
			if !strings.Contains(err.Error(), "open checkpoint store "+dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// unwritableDir returns an existing directory this process cannot write to.
// Root ignores permission bits, so as root it falls back to sysfs.
func unwritableDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		return dir
	}
	const dir = "/sys/kernel"
	probe := filepath.Join(dir, "dsync-write-probe")
	if f, err := os.OpenFile(probe, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
		os.Remove(probe)
		t.Skipf("running as root and %s is writable: no unwritable directory available", dir)
	}
	return dir
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	s := mustOpen(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("state directory mode %v, want no group or other access", perm)
	}
}
