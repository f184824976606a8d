package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// formatMajorVersion pins Pebble's on-disk format instead of following the
// library default: it is the newest format of Pebble v1.1, and at least the
// minimum Pebble v2 opens, so a later move to Pebble v2 needs no migration.
const formatMajorVersion = pebble.FormatVirtualSSTables

// Store is a checkpoint store open on one state directory. It is safe for
// concurrent use: writes are checked against the stored state one at a time,
// and concurrent writes share fsyncs.
type Store struct {
	dir  string
	opts Options
	lock *os.File // nil when Options.fs replaces the OS file system

	db *pebble.DB

	// Close waits for operations in flight so that Pebble is never used after
	// it is closed. A counter rather than an RWMutex: an operation started
	// from a ScanVerify callback must not block behind a waiting Close.
	mu     sync.Mutex
	idle   sync.Cond // signalled when active drops to 0
	active int
	closed bool

	// writeMu serializes read-check-write sequences such as the forward-only
	// check of a checkpoint.
	writeMu sync.Mutex
}

// Open opens the checkpoint store in dir, creating dir (mode 0700) and an
// empty store if needed, and takes the directory's lock; see doc.go.
//
// It returns a *[LockedError] (wrapping [ErrLocked]) when another process
// holds the directory, [ErrSchemaTooNew] when a newer dsync wrote the store,
// and, for a read-only open, [ErrNotExist] when there is no store and
// [ErrSchemaTooOld] when the store needs a migration.
func Open(dir string, opts Options) (*Store, error) {
	// Pebble's informational messages go only to a Logf the caller chose.
	quiet := opts.Logf == nil
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	if dir == "" {
		return nil, fmt.Errorf("open checkpoint store: %w: empty directory", ErrInvalidArgument)
	}
	fsys := opts.fs
	if fsys == nil {
		fsys = vfs.Default
	}

	if opts.ReadOnly {
		if _, err := fsys.Stat(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open checkpoint store %s: %w", dir, ErrNotExist)
			}
			return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
		}
	} else if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: create directory: %w", dir, err)
	}

	s := &Store{dir: dir, opts: opts}
	s.idle.L = &s.mu
	if opts.fs == nil {
		// Taken before Pebble's own LOCK so that a second process gets an
		// error naming the owner rather than Pebble's "resource unavailable".
		lock, err := acquireLock(dir, lockInfo{PID: os.Getpid(), Command: opts.Command, Since: opts.now().UTC()})
		if err != nil {
			return nil, err
		}
		s.lock = lock
	}

	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fsys,
		ReadOnly:           opts.ReadOnly,
		FormatMajorVersion: formatMajorVersion,
		Logger:             pebbleLogger{logf: opts.Logf, quiet: quiet},
	})
	if err != nil {
		s.unlock()
		if errors.Is(err, pebble.ErrDBDoesNotExist) {
			return nil, fmt.Errorf("open checkpoint store %s: %w", dir, ErrNotExist)
		}
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	s.db = db

	if err := s.checkSchema(); err != nil {
		_ = db.Close()
		s.unlock()
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	return s, nil
}

// Dir returns the state directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// Close waits for operations in flight, closes Pebble and releases the
// directory lock. Later calls return [ErrClosed]; closing a closed store
// returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.active > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()

	err := s.db.Close()
	if err != nil {
		err = fmt.Errorf("close checkpoint store %s: %w", s.dir, err)
	}
	return errors.Join(err, s.unlock())
}

// begin starts an operation; it fails once Close has begun.
func (s *Store) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.active++
	return nil
}

// end ends an operation started by begin.
func (s *Store) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active--; s.active == 0 {
		s.idle.Broadcast()
	}
}

func (s *Store) unlock() error {
	if s.lock == nil {
		return nil
	}
	err := releaseLock(s.lock)
	s.lock = nil
	if err != nil {
		return fmt.Errorf("close checkpoint store %s: release lock: %w", s.dir, err)
	}
	return nil
}

// reader starts a read: it returns the open DB and a function ending the read.
func (s *Store) reader() (*pebble.DB, func(), error) {
	if err := s.begin(); err != nil {
		return nil, nil, err
	}
	return s.db, s.end, nil
}

// write runs build under writeMu to validate against the current state and
// fill a batch, and returns once the batch is durable. The batch enters
// Pebble's commit pipeline before writeMu is released, so the next writer
// reads its effects and commits after it; the fsync wait happens outside
// writeMu, so concurrent writers share fsyncs (group commit). A build that
// returns an error, or writes nothing, commits nothing.
func (s *Store) write(build func(r pebble.Reader, b *batch) error) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	b := &batch{Batch: s.db.NewBatch()}
	defer b.Close()

	s.writeMu.Lock()
	err := build(s.db, b)
	if err == nil {
		err = b.err
	}
	if err != nil || b.Empty() {
		s.writeMu.Unlock()
		return err
	}
	// Pebble itself ends the process if the batch cannot be applied.
	err = s.db.ApplyNoSyncWait(b.Batch, pebble.Sync)
	s.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := b.SyncWait(); err != nil {
		// Later writers may already have read this batch's effects, so the
		// store cannot continue; Pebble's synchronous commit path treats a
		// failed WAL sync the same way.
		pebbleLogger{logf: s.opts.Logf}.Fatalf("checkpoint: WAL sync of %s failed: %v", s.dir, err)
	}
	return nil
}

// get returns a copy of the value stored under key, or ok == false.
func get(r pebble.Reader, key []byte) (value []byte, ok bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %q: %w", key, err)
	}
	value = append([]byte(nil), v...)
	return value, true, closer.Close()
}

// getRecord decodes the value under key into v.
func getRecord(r pebble.Reader, key []byte, v any) (ok bool, err error) {
	value, ok, err := get(r, key)
	if err != nil || !ok {
		return ok, err
	}
	return true, decode(key, value, v)
}

// commit applies b durably: Commit returns once the WAL is fsynced.
func commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
