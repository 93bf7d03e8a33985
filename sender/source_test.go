package sender_test

import (
	"testing"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// sourceOnly offers a log's records and nothing of its cursor storage, as a
// run read through the service does.
type sourceOnly struct{ l *wal.Log }

func (s sourceOnly) Path() string                                          { return s.l.Path() }
func (s sourceOnly) Scan(from uint64, fn func(uint64, []byte) error) error { return s.l.Scan(from, fn) }
func (s sourceOnly) LastSeq() uint64                                       { return s.l.LastSeq() }
func (s sourceOnly) Finished() bool                                        { return s.l.Finished() }
func (s sourceOnly) Changed() <-chan struct{}                              { return nil }

// TestPushesASourceWithoutMarks: a draining sender pushes a source that
// keeps no cursors, from the hub's mark, and stores nothing beside it.
func TestPushesASourceWithoutMarks(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	l := waltest.Open(t)
	storetest.Write(t, l, storetest.Run{Project: "p", Rows: 3000, Keys: 3})
	up := h.Dial(sender.HubOptions{})
	src := sourceOnly{l}
	if _, ok := any(src).(sender.Marks); ok {
		t.Fatal("the test source has cursor storage")
	}
	for range 2 { // the second push finds everything there
		if err := run(t, sender.New(src, "r1", h.URL, up, fast(sender.Options{Drain: true, BatchRecords: 500}))); err != nil {
			t.Fatal(err)
		}
		checkSynced(t, h, "r1", l)
	}
	if cur, err := l.Cursors(); err != nil || len(cur) != 0 {
		t.Fatalf("cursors %v, %v: a source without marks got one", cur, err)
	}
}
