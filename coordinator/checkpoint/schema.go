package checkpoint

import (
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble"
)

// SchemaVersion is the key schema this build writes; doc.go describes it.
const SchemaVersion = 1

// A migration rewrites a store from schema version from to from+1. It only
// adds operations to b; the caller commits them together with the new version
// number, so a crash leaves the store entirely at one version or the other.
type migration struct {
	from  int
	about string
	apply func(r pebble.Reader, b *pebble.Batch) error
}

// migrations upgrade older stores, in order. Version 1 is the first schema.
var migrations = []migration{}

// checkSchema validates the stored schema version: it initializes an empty
// store, migrates an older one (read-write opens only) and refuses a newer one.
func (s *Store) checkSchema() error {
	version, err := readSchema(s.db)
	if err != nil {
		return err
	}
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("%w: store has schema v%d, this dsync understands up to v%d",
			ErrSchemaTooNew, version, SchemaVersion)
	case version == SchemaVersion:
		return nil
	case s.opts.ReadOnly && version == 0:
		// Empty store: nothing to read, nothing to migrate.
		return nil
	case s.opts.ReadOnly:
		return fmt.Errorf("%w: store has schema v%d, this dsync uses v%d; "+
			"open it once for writing (e.g. with dsync sync) to migrate it",
			ErrSchemaTooOld, version, SchemaVersion)
	case version == 0:
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.Set([]byte(schemaKey), []byte(strconv.Itoa(SchemaVersion)), nil); err != nil {
			return err
		}
		if err := commit(b); err != nil {
			return fmt.Errorf("initialize schema: %w", err)
		}
		return nil
	default:
		return upgrade(s.db, version, SchemaVersion, migrations)
	}
}

// readSchema returns the stored schema version, or 0 for an empty store.
func readSchema(db *pebble.DB) (int, error) {
	value, ok, err := get(db, []byte(schemaKey))
	if err != nil {
		return 0, err
	}
	if ok {
		v, err := strconv.Atoi(string(value))
		if err != nil || v < 1 {
			return 0, fmt.Errorf("%w: schema version %q", ErrCorrupt, value)
		}
		return v, nil
	}
	// Without a version the store must be empty: anything else was not
	// written by dsync, and guessing its layout could destroy it.
	it, err := db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if it.First() {
		return 0, fmt.Errorf("%w: store holds keys (e.g. %q) but no schema version; "+
			"it was not written by dsync", ErrCorrupt, it.Key())
	}
	return 0, it.Error()
}

// upgrade migrates db from schema version from to target, one synced batch
// per step.
func upgrade(db *pebble.DB, from, target int, table []migration) error {
	for v := from; v < target; v++ {
		var m *migration
		for i := range table {
			if table[i].from == v {
				m = &table[i]
				break
			}
		}
		if m == nil {
			return fmt.Errorf("migrate schema: no migration from v%d", v)
		}
		if err := migrateStep(db, m); err != nil {
			return fmt.Errorf("migrate schema v%d to v%d (%s): %w", v, v+1, m.about, err)
		}
	}
	return nil
}

func migrateStep(db *pebble.DB, m *migration) error {
	// A snapshot gives the migration a stable view while it fills the batch.
	snap := db.NewSnapshot()
	defer snap.Close()
	b := db.NewBatch()
	defer b.Close()
	if err := m.apply(snap, b); err != nil {
		return err
	}
	if err := b.Set([]byte(schemaKey), []byte(strconv.Itoa(m.from+1)), nil); err != nil {
		return err
	}
	return commit(b)
}
