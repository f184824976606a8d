package testsink

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// errClosed is returned by the methods of a closed Store.
var errClosed = errors.New("testsink: store is closed")

// Store is a read-only view of a store written by the connector, for test
// assertions. Its methods are safe for concurrent use.
type Store struct {
	dir string

	mu sync.RWMutex
	db *pebble.DB // nil once closed
}

// Open opens the store in dir read-only. The plugin that wrote it must have
// exited (Pebble admits one process at a time); a store left by a killed
// plugin is recovered from its write-ahead log. It fails with ErrNotExist
// when dir holds no store.
func Open(dir string) (*Store, error) {
	db, err := openDB(dir, true)
	if err != nil {
		return nil, fmt.Errorf("testsink: open store %s: %w", dir, err)
	}
	return &Store{dir: dir, db: db}, nil
}

// Close closes the store. Closing a closed store returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("testsink: close store %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) reader() (*pebble.DB, func(), error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, nil, errClosed
	}
	return s.db, s.mu.RUnlock, nil
}

// Namespaces returns the namespaces holding at least one document, sorted
// by their bytes.
func (s *Store) Namespaces() ([]string, error) {
	db, done, err := s.reader()
	if err != nil {
		return nil, err
	}
	defer done()
	return listNamespaces(context.Background(), db)
}

// Each calls fn with every document of ns in key order, stopping at the
// first error, which it returns. fn may keep id and doc.
func (s *Store) Each(ns string, fn func(id bson.RawValue, doc bson.Raw) error) error {
	db, done, err := s.reader()
	if err != nil {
		return err
	}
	defer done()
	return eachDoc(context.Background(), db, ns, nil, nil, func(idk, doc []byte) (bool, error) {
		if err := fn(idFromKey(idk), bson.Raw(append([]byte(nil), doc...))); err != nil {
			return false, err
		}
		return true, nil
	})
}

// Docs returns the documents of ns keyed by the IDString of their _id.
func (s *Store) Docs(ns string) (map[string]bson.Raw, error) {
	docs := map[string]bson.Raw{}
	err := s.Each(ns, func(id bson.RawValue, doc bson.Raw) error {
		docs[IDString(id)] = doc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return docs, nil
}

// Count returns the number of documents of ns.
func (s *Store) Count(ns string) (int, error) {
	db, done, err := s.reader()
	if err != nil {
		return 0, err
	}
	defer done()
	n := 0
	err = eachDoc(context.Background(), db, ns, nil, nil, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// Get returns the document of ns with the given _id, and whether it exists.
func (s *Store) Get(ns string, id bson.RawValue) (bson.Raw, bool, error) {
	db, done, err := s.reader()
	if err != nil {
		return nil, false, err
	}
	defer done()
	v, ok, err := get(db, docKey(ns, id))
	return v, ok, err
}

// Counters returns the write counters.
func (s *Store) Counters() (Counters, error) {
	db, done, err := s.reader()
	if err != nil {
		return Counters{}, err
	}
	defer done()
	return readCounters(db)
}
