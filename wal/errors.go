package wal

import (
	"errors"
	"fmt"
)

// Errors returned by the log. Test with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrFinished is returned by Append once the log holds an exit record.
	ErrFinished = errors.New("wal: run finished")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("wal: locked by another process")
	// ErrNotExist is returned by Open with ReadOnly or MustExist when there is
	// no log at the path.
	ErrNotExist = errors.New("wal: no log")
	// ErrCursorAhead is returned by SetCursor for a sequence past the end.
	ErrCursorAhead = errors.New("wal: cursor past last record")
	// ErrBadBatch is returned by Append for a batch that breaks an invariant
	// of the log itself (a record after an exit record).
	ErrBadBatch = errors.New("wal: bad batch")
)

// CorruptError reports a record that cannot be trusted: its checksum does not
// match, it does not decode, or its key and contents disagree.
type CorruptError struct {
	Path string
	Seq  uint64
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal %s: corrupt record at seq %d: %v", e.Path, e.Seq, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }
