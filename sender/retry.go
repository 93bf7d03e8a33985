package sender

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retry runs session until it returns nil, and then returns nil: the retry
// loop of a Sender. progressed reports whether the session moved the
// upstream's mark; a session that did resets the count of failures in a
// row.
//
// A failed session is retried after a wait drawn with full jitter from an
// exponentially growing window, opts.BackoffBase * 2^(failures-1) capped at
// opts.BackoffMax. A first FAILED_PRECONDITION in a row is retried at once:
// the upstream's mark moved back and the next session starts from it; only
// a rewind that keeps coming back waits. retry returns the session's error
// when Permanent reports it, an error wrapping the last one after
// opts.MaxAttempts sessions in a row failed (zero: never), and ctx's error
// when ctx is done. Of opts it uses Logger, BackoffBase, BackoffMax,
// MaxAttempts and Rand, with New's defaults.
func retry(ctx context.Context, opts Options, session func(ctx context.Context) (progressed bool, err error)) error {
	opts = opts.withDefaults()
	failures := 0
	for {
		progressed, err := session(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		failures++
		if Permanent(err) {
			return err
		}
		if opts.MaxAttempts > 0 && failures >= opts.MaxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", failures, err)
		}
		if status.Code(err) == codes.FailedPrecondition && failures == 1 {
			opts.Logger.Warn("upstream asks to resend", "err", err)
			continue
		}
		wait := retryWait(opts, failures)
		opts.Logger.Warn("sync failed; retrying", "err", err, "attempt", failures, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// retryWait returns the wait before retry number failures: full jitter over
// an exponentially growing, capped window.
func retryWait(opts Options, failures int) time.Duration {
	d := opts.BackoffBase << min(failures-1, 32)
	if d <= 0 || d > opts.BackoffMax {
		d = opts.BackoffMax
	}
	return time.Duration(opts.Rand() * float64(d))
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 4096
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 4
	}
	if o.Linger <= 0 {
		o.Linger = 100 * time.Millisecond
	}
	if o.CursorInterval <= 0 {
		o.CursorInterval = time.Second
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	if o.IdleCheck <= 0 {
		o.IdleCheck = 5 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o
}
