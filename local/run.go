package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/wal"
)

// Ref names a run of a root: its id, its log, and the root whose service
// may hold that log.
type Ref struct {
	Root root.Dir
	ID   string
	Path string
}

// RunRef is run id of root d.
func RunRef(d root.Dir, id string) Ref { return Ref{Root: d, ID: id, Path: d.Log(id)} }

// ParseRef reads a run named on the command line: a run id of root d, or
// the path of a log file. A file's id is its directory's name, and its root
// the directory above "runs" when it lives in a root's layout and the root
// was not given explicitly (rootSet), else d.
func ParseRef(arg string, d root.Dir, rootSet bool) Ref {
	if strings.HasSuffix(arg, ".bolt") || strings.ContainsRune(arg, os.PathSeparator) {
		if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
			path, _ := filepath.Abs(arg)
			ref := Ref{Root: d, ID: filepath.Base(filepath.Dir(path)), Path: path}
			if r, _, ok := root.RunOfLog(path); ok && !rootSet {
				ref.Root = r
			}
			return ref
		}
	}
	return RunRef(d, arg)
}

// Options configure Open. The zero value opens the file read-only.
type Options struct {
	// Write opens the file read-write, so that a Sender keeps its cursor
	// and last error beside the records. A file that cannot be written
	// (permissions, a read-only filesystem, damage) opens read-only
	// instead.
	Write bool
	// LockTimeout is how long Open waits for another process's lock on
	// the file before it asks the root's service. Zero means 100ms.
	LockTimeout time.Duration
}

// Run is an opened run: its log file, or the service that holds it. It is
// a replay.Source either way. It is not safe for concurrent use.
type Run struct {
	Ref
	// File is the log, or nil when the run is read through the service.
	File *wal.Log
	// Remote reads the run through the service, or is nil.
	Remote *Remote
}

var _ replay.Source = (*Run)(nil)

// Open opens a run's log, or, when another process holds it, reaches it
// through the service on the run's root. It returns an error wrapping
// wal.ErrNotExist when there is no log, and a *HeldError naming the holder
// when the log is held and no service answers for the run. ctx bounds the
// reads through the service until Close.
func Open(ctx context.Context, ref Ref, opts Options) (*Run, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 100 * time.Millisecond
	}
	// A log in a root's layout is opened only through real directories:
	// a link at runs/<id> may lead into another user's directory.
	if d, id, ok := root.RunOfLog(ref.Path); ok && filepath.Base(ref.Path) == root.LogName {
		if err := d.CheckRun(id); err != nil {
			return nil, err
		}
	}
	wo := wal.Options{ReadOnly: !opts.Write, MustExist: true, LockTimeout: opts.LockTimeout}
	l, err := wal.Open(ref.Path, wo)
	var damaged *wal.CorruptError
	if opts.Write && (errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.As(err, &damaged)) {
		// A damaged log is never opened for writing; its valid prefix
		// still reads.
		wo.ReadOnly = true
		l, err = wal.Open(ref.Path, wo)
	}
	switch {
	case err == nil:
		return &Run{Ref: ref, File: l}, nil
	case errors.Is(err, wal.ErrNotExist):
		return nil, &noRunError{ref}
	case !errors.Is(err, wal.ErrLocked):
		return nil, err
	}
	rem, err := Dial(ctx, ref)
	if err != nil {
		return nil, heldError(ref, err)
	}
	return &Run{Ref: ref, Remote: rem}, nil
}

// noRunError is Open's error for a run without a log.
type noRunError struct{ Ref }

func (e *noRunError) Error() string {
	return fmt.Sprintf("no run %s: %s does not exist", e.ID, e.Path)
}

func (e *noRunError) Unwrap() error { return wal.ErrNotExist }

// ThroughService reports whether the run is read through the service.
func (r *Run) ThroughService() bool { return r.Remote != nil }

// Source returns what a Sender reads: the file, which keeps the sender's
// cursor, or the service's stream, which keeps none (only the service may
// write the file).
func (r *Run) Source() sender.Source {
	if r.Remote != nil {
		return r.Remote
	}
	return r.File
}

// Scan reads the run's records from seq from, as stored (replay.Source).
func (r *Run) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	return r.Source().Scan(from, fn)
}

// Verify checks the run's log: from the file with the given tolerance for
// records whose time goes back, or by the service that holds it.
func (r *Run) Verify(ctx context.Context, tolerance time.Duration) (*runlogv1.VerifyResponse, error) {
	if r.Remote != nil {
		return r.Remote.c.Verify(ctx, &runlogv1.VerifyRequest{RunId: r.ID})
	}
	return replay.VerifyResponse(r.File, wal.VerifyOptions{TimeTolerance: tolerance})
}

// Follow returns a reader of the run through the service on its root that
// follows new records until the run's exit record (or seq to, when not 0)
// and calls chunk, when not nil, after each batch the service sends. A run
// read from its file is asked of the service too, since a service writes a
// run only while a client has it open: when one answers, the file is closed
// so that the service can open the run. ok is false when no service answers
// for the run; the file then stays open.
//
// The reader ends with nil when ctx is done.
func (r *Run) Follow(ctx context.Context, to uint64, chunk func() error) (t *Tail, ok bool) {
	if r.Remote == nil {
		rem, err := Dial(ctx, r.Ref)
		if err != nil {
			return nil, false
		}
		r.File.Close()
		r.File, r.Remote = nil, rem
	}
	return &Tail{ctx: ctx, rem: r.Remote, to: to, chunk: chunk}, true
}

// Close releases the file or the connection.
func (r *Run) Close() error {
	if r.File != nil {
		return r.File.Close()
	}
	if r.Remote != nil {
		return r.Remote.Close()
	}
	return nil
}
