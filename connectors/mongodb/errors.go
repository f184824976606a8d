package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/sdk"
)

var (
	// ErrHistoryLost is wrapped (as a failed precondition) by StreamUpdates
	// when the change history a cursor points to is gone: change stream
	// error 286, or an oplog whose oldest entry is newer than the cursor.
	ErrHistoryLost = errors.New("mongodb: change history lost")
	// ErrNoCDC is wrapped (as a failed precondition) by GeneratePlan and
	// StreamUpdates when the server has neither change streams nor an
	// oplog.
	ErrNoCDC = errors.New("mongodb: no change data capture on this server")
	// ErrNamespaceChanged is wrapped (fatal) by StreamUpdates when a
	// streamed collection or database is dropped or renamed, or the change
	// stream is invalidated: the copy no longer matches the source.
	ErrNamespaceChanged = errors.New("mongodb: namespace dropped or renamed during the run")
	// ErrIndexConflict is wrapped (as a failed precondition) by
	// CreateIndexes when the target has an index of the same name with
	// another definition.
	ErrIndexConflict = errors.New("mongodb: index conflict")
)

// Server error codes (src/mongo/base/error_codes.yml).
const (
	codeCursorNotFound        = 43
	codeNamespaceNotFound     = 26
	codeDuplicateKey          = 11000
	codeChangeStreamHistory   = 286
	codeChangeStreamFatal     = 280
	codeCappedPositionLost    = 136
	codeAuthenticationFailed  = 18
	codeUnauthorized          = 13
	codeIndexOptionsConflict  = 85
	codeIndexKeySpecsConflict = 86
)

// retryableCodes are server errors that go away by themselves: failovers,
// shutdowns, network trouble, timeouts, lost cursors (ListData reopens from
// its durable cursor).
var retryableCodes = map[int]bool{
	6: true, 7: true, 24: true, 46: true, 50: true, 63: true, 64: true, 89: true, 91: true,
	112: true, 133: true, 150: true, 189: true, 234: true, 262: true, 9001: true,
	10107: true, 11600: true, 11602: true, 13388: true, 13435: true, 13436: true,
	codeCursorNotFound: true,
}

var retryableLabels = []string{
	"RetryableWriteError", "NetworkError", "TransientTransactionError",
	"ResumableChangeStreamError", "RetryableError", "SystemOverloadedError",
}

// classify gives err the kind the coordinator acts on and prefixes it with
// what failed. Messages are scrubbed of the connection string's secrets.
func (c *Connector) classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var secrets []string
	if st := c.st.Load(); st != nil {
		secrets = st.cc.secrets
	}
	return classifyErr(err, secrets, fmt.Sprintf(format, args...))
}

func classifyErr(err error, secrets []string, what string) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	msg := redact.String(err.Error(), secrets...)
	wrapped := &scrubbed{msg: what + ": " + msg, err: err}
	if retryable(err) {
		return sdk.Retryable(wrapped)
	}
	var srv mongo.ServerError
	if errors.As(err, &srv) && (srv.HasErrorCode(codeAuthenticationFailed) || srv.HasErrorCode(codeUnauthorized)) {
		return sdk.Fatal(&scrubbed{msg: what + ": " + msg + " (check the user, password and its roles)", err: err})
	}
	return sdk.Fatal(wrapped)
}

func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || mongo.IsNetworkError(err) {
		return true
	}
	if errors.As(err, &topology.ServerSelectionError{}) {
		return true
	}
	var srv mongo.ServerError
	if errors.As(err, &srv) {
		for _, l := range retryableLabels {
			if srv.HasErrorLabel(l) {
				return true
			}
		}
		for _, code := range srv.ErrorCodes() {
			if retryableCodes[code] {
				return true
			}
		}
	}
	var le mongo.LabeledError
	if errors.As(err, &le) {
		for _, l := range retryableLabels {
			if le.HasErrorLabel(l) {
				return true
			}
		}
	}
	return false
}

// hasCode reports whether err carries a server error code.
func hasCode(err error, codes ...int) bool {
	var srv mongo.ServerError
	if !errors.As(err, &srv) {
		return false
	}
	for _, c := range codes {
		if srv.HasErrorCode(c) {
			return true
		}
	}
	return false
}

// isServerError reports whether the server rejected a command (as opposed
// to a network or client problem).
func isServerError(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code != 0 && !retryable(err)
}

// scrubbed carries a message without secrets and keeps the driver error for
// errors.Is and errors.As.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
