package testsink

import "errors"

// ErrRejected is wrapped (as an sdk.KindFatal error) by writes refused
// because of Options.FatalIDs.
var ErrRejected = errors.New("testsink: document rejected by fail=fatal-id")

// ErrNotExist is returned by Open when the directory holds no store.
var ErrNotExist = errors.New("testsink: store does not exist")

// ErrFormat is returned when a directory holds a Pebble store that was not
// written by this package.
var ErrFormat = errors.New("testsink: not a testsink store")
