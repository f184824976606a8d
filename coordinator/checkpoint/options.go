package checkpoint

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/cockroachdb/pebble/vfs"
)

// Options configures [Open]. The zero value is ready to use.
type Options struct {
	// ReadOnly opens the store for inspection (`dsync state list/show`): the
	// directory is not created, no schema migration runs, and every write
	// returns [ErrReadOnly]. The directory lock is still taken, exclusively:
	// Pebble admits a single process per directory even for reading, so an
	// inspection fails with [ErrLocked] while a sync is running, and it
	// needs write access to the directory for the lock files.
	// Default: false.
	ReadOnly bool

	// Command describes the owner in the lock file, and so in the
	// [LockedError] another process gets, e.g. "dsync sync". It must not
	// contain secrets such as connection strings.
	// Default: the base name of os.Args[0].
	Command string

	// Logf receives Pebble's messages, informational ones (such as WAL
	// recovery on every open) included. A failure Pebble cannot recover
	// from, such as a failed WAL write, is logged through Logf and then ends
	// the process with exit status 1: the store can no longer promise
	// durability, and what is on disk stays consistent.
	// Default: informational messages are dropped, the others go to the
	// standard library's log.Printf.
	Logf func(format string, args ...any)

	// fs replaces the operating system's file system, for tests that inject
	// failures or simulate power loss. The directory lock is skipped then.
	fs vfs.FS
	// now is the clock for CreatedAt and UpdatedAt. Default: time.Now.
	now func() time.Time
}

// maxCommandLen bounds Options.Command so the lock file stays small.
const maxCommandLen = 1024

// EnsureDefaults fills in the default of every unset field and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Command == "" {
		o.Command = filepath.Base(os.Args[0])
	}
	if o.Logf == nil {
		o.Logf = defaultLogf
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Validate reports whether the options are usable.
func (o *Options) Validate() error {
	if len(o.Command) > maxCommandLen {
		return fmt.Errorf("%w: Command is longer than %d bytes", ErrInvalidArgument, maxCommandLen)
	}
	if strings.IndexFunc(o.Command, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: Command contains a control character", ErrInvalidArgument)
	}
	return nil
}

// defaultLogf marks the default Logf; pebbleLogger drops informational
// messages sent to it.
func defaultLogf(format string, args ...any) { log.Printf(format, args...) }

// pebbleLogger adapts Options.Logf to pebble.Logger.
type pebbleLogger struct {
	logf  func(format string, args ...any)
	quiet bool // drop Infof
}

func (l pebbleLogger) Infof(format string, args ...any) {
	if !l.quiet {
		l.logf(format, args...)
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) { l.logf(format, args...) }

// Fatalf mirrors pebble.DefaultLogger: Pebble calls it when its commit
// pipeline is broken, and continuing could acknowledge checkpoints that are
// not durable.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.logf(format, args...)
	os.Exit(1)
}
