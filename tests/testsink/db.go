package testsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// openDB opens the Pebble store in dir. For writing it creates the
// directory and the store when missing; read-only it fails with ErrNotExist
// instead.
func openDB(dir string, readOnly bool) (*pebble.DB, error) {
	if readOnly {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotExist
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		Merger:   uint64Merger,
		ReadOnly: readOnly,
		Logger:   pebbleLogger{},
	})
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		return nil, ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	if err := checkFormat(db, readOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// checkFormat checks the format marker, writing it into a new, empty store.
func checkFormat(db *pebble.DB, readOnly bool) error {
	v, ok, err := get(db, keyFormat)
	if err != nil {
		return err
	}
	if ok {
		if string(v) != storeFormat {
			return fmt.Errorf("%w: format %q, want %q", ErrFormat, v, storeFormat)
		}
		return nil
	}
	it, err := db.NewIter(nil)
	if err != nil {
		return err
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return err
	}
	switch {
	case !empty:
		return fmt.Errorf("%w: no format marker", ErrFormat)
	case readOnly:
		return nil
	}
	return db.Set(keyFormat, []byte(storeFormat), pebble.Sync)
}

// get returns a copy of the value at key.
func get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	return out, true, closer.Close()
}

// eachDoc calls fn with the id part of the key and the value of every
// document of ns in [lower, upper) (id parts; nil means unbounded), in key
// order, until fn returns false. fn must copy what it keeps.
func eachDoc(ctx context.Context, r pebble.Reader, ns string, lower, upper []byte, fn func(idk, doc []byte) (bool, error)) error {
	prefix := docPrefix(ns)
	lo := append(bytes.Clone(prefix), lower...)
	hi := prefixEnd(prefix)
	if upper != nil {
		hi = append(bytes.Clone(prefix), upper...)
	}
	if bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			_ = it.Close()
			return ctx.Err()
		}
		more, err := fn(it.Key()[len(prefix):], it.Value())
		if err != nil || !more {
			return errors.Join(err, it.Close())
		}
	}
	return it.Close()
}

// listNamespaces returns every namespace holding at least one document, in
// key order.
func listNamespaces(ctx context.Context, r pebble.Reader) ([]string, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDoc}, UpperBound: []byte{prefixDoc + 1}})
	if err != nil {
		return nil, err
	}
	var out []string
	for valid := it.First(); valid; valid = it.SeekGE(prefixEnd(docPrefix(out[len(out)-1]))) {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, it.Close())
		}
		ns, _, err := decodeNS(it.Key()[1:])
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		out = append(out, ns)
	}
	return out, it.Close()
}

// getDocs returns the documents of ids, nil where missing.
func getDocs(r pebble.Reader, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		v, ok, err := get(r, docKey(ns, id))
		if err != nil {
			return nil, err
		}
		if ok {
			out[i] = v
		}
	}
	return out, nil
}

// pebbleLogger sends Pebble's messages to slog, which reaches the dsync
// host's log from inside a plugin.
type pebbleLogger struct{}

func (pebbleLogger) Infof(format string, args ...any) {
	slog.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (pebbleLogger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf mirrors pebble.DefaultLogger: Pebble calls it when continuing could
// acknowledge writes that are not durable.
func (pebbleLogger) Fatalf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}
