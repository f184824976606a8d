package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dsyncio/dsync/internal/spi"
)

// retry calls fn until it succeeds, fails with an error that is not
// retryable, fails Retry.MaxConsecutiveFailures times in a row, or ctx is
// done (then it returns ctx's error). op names the call in log lines.
func (v *Verifier) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	p := v.o.Retry
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !spi.IsRetryable(err) {
			return err
		}
		if n >= p.MaxConsecutiveFailures {
			return spi.Fatal(fmt.Errorf("%w (%d): %w", ErrRetriesExhausted, n, err))
		}
		d := p.InitialBackoff
		for i := 1; i < n && d < p.MaxBackoff; i++ {
			d *= 2
		}
		d = min(d, p.MaxBackoff)
		if p.Jitter > 0 && d > 0 {
			d -= time.Duration(rand.Float64() * p.Jitter * float64(d))
		}
		v.o.Logger.Warn("retrying after a retryable error", "op", op, "attempt", n, "wait", d, "err", err)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
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
