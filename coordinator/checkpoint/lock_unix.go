//go:build unix

package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockFileName is the lock file inside the state directory, next to Pebble's
// files (Pebble ignores files it did not create).
const lockFileName = "dsync.lock"

// lockInfo is the lock file's content: who holds the directory.
type lockInfo struct {
	PID     int       `json:"pid"`
	Command string    `json:"command,omitempty"`
	Since   time.Time `json:"since"`
}

// acquireLock takes an exclusive, non-blocking flock on <dir>/dsync.lock and
// records the owner in it. flock locks belong to the open file description,
// so a second acquireLock in the same process fails too, and the kernel drops
// the lock when the owner dies, even by SIGKILL. os.OpenFile sets O_CLOEXEC,
// so plugin subprocesses do not inherit the lock. The file is never removed:
// removing it would let two processes lock two different inodes.
func acquireLock(dir string, info lockInfo) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: create lock file: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := readLockInfo(f)
			return nil, &LockedError{Dir: dir, PID: owner.PID, Command: owner.Command}
		}
		return nil, fmt.Errorf("open checkpoint store %s: lock %s: %w", dir, path, err)
	}
	b, err := json.Marshal(info)
	if err == nil {
		if err = f.Truncate(0); err == nil {
			_, err = f.WriteAt(append(b, '\n'), 0)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open checkpoint store %s: write lock file: %w", dir, err)
	}
	return f, nil
}

// readLockInfo returns the zero lockInfo when the owner has not written the
// file yet.
func readLockInfo(f *os.File) lockInfo {
	var info lockInfo
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err == nil {
		_ = json.Unmarshal(b, &info)
	}
	return info
}

// releaseLock closes the file, which drops the flock.
func releaseLock(f *os.File) error {
	return f.Close()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
