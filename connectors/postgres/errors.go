package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dsyncio/dsync/sdk"
)

// ErrTruncate is wrapped by the error StreamUpdates returns when a
// streamed table was truncated: dsync cannot replay a TRUNCATE as
// changes of documents.
var ErrTruncate = errors.New("postgres: a streamed table was truncated")

// ErrSlotAdvanced is wrapped by the error StreamUpdates returns when the
// replication slot has been advanced past the requested cursor: changes
// after the cursor are gone.
var ErrSlotAdvanced = errors.New("postgres: the replication slot is past the cursor")

// ErrNoSlot is wrapped by the error StreamUpdates returns when the
// cursor's replication slot does not exist (any more).
var ErrNoSlot = errors.New("postgres: the replication slot does not exist")

// classify gives err the kind the coordinator acts on: connection
// problems, server shutdowns, serialization failures, deadlocks and lack
// of resources are retryable; context errors stay as they are; the rest
// is fatal. what says what failed, for the message.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	if ctxErr := contextError(err); ctxErr != nil {
		return ctxErr
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	wrapped := fmt.Errorf("postgres: %s: %w", what, err)
	if isRetryable(err) {
		return sdk.Retryable(wrapped)
	}
	return sdk.Fatal(wrapped)
}

// contextError returns the context error err stems from, if any.
func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"), // insufficient resources
			pgErr.Code == "40001",               // serialization failure
			pgErr.Code == "40P01",               // deadlock
			pgErr.Code == "55006",               // object in use (a slot still held by a closing session)
			pgErr.Code == "57P01",               // admin shutdown
			pgErr.Code == "57P02",               // crash shutdown
			pgErr.Code == "57P03",               // cannot connect now (starting up)
			pgErr.Code == "58000", pgErr.Code == "58030":
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// isDataError reports an error caused by the data of a write: a value
// that does not fit its column, a violated constraint.
func isDataError(err error) bool {
	code := pgCode(err)
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") || code == "42804"
}
