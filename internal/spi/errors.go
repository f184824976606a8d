package spi

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies an error for the coordinator. It survives the gRPC hop as a
// status code plus a google.rpc.ErrorInfo reason; message text is never
// parsed.
type Kind int

const (
	// KindFatal stops the run. Unclassified errors are fatal.
	KindFatal Kind = iota
	// KindRetryable is retried with backoff (network blips, failovers,
	// throttling, timeouts).
	KindRetryable
	// KindInvalidArgument is bad user input; the message is shown to the user
	// and must say what to change. Fatal.
	KindInvalidArgument
	// KindUnimplemented means the plugin does not implement the call. Fatal.
	KindUnimplemented
	// KindFailedPrecondition means a call came in the wrong state, e.g.
	// before Configure, or the source lost the history a cursor points to.
	// Fatal.
	KindFailedPrecondition
	// KindCanceled means the caller cancelled the call.
	KindCanceled
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindInvalidArgument:
		return "invalid argument"
	case KindUnimplemented:
		return "unimplemented"
	case KindFailedPrecondition:
		return "failed precondition"
	case KindCanceled:
		return "canceled"
	}
	return "fatal"
}

// Error is an error with a Kind. Build one with Retryable, Fatal,
// InvalidArgument, Unimplemented or FailedPrecondition; test with KindOf or
// IsRetryable.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// ErrUnimplemented is returned (wrapped with KindUnimplemented) by calls a
// plugin does not implement.
var ErrUnimplemented = errors.New("dsync: not implemented by this plugin")

// ErrNotConfigured is returned (wrapped with KindFailedPrecondition) by calls
// made before a successful Configure.
var ErrNotConfigured = errors.New("dsync: plugin is not configured: Configure must be called first")

// Retryable marks err as retryable. It returns nil for a nil err.
func Retryable(err error) error { return withKind(KindRetryable, err) }

// Fatal marks err as fatal, overriding the kind of any wrapped error.
func Fatal(err error) error { return withKind(KindFatal, err) }

// Unimplemented returns a KindUnimplemented error for the named call.
func Unimplemented(call string) error {
	return &Error{Kind: KindUnimplemented, Err: fmt.Errorf("%s: %w", call, ErrUnimplemented)}
}

// FailedPrecondition marks err as a failed precondition.
func FailedPrecondition(err error) error { return withKind(KindFailedPrecondition, err) }

// InvalidArgument returns a KindInvalidArgument error with a formatted
// message meant for the user.
func InvalidArgument(format string, args ...any) error {
	return &Error{Kind: KindInvalidArgument, Err: fmt.Errorf(format, args...)}
}

func withKind(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// KindOf returns the kind of err: that of the outermost *Error in its chain,
// KindCanceled for context.Canceled, KindRetryable for
// context.DeadlineExceeded, else KindFatal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindRetryable
	}
	return KindFatal
}

// IsRetryable reports whether err should be retried.
func IsRetryable(err error) bool { return err != nil && KindOf(err) == KindRetryable }
