package mongodb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/dsyncio/dsync/sdk"
)

func TestClassifyErr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want sdk.ErrorKind
	}{
		{"not primary", mongo.CommandError{Code: 10107, Name: "NotWritablePrimary"}, sdk.KindRetryable},
		{"stepped down", mongo.CommandError{Code: 189, Name: "PrimarySteppedDown"}, sdk.KindRetryable},
		{"labelled", mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}}, sdk.KindRetryable},
		{"cursor lost", mongo.CommandError{Code: 43, Name: "CursorNotFound"}, sdk.KindRetryable},
		{"timeout", context.DeadlineExceeded, sdk.KindRetryable},
		{"validation", mongo.CommandError{Code: 121, Name: "DocumentValidationFailure"}, sdk.KindFatal},
		{"auth", mongo.CommandError{Code: 18, Name: "AuthenticationFailed", Message: "auth failed"}, sdk.KindFatal},
		{"canceled", context.Canceled, sdk.KindCanceled},
		{"already classified", sdk.InvalidArgument("x"), sdk.KindInvalidArgument},
		{"write concern", mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}}, sdk.KindRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyErr(tt.err, []string{"hunter2-secret"}, "mongodb: op")
			if got := sdk.KindOf(err); got != tt.want {
				t.Errorf("kind %v, want %v (%v)", got, tt.want, err)
			}
			var in, out mongo.CommandError
			if errors.As(tt.err, &in) && !errors.As(err, &out) {
				t.Errorf("the driver error is not wrapped: %v", err)
			}
		})
	}
	err := classifyErr(errors.New("connection to mongodb://app:hunter2-secret@h failed"), []string{"hunter2-secret"}, "mongodb: op")
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("message shows the password: %v", err)
	}
}
