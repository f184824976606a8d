package checkpoint

import (
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrLocked is returned by [Open] when another process, or another [Store]
	// in this process, holds the state directory. The error is a *[LockedError]
	// naming the owner's pid.
	ErrLocked = errors.New("checkpoint: state directory is locked")

	// ErrNotExist is returned by a read-only [Open] when the directory holds
	// no checkpoint store. A read-write Open creates one instead.
	ErrNotExist = errors.New("checkpoint: no checkpoint store")

	// ErrSchemaTooNew is returned by [Open] when the store was written by a
	// newer dsync whose key schema this build does not understand. Nothing is
	// modified; upgrade dsync or use another state directory.
	ErrSchemaTooNew = errors.New("checkpoint: store schema is newer than this dsync")

	// ErrSchemaTooOld is returned by a read-only [Open] when the store needs a
	// schema migration, which only a read-write Open performs.
	ErrSchemaTooOld = errors.New("checkpoint: store schema needs a migration")

	// ErrCorrupt is returned when a stored key or value cannot be decoded. It
	// is never returned for a record with unknown fields: those are ignored.
	ErrCorrupt = errors.New("checkpoint: corrupt record")

	// ErrReadOnly is returned by every write on a store opened with
	// [Options.ReadOnly].
	ErrReadOnly = errors.New("checkpoint: store is read-only")

	// ErrClosed is returned by every method called after [Store.Close].
	ErrClosed = errors.New("checkpoint: store is closed")

	// ErrInvalidArgument is returned, before anything is written, for a
	// malformed id, an out-of-range or duplicate index, or an unknown phase.
	ErrInvalidArgument = errors.New("checkpoint: invalid argument")

	// ErrFlowExists is returned by [Store.CreateFlow] when the flow already
	// has a plan. Resume it, or [Store.ResetFlow] it first.
	ErrFlowExists = errors.New("checkpoint: flow already exists")

	// ErrFlowNotFound is returned when no flow with the given id is stored.
	ErrFlowNotFound = errors.New("checkpoint: flow not found")

	// ErrPartitionNotFound is returned by the checkpoint methods when the
	// flow's plan has no partition (or update partition) with that index.
	ErrPartitionNotFound = errors.New("checkpoint: partition not found")

	// ErrStale is returned when a write would move a position backwards: a
	// checkpoint whose seq is not greater than the stored one, or a phase
	// earlier than the stored one. Nothing is written.
	ErrStale = errors.New("checkpoint: stale checkpoint")

	// ErrPartitionDone is returned when checkpointing a partition that an
	// earlier checkpoint marked done. Nothing is written.
	ErrPartitionDone = errors.New("checkpoint: partition already done")

	// ErrCopyIncomplete is returned when a flow would leave [PhaseCopy] while
	// some of its partitions are not done: CDC must not start before the copy
	// has finished.
	ErrCopyIncomplete = errors.New("checkpoint: copy not complete")

	// ErrKeyNotFound is returned by [Store.GetVerify] when the run holds no
	// value under the key.
	ErrKeyNotFound = errors.New("checkpoint: key not found")
)

// LockedError is the error returned by [Open] when the state directory's lock
// is held. It wraps [ErrLocked].
type LockedError struct {
	// Dir is the state directory as passed to Open.
	Dir string
	// PID is the owner's process id as recorded in the lock file, or 0 when
	// the owner has not written it yet.
	PID int
	// Command is the owner's [Options.Command], if recorded.
	Command string
}

func (e *LockedError) Error() string {
	pid := "unknown"
	if e.PID > 0 {
		pid = strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("state directory %s is in use by another dsync process (pid %s); "+
		"wait for it to finish or use another --state-dir", e.Dir, pid)
}

// Unwrap returns [ErrLocked].
func (e *LockedError) Unwrap() error { return ErrLocked }
