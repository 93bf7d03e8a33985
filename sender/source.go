package sender

import "github.com/runlog/runlog/wal"

// Source is the log a Sender reads: one run's records in seq order, as the
// log stores them. *wal.Log is one, over the file; a run read through the
// service that holds its file is another (package local).
type Source interface {
	// Path names the log in errors.
	Path() string
	// Scan calls fn with each record from seq from on, in order, exactly as
	// stored and checksum verified; data is valid only during the call. It
	// returns nil at the end of the log and fn's error when fn returns one.
	// A damaged record ends it with a *wal.CorruptError naming its seq,
	// after the records before it; a closed log with wal.ErrClosed.
	Scan(from uint64, fn func(seq uint64, data []byte) error) error
	// LastSeq returns the seq of the last record, 0 when there is none.
	LastSeq() uint64
	// Finished reports whether the log holds the run's exit record.
	Finished() bool
	// Changed returns a channel that is closed after the next change of
	// the log (records appended, or the log closed). Take it before
	// reading LastSeq so that no change is missed. A source that cannot
	// tell may return nil (never closed); only a draining Sender
	// (Options.Drain) reads such a source to its end.
	Changed() <-chan struct{}
}

// Marks is what a Source may also offer: named cursors and meta values kept
// beside the records. A Sender whose Source is Marks keeps its position
// there (the cursor "upstream:<URL>", see CursorName) and its last error
// (ErrorKey), for listings and for the service's followers. A Source that is
// not (a run read through the service, which alone may write the file) is
// pushed all the same: the upstream's mark decides what is sent, and the
// cursor catches up the next time the run is pushed from its file.
type Marks interface {
	// Cursor returns the seq stored under name, 0 when there is none.
	Cursor(name string) (uint64, error)
	// Cursors returns every cursor by name.
	Cursors() (map[string]uint64, error)
	// SetCursor stores seq under name.
	SetCursor(name string, seq uint64) error
	// Meta returns the value stored under key, nil when there is none.
	Meta(key string) ([]byte, error)
	// SetMeta stores value under key; nil deletes it.
	SetMeta(key string, value []byte) error
}

// A run's log file is both.
var (
	_ Source = (*wal.Log)(nil)
	_ Marks  = (*wal.Log)(nil)
)
