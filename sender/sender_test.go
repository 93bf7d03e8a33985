package sender_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/hub"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

var finished = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}

// fast are options that keep retries quick in tests.
func fast(o sender.Options) sender.Options {
	o.BackoffBase = time.Millisecond
	o.BackoffMax = 20 * time.Millisecond
	o.Linger = time.Millisecond
	return o
}

// run runs s with a deadline and returns its error.
func run(t *testing.T, s *sender.Sender) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Run(ctx)
}

// checkSynced fails unless the hub holds exactly l's records.
func checkSynced(t *testing.T, h *sendertest.Hub, runID string, l *wal.Log) {
	t.Helper()
	want, n, err := storetest.LogDigest(l, l.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := h.Store.Run(context.Background(), runID)
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	if run.GetHighWater() != n || !bytes.Equal(run.GetDigest(), want) {
		t.Fatalf("hub holds %d records (digest match %v), log has %d", run.GetHighWater(), bytes.Equal(run.GetDigest(), want), n)
	}
}

func TestSyncsFinishedRun(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Project: "p", Rows: 10_000, Keys: 5, Exit: finished})
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{})}
	var acked, added uint64
	s := sender.New(l, "r1", h.URL, up, fast(sender.Options{
		BatchRecords: 1000, MaxInflight: 3,
		OnAck: func(hw, n uint64) { acked = hw; added += n },
	}))
	if err := run(t, s); err != nil {
		t.Fatal(err)
	}
	checkSynced(t, h, "r1", l)
	if c, _ := l.Cursor(sender.CursorName(h.URL)); c != l.LastSeq() {
		t.Fatalf("cursor %d, want %d", c, l.LastSeq())
	}
	if acked != l.LastSeq() || added != l.LastSeq() || up.Sent() != l.LastSeq() {
		t.Fatalf("acked %d, added %d, sent %d; want %d each", acked, added, up.Sent(), l.LastSeq())
	}
	if m := up.MaxOutstanding(); m > 3 || m < 2 {
		t.Fatalf("at most %d batches in flight, want 2..3 (pipelined, bounded by MaxInflight)", m)
	}
	// A second run sends only the record at the hub's mark, which the hub
	// checks against its own, and adds nothing.
	up2 := &sendertest.Faulty{Up: up.Up}
	var added2 uint64
	if err := run(t, sender.New(l, "r1", h.URL, up2, fast(sender.Options{
		OnAck: func(_, n uint64) { added2 += n },
	}))); err != nil {
		t.Fatal(err)
	}
	if up2.Sent() != 1 || added2 != 0 {
		t.Fatalf("second run sent %d records and added %d, want 1 (the check) and 0", up2.Sent(), added2)
	}
	checkSynced(t, h, "r1", l)
}

func TestFollowsLiveRun(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	s := sender.New(l, "live", h.URL, h.Dial(sender.HubOptions{}), fast(sender.Options{BatchRecords: 64}))
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { errc <- s.Run(ctx) }()
	for i := range 20 {
		if err := l.Append(waltest.History(int64(i*50), 50, 2)); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			// Wait for the hub to catch up once mid-run: the sender is
			// following, not just draining at the end.
			waitFor(t, func() bool { return h.HighWater("live") == l.LastSeq() })
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned before the run finished: %v", err)
	default:
	}
	if err := l.Append([]*runlogv1.Record{{Payload: &runlogv1.Record_Exit{Exit: finished}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkSynced(t, h, "live", l)
}

// waitFor polls cond until it holds; the hub's mark has no event to wait on
// from outside.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRetriesTransientErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			h := sendertest.StartHub(t, hub.Options{})
			l := waltest.Open(t)
			storetest.Write(t, l, storetest.Run{Rows: 100, Keys: 1, Exit: finished})
			var sawError []byte
			up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{}), Fail: func(n int) error {
				if n == 4 {
					sawError, _ = l.Meta(sender.ErrorKey(h.URL))
				}
				if n <= 3 {
					return status.Error(code, "hub away")
				}
				return nil
			}}
			if err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{}))); err != nil {
				t.Fatal(err)
			}
			if up.Opens() != 4 {
				t.Fatalf("%d sessions, want 3 failed and 1 good", up.Opens())
			}
			if !bytes.Contains(sawError, []byte("hub away")) {
				t.Fatalf("sync error while failing: %q", sawError)
			}
			if v, _ := l.Meta(sender.ErrorKey(h.URL)); v != nil {
				t.Fatalf("sync error not cleared after success: %q", v)
			}
			checkSynced(t, h, "r", l)
		})
	}
}

func TestStopsOnPermanentErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument} {
		t.Run(code.String(), func(t *testing.T) {
			h := sendertest.StartHub(t, hub.Options{})
			l := waltest.Open(t)
			storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1})
			up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{}), Fail: func(int) error { return status.Error(code, "no") }}
			err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{})))
			if status.Code(errors.Unwrap(err)) != code || !sender.Permanent(err) {
				t.Fatalf("Run: %v, want a permanent %v", err, code)
			}
			if up.Opens() != 1 {
				t.Fatalf("%d attempts, want 1 (no retry)", up.Opens())
			}
			if v, _ := l.Meta(sender.ErrorKey(h.URL)); !bytes.Contains(v, []byte("no")) {
				t.Fatalf("sync error %q", v)
			}
		})
	}
}

func TestOneOffPushLeavesNoTraceOfAnUpstreamThatNeverAcked(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1, Exit: finished})
	refuse := func(int) error { return status.Error(codes.Unauthenticated, "no") }
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{}), Fail: refuse}
	if err := run(t, sender.New(l, "r", "grpc://typo:1", up, fast(sender.Options{Drain: true}))); err == nil {
		t.Fatal("Run succeeded against a refusing upstream")
	}
	if cur, _ := l.Cursors(); len(cur) != 0 {
		t.Fatalf("cursors %v after a one-off push nobody acknowledged", cur)
	}
	if v, _ := l.Meta(sender.ErrorKey("grpc://typo:1")); v != nil {
		t.Fatalf("sync error %q kept for an upstream that never acknowledged", v)
	}
	// Once an upstream has acknowledged, a one-off push keeps its cursor
	// and, later, its errors.
	ok := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{})}
	if err := run(t, sender.New(l, "r", h.URL, ok, fast(sender.Options{Drain: true}))); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Cursor(sender.CursorName(h.URL)); c != l.LastSeq() {
		t.Fatalf("cursor %d, want %d", c, l.LastSeq())
	}
	up = &sendertest.Faulty{Up: h.Dial(sender.HubOptions{}), Fail: refuse}
	run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{Drain: true})))
	if v, _ := l.Meta(sender.ErrorKey(h.URL)); !bytes.Contains(v, []byte("no")) {
		t.Fatalf("sync error %q, want the refusal", v)
	}
}

func TestWrongTokenStopsAtOnce(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{Token: "right"})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1, Exit: finished})
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{Token: "wrong"})}
	err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{})))
	if status.Code(errors.Unwrap(err)) != codes.Unauthenticated {
		t.Fatalf("Run: %v, want UNAUTHENTICATED", err)
	}
	if up.Opens() != 1 || h.HighWater("r") != 0 {
		t.Fatalf("%d sessions, hub mark %d; want 1 and 0", up.Opens(), h.HighWater("r"))
	}
	up = &sendertest.Faulty{Up: h.Dial(sender.HubOptions{Token: "right"})}
	if err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{}))); err != nil {
		t.Fatal(err)
	}
	checkSynced(t, h, "r", l)
}

func TestRewindsAfterGap(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 5000, Keys: 1, Exit: finished})
	up := &sendertest.Faulty{
		Up: h.Dial(sender.HubOptions{}),
		// The first session loses its second batch: the third leaves a gap.
		DropBatch: func(attempt int, batch uint64) bool { return attempt == 1 && batch == 2 },
	}
	if err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{BatchRecords: 500}))); err != nil {
		t.Fatal(err)
	}
	if up.Opens() != 2 {
		t.Fatalf("%d sessions, want 2 (one rewind)", up.Opens())
	}
	checkSynced(t, h, "r", l)
}

func TestResumesFromHubMark(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 3000, Keys: 1, Exit: finished})
	// The hub already holds a prefix that the cursor does not know about
	// (the sender died after the ack, before storing the cursor).
	var prefix [][]byte
	l.Scan(1, func(seq uint64, data []byte) error {
		if seq <= 1234 {
			prefix = append(prefix, append([]byte(nil), data...))
		}
		return nil
	})
	if _, err := h.Store.Append(context.Background(), "r", prefix); err != nil {
		t.Fatal(err)
	}
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{})}
	if err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{}))); err != nil {
		t.Fatal(err)
	}
	if want := l.LastSeq() - 1234 + 1; up.Sent() != want {
		t.Fatalf("sent %d records, want %d (the record at the hub's mark and what the hub lacked)", up.Sent(), want)
	}
	checkSynced(t, h, "r", l)
}

func TestHubDownThenBack(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	h.Stop()
	l := waltest.Open(t)
	up := h.Dial(sender.HubOptions{MaxBackoff: 50 * time.Millisecond})
	s := sender.New(l, "r", h.URL, up, fast(sender.Options{}))
	errc := make(chan error, 1)
	go func() { errc <- run(t, s) }()
	storetest.Write(t, l, storetest.Run{Rows: 2000, Keys: 2})
	// The sender notes why it cannot sync.
	waitFor(t, func() bool { v, _ := l.Meta(sender.ErrorKey(h.URL)); return len(v) > 0 })
	h.Start()
	if err := l.Append([]*runlogv1.Record{{Payload: &runlogv1.Record_Exit{Exit: finished}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkSynced(t, h, "r", l)
	if v, _ := l.Meta(sender.ErrorKey(h.URL)); v != nil {
		t.Fatalf("sync error left after success: %q", v)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	h.Stop()
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1})
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{MaxBackoff: 10 * time.Millisecond})}
	err := run(t, sender.New(l, "r", h.URL, up, fast(sender.Options{Drain: true, MaxAttempts: 3})))
	if err == nil || sender.Permanent(err) || up.Opens() != 3 {
		t.Fatalf("Run: %v after %d sessions, want to give up after 3", err, up.Opens())
	}
}

func TestDamagedRecordStopsAfterPrefix(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Write(t, l, storetest.Run{Rows: 500, Keys: 1, Exit: finished})
	l.Close()
	damage(t, path, 300)
	l, err = wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = run(t, sender.New(l, "r", h.URL, h.Dial(sender.HubOptions{}), fast(sender.Options{BatchRecords: 64})))
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Seq != 300 {
		t.Fatalf("Run: %v, want a CorruptError at seq 300", err)
	}
	if hw := h.HighWater("r"); hw != 299 {
		t.Fatalf("hub holds %d records, want the 299 before the damage", hw)
	}
	if c, _ := l.Cursor(sender.CursorName(h.URL)); c != 299 {
		t.Fatalf("cursor %d, want 299", c)
	}
}

// damage flips a byte of record seq in the log at path.
func damage(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		v := append([]byte(nil), b.Get(k[:])...)
		v[len(v)-1] ^= 0x55
		return b.Put(k[:], v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConflictWhenHubHoldsMore(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	other := storetest.Records(t, storetest.Run{Rows: 100, Keys: 1})
	if _, err := h.Store.Append(context.Background(), "r", other); err != nil {
		t.Fatal(err)
	}
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1, Exit: finished})
	err := run(t, sender.New(l, "r", h.URL, h.Dial(sender.HubOptions{}), fast(sender.Options{})))
	if !errors.Is(err, sender.ErrConflict) {
		t.Fatalf("Run: %v, want ErrConflict", err)
	}
}

func TestRefusesAnotherRunWithTheSameID(t *testing.T) {
	// Two machines log runs under the same id; the second is at least as
	// long as what the hub holds of the first, so the mark alone cannot
	// tell them apart.
	for _, tc := range []struct {
		name        string
		firstRows   int // of the run already on the hub
		firstExited bool
		otherRows   int
	}{
		{"longer", 100, true, 300},
		{"same length", 100, true, 100},
		{"hub holds a live prefix", 50, false, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sendertest.StartHub(t, hub.Options{})
			first := waltest.Open(t)
			r := storetest.Run{Rows: tc.firstRows, Keys: 1}
			if tc.firstExited {
				r.Exit = finished
			}
			storetest.Write(t, first, r)
			if err := run(t, sender.New(first, "baseline", h.URL, h.Dial(sender.HubOptions{}), fast(sender.Options{Drain: true}))); err != nil {
				t.Fatal(err)
			}
			checkSynced(t, h, "baseline", first)

			other := waltest.Open(t)
			storetest.Write(t, other, storetest.Run{Rows: tc.otherRows, Keys: 1, Exit: finished})
			up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{})}
			var added uint64
			s := sender.New(other, "baseline", h.URL, up, fast(sender.Options{
				BatchRecords: 64,
				OnAck:        func(_, n uint64) { added += n },
			}))
			err := run(t, s)
			if status.Code(err) != codes.AlreadyExists || !sender.Permanent(err) {
				t.Fatalf("Run: %v, want a permanent ALREADY_EXISTS", err)
			}
			mark := first.LastSeq()
			for _, want := range []string{"run baseline", fmt.Sprintf("different record at seq %d", mark), "another run uses this run id"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Run: %q does not say %q", err, want)
				}
			}
			if up.Opens() != 1 || added != 0 {
				t.Fatalf("%d sessions, %d records added; want 1 and 0 (no retries)", up.Opens(), added)
			}
			// The hub still holds exactly the first run.
			checkSynced(t, h, "baseline", first)
			if c, _ := other.Cursor(sender.CursorName(h.URL)); c > 0 {
				t.Fatalf("the other run's cursor is %d, want none", c)
			}
			if v, err := other.Meta(sender.ErrorKey(h.URL)); err != nil || !strings.Contains(string(v), "another run uses this run id") {
				t.Fatalf("sync error kept in the log: %q, %v", v, err)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in, canonical, target string
		secure, bad           bool
	}{
		{in: "grpc://127.0.0.1:7070", canonical: "grpc://127.0.0.1:7070", target: "127.0.0.1:7070"},
		{in: "GRPC://hub.example:443/", canonical: "grpc://hub.example:443", target: "hub.example:443"},
		{in: "grpcs://hub.example:443", canonical: "grpcs://hub.example:443", target: "hub.example:443", secure: true},
		{in: "grpc://[::1]:7070", canonical: "grpc://[::1]:7070", target: "[::1]:7070"},
		{in: "grpc://10.0.0.1:7070,hub-b:7071/", canonical: "grpc://10.0.0.1:7070,hub-b:7071", target: "10.0.0.1:7070,hub-b:7071"},
		{in: "grpc://hub-a:7070,", bad: true},
		{in: "grpc://hub-a:7070,hub-b", bad: true},
		{in: "http://hub:80", bad: true},
		{in: "hub:7070", bad: true},
		{in: "grpc://hub", bad: true},
		{in: "grpc://hub:7070/path", bad: true},
		{in: "grpc://:7070", bad: true},
	}
	for _, tc := range tests {
		c, target, secure, err := sender.ParseURL(tc.in)
		if tc.bad {
			if !errors.Is(err, sender.ErrBadURL) {
				t.Errorf("%q: %v, want ErrBadURL", tc.in, err)
			}
			continue
		}
		if err != nil || c != tc.canonical || target != tc.target || secure != tc.secure {
			t.Errorf("%q: %q %q %v %v", tc.in, c, target, secure, err)
		}
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		h := sendertest.StartHub(t, hub.Options{})
		defer h.Store.Close()
		defer h.Stop()
		up, err := sender.DialHub(h.URL, sender.HubOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer up.Close()
		l := waltest.Open(t)
		storetest.Write(t, l, storetest.Run{Rows: 100, Keys: 1})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- sender.New(l, "r", h.URL, up, fast(sender.Options{})).Run(ctx) }()
		waitFor(t, func() bool { return h.HighWater("r") == l.LastSeq() })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left over (before: %d)\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestFollowerSyncsToEveryTarget(t *testing.T) {
	a := sendertest.StartHub(t, hub.Options{})
	b := sendertest.StartHub(t, hub.Options{})
	f := sender.NewFollower([]sender.Target{
		{URL: a.URL, Up: a.Dial(sender.HubOptions{})},
		{URL: b.URL, Up: b.Dial(sender.HubOptions{})},
	}, fast(sender.Options{}))

	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Rows: 500, Keys: 2})
	if !f.Wants("r", l) {
		t.Fatal("a running run is not wanted")
	}
	errc := make(chan error, 1)
	go func() { errc <- f.Follow(context.Background(), "r", l) }()
	if err := l.Append([]*runlogv1.Record{{Payload: &runlogv1.Record_Exit{Exit: finished}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkSynced(t, a, "r", l)
	checkSynced(t, b, "r", l)
	if f.Wants("r", l) {
		t.Fatal("a finished run synced everywhere is still wanted")
	}
	// A cursor behind on one target makes it wanted again.
	if err := l.SetCursor(sender.CursorName(b.URL), 3); err != nil {
		t.Fatal(err)
	}
	if !f.Wants("r", l) {
		t.Fatal("a finished run with a cursor behind is not wanted")
	}
}

func TestFollowerNeverSyncsOfflineRuns(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	up := &sendertest.Faulty{Up: h.Dial(sender.HubOptions{})}
	f := sender.NewFollower([]sender.Target{{URL: h.URL, Up: up}}, fast(sender.Options{}))
	l := waltest.Open(t)
	if err := l.SetMeta(sender.MetaSyncMode, []byte("offline")); err != nil {
		t.Fatal(err)
	}
	storetest.Write(t, l, storetest.Run{Rows: 10, Keys: 1, Exit: finished})
	if f.Wants("r", l) {
		t.Fatal("offline run wanted")
	}
	if err := f.Follow(context.Background(), "r", l); err != nil {
		t.Fatal(err)
	}
	if up.Opens() != 0 || h.HighWater("r") != 0 {
		t.Fatalf("offline run: %d sessions opened, hub holds %d", up.Opens(), h.HighWater("r"))
	}
}
