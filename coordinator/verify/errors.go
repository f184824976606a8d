package verify

import (
	"errors"

	"github.com/dsyncio/dsync/coordinator"
)

var (
	// ErrInvalidOptions is returned by [Options.Validate], [New] and [Run]
	// for options that cannot run: a missing connector or store, a sample
	// percentage outside (0, 100], an excluded path that is empty or names
	// _id, --repair or --sample with CountOnly. The message names the option.
	ErrInvalidOptions = errors.New("verify: invalid options")

	// ErrNotSource is returned by Run, before anything is read, when A or B
	// cannot be a source.
	ErrNotSource = errors.New("verify: connector cannot be a source")

	// ErrNoGetByIDs is returned by Run, before anything is read, when A or B
	// cannot fetch documents by id (spi.IDGetter, capability get-by-ids):
	// verify looks up A's documents on B and B's unmatched documents on A.
	// CountOnly does not need it.
	ErrNoGetByIDs = errors.New("verify: connector cannot fetch documents by id")

	// ErrNotSink is returned by Run, before anything is read, when Repair is
	// asked for and B cannot be written (it is not a sink).
	ErrNotSink = errors.New("verify: B is not a sink; --repair needs to write to it")

	// ErrUnsupported is returned by Run, before anything is read, when the
	// namespace mapping selects every namespace and a side cannot plan every
	// namespace (capability default-plan).
	ErrUnsupported = errors.New("verify: connector does not support this verification")

	// ErrBadDocument is returned when a side returns a document that is not
	// valid BSON or has no _id. The message names the side and namespace.
	ErrBadDocument = errors.New("verify: malformed document")

	// ErrBadResponse is returned when GetByIDs answers with another number of
	// documents than ids asked for, or ListData with the cursor it was given.
	ErrBadResponse = errors.New("verify: malformed connector response")

	// ErrCorrupt is returned when a stored verify record cannot be decoded.
	// Rerun with Reset.
	ErrCorrupt = errors.New("verify: corrupt verify state")

	// ErrRetriesExhausted wraps the last error of a call that failed with
	// retryable errors Retry.MaxConsecutiveFailures times in a row.
	ErrRetriesExhausted = coordinator.ErrRetriesExhausted
)
