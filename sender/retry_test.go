package sender_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/sender"
)

// retryTrace records what Retry did, in order: "session" for each session it
// ran and "wait" for each backoff wait. Retry draws a wait's jitter from
// Options.Rand once, right before waiting, so the Rand seam marks the waits;
// it returns 0 so that no test sits out a wait.
type retryTrace struct{ events []string }

func (tr *retryTrace) rand() float64 {
	tr.events = append(tr.events, "wait")
	return 0
}

// script returns a session that plays results in order, noting each call.
func (tr *retryTrace) script(t *testing.T, results ...sessionResult) func(context.Context) (bool, error) {
	return func(context.Context) (bool, error) {
		if len(results) == 0 {
			t.Fatal("Retry ran a session after the script ended")
		}
		tr.events = append(tr.events, "session")
		r := results[0]
		results = results[1:]
		return r.progressed, r.err
	}
}

type sessionResult struct {
	progressed bool
	err        error
}

func (tr *retryTrace) check(t *testing.T, want ...string) {
	t.Helper()
	if !slices.Equal(tr.events, want) {
		t.Fatalf("Retry did %q, want %q", tr.events, want)
	}
}

var (
	errDown = status.Error(codes.Unavailable, "hub down")
	errGap  = status.Error(codes.FailedPrecondition, "gap")
)

func TestRetryWaitsBetweenFailuresAndGivesUpAfterMaxAttempts(t *testing.T) {
	var tr retryTrace
	down := sessionResult{err: errDown}
	err := sender.Retry(context.Background(), sender.Options{MaxAttempts: 4, Rand: tr.rand},
		tr.script(t, down, down, down, down))
	if !errors.Is(err, errDown) || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("Retry: %v, want to give up after 4 attempts", err)
	}
	// A wait between sessions, none after the last.
	tr.check(t, "session", "wait", "session", "wait", "session", "wait", "session")
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	var tr retryTrace
	refused := status.Error(codes.Unauthenticated, "the hub refused the token")
	err := sender.Retry(context.Background(), sender.Options{Rand: tr.rand}, tr.script(t, sessionResult{err: refused}))
	if err != refused {
		t.Fatalf("Retry: %v, want the refusal", err)
	}
	tr.check(t, "session")
}

func TestRetryRewindsAtOnceAndProgressResetsAttempts(t *testing.T) {
	var tr retryTrace
	// A rewind, then sessions that fail but move the mark, then success:
	// with MaxAttempts 2 only the progress keeps Retry going.
	err := sender.Retry(context.Background(), sender.Options{MaxAttempts: 2, Rand: tr.rand}, tr.script(t,
		sessionResult{err: errGap}, sessionResult{true, errDown}, sessionResult{true, errDown}, sessionResult{true, errDown}, sessionResult{}))
	if err != nil {
		t.Fatalf("Retry: %v, want success", err)
	}
	// No wait after the rewind; one after each other failure.
	tr.check(t, "session", "session", "wait", "session", "wait", "session", "wait", "session")
}

func TestRetryWaitsForARewindThatComesBack(t *testing.T) {
	var tr retryTrace
	err := sender.Retry(context.Background(), sender.Options{Rand: tr.rand}, tr.script(t,
		sessionResult{err: errGap}, sessionResult{err: errGap}, sessionResult{}))
	if err != nil {
		t.Fatalf("Retry: %v, want success", err)
	}
	tr.check(t, "session", "session", "wait", "session")
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	// Drawing the jitter of the hour-long wait cancels ctx: Retry must not
	// sit out the wait.
	err := sender.Retry(ctx, sender.Options{BackoffBase: time.Hour, BackoffMax: time.Hour,
		Rand: func() float64 { cancel(); return 1 }},
		func(context.Context) (bool, error) {
			calls++
			return false, errDown
		})
	if err != context.Canceled || calls != 1 {
		t.Fatalf("Retry: %v after %d sessions, want context.Canceled after 1", err, calls)
	}
}
