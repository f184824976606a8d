package testsink

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// BinaryName is the name of the plugin executable: the dsync host finds it
// on PATH for testsink:// URLs.
const BinaryName = "dsync-connector-testsink"

// Package is the import path of the plugin's main package.
const Package = "github.com/dsyncio/dsync/tests/testsink/cmd/dsync-connector-testsink"

var build struct {
	mu   sync.Mutex
	path string // the binary built by this process, once built
}

// BuildBinary puts the plugin executable in dir, as dir/BinaryName, and
// returns its path; add dir to PATH to let dsync find it. The binary is built
// with go build once per test process and copied for later calls; the built
// copy lives in a per-user cache directory under os.TempDir, where copies
// left by processes that have exited are removed. A failed build fails t.
func BuildBinary(t testing.TB, dir string) string {
	t.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.path == "" {
		bin, err := buildOnce()
		if err != nil {
			t.Fatalf("testsink: %v", err)
		}
		build.path = bin
	}
	dst := filepath.Join(dir, BinaryName)
	if err := copyExecutable(build.path, dst); err != nil {
		t.Fatalf("testsink: install %s: %v", BinaryName, err)
	}
	return dst
}

func buildOnce() (string, error) {
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("dsync-testsink-%d", os.Getuid()))
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	removeStale(cache)
	bin := filepath.Join(cache, fmt.Sprintf("%s-%d", BinaryName, os.Getpid()))
	cmd := exec.Command("go", "build", "-o", bin, Package)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", Package, err, out)
	}
	return bin, nil
}

// removeStale removes binaries built by processes that no longer run.
func removeStale(cache string) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), BinaryName+"-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(s)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		_ = os.Remove(filepath.Join(cache, e.Name()))
	}
}

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// copyExecutable copies src to dst through a temporary file, so a running
// copy of dst is never overwritten in place.
func copyExecutable(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+BinaryName+"-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
