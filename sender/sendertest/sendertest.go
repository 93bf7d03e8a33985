// Package sendertest has helpers for tests of senders: a real hub served
// in-process on loopback, and an Upstream wrapper that injects failures and
// counts what goes through.
package sendertest

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/store"
)

// Hub is a hub served in-process on a loopback port, with a real store.
type Hub struct {
	t     testing.TB
	opts  hub.Options
	addr  string
	URL   string
	Store *store.Bolt

	mu   sync.Mutex // protects stop
	stop func()
}

// StartHub starts a hub with a store in a temporary directory. Cleanup stops
// it and closes the store.
func StartHub(t testing.TB, opts hub.Options) *Hub {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h := &Hub{t: t, opts: opts, Store: st}
	h.serve("127.0.0.1:0")
	h.URL = "grpc://" + h.addr
	t.Cleanup(func() {
		h.Stop()
		st.Close()
	})
	return h
}

func (h *Hub) serve(addr string) {
	h.t.Helper()
	gs, err := hub.NewServer(h.Store, h.opts)
	if err != nil {
		h.t.Fatalf("hub server: %v", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		h.t.Fatalf("listen: %v", err)
	}
	h.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	h.mu.Lock()
	h.stop = func() {
		gs.Stop()
		<-done
	}
	h.mu.Unlock()
}

// Stop stops serving, closing every stream; the store stays open.
func (h *Hub) Stop() {
	h.mu.Lock()
	stop := h.stop
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Start serves again on the same address after Stop.
func (h *Hub) Start() {
	h.t.Helper()
	h.serve(h.addr)
}

// HighWater returns the run's mark in the hub's store.
func (h *Hub) HighWater(runID string) uint64 {
	hw, err := h.Store.HighWater(context.Background(), runID)
	if err != nil {
		h.t.Fatalf("high water of %s: %v", runID, err)
	}
	return hw
}

// Dial connects to the hub as a sender would.
func (h *Hub) Dial(opts sender.HubOptions) *sender.Hub {
	h.t.Helper()
	c, err := sender.DialHub(h.URL, opts)
	if err != nil {
		h.t.Fatalf("dial hub: %v", err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// Faulty wraps an Upstream: Fail, when set, may refuse an Open (attempt
// counts from 1); DropBatch, when set, makes a stream swallow a batch
// instead of sending it (the next one then leaves a gap). It counts opens,
// records sent and the most batches ever waiting for an ack.
type Faulty struct {
	Up        sender.Upstream
	Fail      func(attempt int) error
	DropBatch func(attempt int, batch uint64) bool

	mu          sync.Mutex // protects the counters
	opens       int
	sent        uint64
	outstanding int
	maxOut      int
}

var _ sender.Upstream = (*Faulty)(nil)

// Open implements sender.Upstream.
func (f *Faulty) Open(ctx context.Context, runID string) (sender.Stream, error) {
	f.mu.Lock()
	f.opens++
	n := f.opens
	f.outstanding = 0
	f.mu.Unlock()
	if f.Fail != nil {
		if err := f.Fail(n); err != nil {
			return nil, err
		}
	}
	s, err := f.Up.Open(ctx, runID)
	if err != nil {
		return nil, err
	}
	return &faultyStream{f: f, s: s, attempt: n}, nil
}

// Opens returns how many sessions were opened.
func (f *Faulty) Opens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens
}

// Sent returns how many records were sent.
func (f *Faulty) Sent() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent
}

// MaxOutstanding returns the most batches that ever waited for an ack.
func (f *Faulty) MaxOutstanding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxOut
}

type faultyStream struct {
	f       *Faulty
	s       sender.Stream
	attempt int
}

func (s *faultyStream) Send(batch uint64, records [][]byte) error {
	if s.f.DropBatch != nil && len(records) > 0 && s.f.DropBatch(s.attempt, batch) {
		return nil
	}
	s.f.mu.Lock()
	s.f.sent += uint64(len(records))
	s.f.outstanding++
	s.f.maxOut = max(s.f.maxOut, s.f.outstanding)
	s.f.mu.Unlock()
	return s.s.Send(batch, records)
}

func (s *faultyStream) Recv() (uint64, uint64, error) {
	b, hw, err := s.s.Recv()
	if err == nil {
		s.f.mu.Lock()
		s.f.outstanding--
		s.f.mu.Unlock()
	}
	return b, hw, err
}

func (s *faultyStream) Close() error { return s.s.Close() }
