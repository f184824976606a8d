package checkpoint

import (
	"fmt"

	"github.com/cockroachdb/pebble"
)

// VerifyEntry is one key and value of a verify run; see [Store.PutVerifyBatch].
type VerifyEntry struct {
	Key   string
	Value []byte
}

// PutVerify durably stores value under key in the verify run's namespace.
// Keys are non-empty strings chosen by the verifier; values are opaque.
func (s *Store) PutVerify(runID, key string, value []byte) error {
	return s.PutVerifyBatch(runID, []VerifyEntry{{Key: key, Value: value}})
}

// PutVerifyBatch durably stores every entry in one atomic batch. A key given
// twice keeps its last value.
func (s *Store) PutVerifyBatch(runID string, entries []VerifyEntry) error {
	if err := s.putVerify(runID, entries); err != nil {
		return fmt.Errorf("put verify progress of run %s: %w", runID, err)
	}
	return nil
}

func (s *Store) putVerify(runID string, entries []VerifyEntry) error {
	if err := validID("verify run", runID); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Key == "" {
			return fmt.Errorf("%w: empty key", ErrInvalidArgument)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return s.write(func(_ pebble.Reader, b *batch) error {
		for _, e := range entries {
			b.set(verifyKey(runID, e.Key), e.Value)
		}
		return nil
	})
}

// GetVerify returns the value stored under key in the verify run's namespace,
// or [ErrKeyNotFound].
func (s *Store) GetVerify(runID, key string) ([]byte, error) {
	if err := validID("verify run", runID); err != nil {
		return nil, fmt.Errorf("get verify progress: %w", err)
	}
	db, done, err := s.reader()
	if err != nil {
		return nil, fmt.Errorf("get verify progress of run %s: %w", runID, err)
	}
	defer done()
	value, ok, err := get(db, verifyKey(runID, key))
	if err == nil && !ok {
		err = ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get verify progress of run %s key %q: %w", runID, key, err)
	}
	return value, nil
}

// ScanVerify calls fn, in key order, for every key of the verify run that
// starts with prefix, from one consistent snapshot. fn receives copies it may
// keep, and may call any method of the Store except Close. An error from fn
// stops the scan and is returned as is.
func (s *Store) ScanVerify(runID, prefix string, fn func(key string, value []byte) error) error {
	if err := validID("verify run", runID); err != nil {
		return fmt.Errorf("scan verify progress: %w", err)
	}
	db, done, err := s.reader()
	if err != nil {
		return fmt.Errorf("scan verify progress of run %s: %w", runID, err)
	}
	defer done()
	run := verifyRunPrefix(runID)
	lower := verifyKey(runID, prefix)
	upper := prefixEnd(lower)
	if prefix == "" {
		upper = verifyRunEnd(runID)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan verify progress of run %s: %w", runID, err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scan verify progress of run %s: %w", runID, err)
		}
		if err := fn(string(it.Key()[len(run):]), append([]byte(nil), value...)); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan verify progress of run %s: %w", runID, err)
	}
	return nil
}

// ResetVerify atomically deletes every key of the verify run. Resetting a run
// without keys is a no-op.
func (s *Store) ResetVerify(runID string) error {
	if err := s.resetVerify(runID); err != nil {
		return fmt.Errorf("reset verify run %s: %w", runID, err)
	}
	return nil
}

func (s *Store) resetVerify(runID string) error {
	if err := validID("verify run", runID); err != nil {
		return err
	}
	return s.write(func(_ pebble.Reader, b *batch) error {
		b.deleteRange(verifyRunPrefix(runID), verifyRunEnd(runID))
		return nil
	})
}
