//go:build !unix

package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"time"
)

type lockInfo struct {
	PID     int
	Command string
	Since   time.Time
}

func acquireLock(dir string, _ lockInfo) (*os.File, error) {
	return nil, fmt.Errorf("open checkpoint store %s: %w", dir, errors.ErrUnsupported)
}

func releaseLock(f *os.File) error { return f.Close() }
