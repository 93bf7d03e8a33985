package sender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/sender"
)

// retryLog captures Retry's messages: the message and its wait.
type retryLog struct{ buf bytes.Buffer }

func (r *retryLog) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(&r.buf, nil)) }

func (r *retryLog) entries(t *testing.T) (msgs []string, waits []time.Duration) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Msg  string `json:"msg"`
			Wait int64  `json:"wait"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msgs = append(msgs, e.Msg)
		if e.Msg == "sync failed; retrying" {
			waits = append(waits, time.Duration(e.Wait))
		}
	}
	return msgs, waits
}

func TestRetryBackoffGrowsToItsCap(t *testing.T) {
	var rl retryLog
	unavailable := status.Error(codes.Unavailable, "hub down")
	calls := 0
	err := sender.Retry(context.Background(), sender.Options{
		Logger:      rl.logger(),
		BackoffBase: time.Millisecond,
		BackoffMax:  4 * time.Millisecond,
		MaxAttempts: 6,
		Rand:        func() float64 { return 0.5 },
	}, func(context.Context) (bool, error) {
		calls++
		return false, unavailable
	})
	if calls != 6 || !errors.Is(err, unavailable) || !strings.Contains(err.Error(), "gave up after 6 attempts") {
		t.Fatalf("Retry: %v after %d sessions, want to give up after 6", err, calls)
	}
	// Half of each window: 1, 2, 4, 4, 4 ms (capped); no wait after the last.
	_, waits := rl.entries(t)
	want := []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	refused := status.Error(codes.Unauthenticated, "the hub refused the token")
	calls := 0
	err := sender.Retry(context.Background(), sender.Options{Rand: func() float64 { return 0 }}, func(context.Context) (bool, error) {
		calls++
		return false, refused
	})
	if calls != 1 || err != refused {
		t.Fatalf("Retry: %v after %d sessions, want the refusal after 1", err, calls)
	}
}

func TestRetryRewindsAtOnceAndProgressResetsAttempts(t *testing.T) {
	var rl retryLog
	gap := status.Error(codes.FailedPrecondition, "gap")
	down := status.Error(codes.Unavailable, "down")
	// A rewind, then sessions that fail but move the mark, then success:
	// with MaxAttempts 2 only the progress keeps Retry going.
	script := []struct {
		progressed bool
		err        error
	}{{false, gap}, {true, down}, {true, down}, {true, down}, {false, nil}}
	calls := 0
	err := sender.Retry(context.Background(), sender.Options{
		Logger:      rl.logger(),
		MaxAttempts: 2,
		Rand:        func() float64 { return 0 },
	}, func(context.Context) (bool, error) {
		s := script[calls]
		calls++
		return s.progressed, s.err
	})
	if err != nil || calls != len(script) {
		t.Fatalf("Retry: %v after %d sessions, want success after %d", err, calls, len(script))
	}
	msgs, _ := rl.entries(t)
	if len(msgs) == 0 || msgs[0] != "upstream asks to resend" {
		t.Fatalf("log %q, want the rewind first, without a wait", msgs)
	}
}

// cancelWriter cancels a context when written to.
type cancelWriter func()

func (c cancelWriter) Write(p []byte) (int, error) { c(); return len(p), nil }

func TestRetryWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The message before the hour-long wait cancels ctx: Retry must not
	// sit out the wait.
	log := slog.New(slog.NewTextHandler(cancelWriter(cancel), nil))
	calls := 0
	err := sender.Retry(ctx, sender.Options{Logger: log, BackoffBase: time.Hour, BackoffMax: time.Hour, Rand: func() float64 { return 1 }},
		func(context.Context) (bool, error) {
			calls++
			return false, status.Error(codes.Unavailable, "down")
		})
	if err != context.Canceled || calls != 1 {
		t.Fatalf("Retry: %v after %d sessions, want context.Canceled after 1", err, calls)
	}
}
