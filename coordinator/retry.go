package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/dsyncio/dsync/internal/spi"
)

// backoff returns the wait after the n-th consecutive failure (n >= 1).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if p.Jitter > 0 && d > 0 {
		d -= time.Duration(rand.Float64() * p.Jitter * float64(d))
	}
	return d
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

// Retry calls fn until it succeeds, fails with an error that is not
// retryable (spi.IsRetryable), fails p.MaxConsecutiveFailures times in a row
// (then the error wraps ErrRetriesExhausted and is fatal), or ctx is done
// (then it returns ctx's error). It waits with capped exponential backoff
// and jitter between attempts; op names the operation in log lines. It is the
// one retry loop of the coordinator and of verify.
func Retry(ctx context.Context, p RetryPolicy, log *slog.Logger, op string, fn func(context.Context) error) error {
	return retry(ctx, p, log, op, fn)
}

func retry(ctx context.Context, p RetryPolicy, log *slog.Logger, op string, fn func(context.Context) error) error {
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
			return exhausted(n, err)
		}
		wait := p.backoff(n)
		log.Warn("retrying after a retryable error", "op", op, "attempt", n, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// exhausted marks the error fatal: the retryable cause inside must not make
// a caller retry again.
func exhausted(n int, err error) error {
	return spi.Fatal(fmt.Errorf("%w (%d): %w", ErrRetriesExhausted, n, err))
}
