package wire

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsyncio/dsync/internal/spi"
)

// errorDomain is the google.rpc.ErrorInfo domain of dsync error classes.
const errorDomain = "dsync.io"

// Reasons carried in google.rpc.ErrorInfo. A plugin in another language may
// set them to pick the class explicitly; otherwise the status code decides.
const (
	reasonRetryable          = "RETRYABLE"
	reasonFatal              = "FATAL"
	reasonInvalidArgument    = "INVALID_ARGUMENT"
	reasonUnimplemented      = "UNIMPLEMENTED"
	reasonFailedPrecondition = "FAILED_PRECONDITION"
	reasonCanceled           = "CANCELED"
)

// kinds is the one mapping between error kinds, gRPC codes and ErrorInfo
// reasons; both directions below read it.
var kinds = []struct {
	kind   spi.Kind
	code   codes.Code
	reason string
}{
	{spi.KindRetryable, codes.Unavailable, reasonRetryable},
	{spi.KindFatal, codes.Internal, reasonFatal},
	{spi.KindInvalidArgument, codes.InvalidArgument, reasonInvalidArgument},
	{spi.KindUnimplemented, codes.Unimplemented, reasonUnimplemented},
	{spi.KindFailedPrecondition, codes.FailedPrecondition, reasonFailedPrecondition},
	{spi.KindCanceled, codes.Canceled, reasonCanceled},
}

// retryableCodes are the codes the protocol defines as retryable when no
// ErrorInfo says otherwise.
var retryableCodes = map[codes.Code]bool{
	codes.Unavailable:       true,
	codes.Aborted:           true,
	codes.ResourceExhausted: true,
	codes.DeadlineExceeded:  true,
}

// RemoteError is an error returned by the other side of a gRPC connection.
// It is wrapped in an *spi.Error carrying its class.
type RemoteError struct {
	Code    codes.Code
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// GRPCStatus lets a RemoteError pass through another gRPC hop unchanged.
func (e *RemoteError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// ToStatus converts an error returned by a plugin implementation into a gRPC
// status error carrying its class. A nil error stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	k := spi.KindOf(err)
	for _, m := range kinds {
		if m.kind != k {
			continue
		}
		st := status.New(m.code, err.Error())
		if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: m.reason}); derr == nil {
			st = withInfo
		}
		return st.Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// FromStatus converts an error returned by a gRPC call into an *spi.Error
// whose Kind follows the ErrorInfo reason when present, else the code. A nil
// error stays nil; an error that is not a status is returned as a retryable
// error, since it comes from the transport.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &spi.Error{Kind: spi.KindRetryable, Err: err}
	}
	remote := &RemoteError{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		for _, m := range kinds {
			if m.reason == info.GetReason() {
				return &spi.Error{Kind: m.kind, Err: remote}
			}
		}
	}
	if retryableCodes[st.Code()] {
		return &spi.Error{Kind: spi.KindRetryable, Err: remote}
	}
	for _, m := range kinds {
		if m.code == st.Code() {
			return &spi.Error{Kind: m.kind, Err: remote}
		}
	}
	return &spi.Error{Kind: spi.KindFatal, Err: remote}
}

// Code returns the gRPC code of an error produced by FromStatus, or
// codes.Unknown.
func Code(err error) codes.Code {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return codes.Unknown
}
