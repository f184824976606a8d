package verify

import (
	"context"
	"time"

	"github.com/dsyncio/dsync/coordinator"
)

// retry runs fn under the verify's retry policy with the coordinator's one
// retry loop (coordinator.Retry).
func (v *Verifier) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	return coordinator.Retry(ctx, v.o.Retry, v.o.Logger, op, fn)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
