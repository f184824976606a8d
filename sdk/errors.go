package sdk

import "github.com/dsyncio/dsync/internal/spi"

// ErrorKind classifies an error for the coordinator: retryable errors are
// retried with backoff, every other kind stops the run. The kind travels
// across gRPC as a status code and a google.rpc.ErrorInfo reason.
type ErrorKind = spi.Kind

// Error kinds.
const (
	KindFatal              = spi.KindFatal
	KindRetryable          = spi.KindRetryable
	KindInvalidArgument    = spi.KindInvalidArgument
	KindUnimplemented      = spi.KindUnimplemented
	KindFailedPrecondition = spi.KindFailedPrecondition
	KindCanceled           = spi.KindCanceled
)

// Error is an error with a kind; use the constructors below.
type Error = spi.Error

// ErrUnimplemented is wrapped by errors of calls a plugin does not implement.
var ErrUnimplemented = spi.ErrUnimplemented

// ErrNotConfigured is wrapped by errors of calls made before Configure.
var ErrNotConfigured = spi.ErrNotConfigured

// Retryable marks err as retryable: a network blip, a failover, throttling.
// Do not return it for errors that will fail again the same way.
func Retryable(err error) error { return spi.Retryable(err) }

// Fatal marks err as fatal: the run stops and err is shown to the user.
// Unmarked errors are fatal too.
func Fatal(err error) error { return spi.Fatal(err) }

// InvalidArgument reports bad user input (connection string, options) with a
// one-line message that says what to change.
func InvalidArgument(format string, args ...any) error { return spi.InvalidArgument(format, args...) }

// FailedPrecondition reports a state problem the user must resolve, e.g. a
// cursor pointing to change history the source no longer has.
func FailedPrecondition(err error) error { return spi.FailedPrecondition(err) }

// Unimplemented reports that the named call is not implemented.
func Unimplemented(call string) error { return spi.Unimplemented(call) }

// KindOf returns the kind of err (KindFatal for unmarked errors).
func KindOf(err error) ErrorKind { return spi.KindOf(err) }

// IsRetryable reports whether err should be retried.
func IsRetryable(err error) bool { return spi.IsRetryable(err) }
