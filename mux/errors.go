package mux

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// Errors of the service. Test with errors.Is; statusOf maps each to a gRPC
// code.
var (
	// ErrRunExists: Init without resume on a run that exists.
	ErrRunExists = errors.New("mux: run exists")
	// ErrRunNotFound: the run does not exist under the root.
	ErrRunNotFound = errors.New("mux: no such run")
	// ErrRunFinished: the run holds an exit record (or is writing one).
	ErrRunFinished = errors.New("mux: run finished")
	// ErrNotAttached: Publish from a client that did not Init the run.
	ErrNotAttached = errors.New("mux: client not attached")
	// ErrShuttingDown: the service is draining and takes no new work.
	ErrShuttingDown = errors.New("mux: shutting down")
	// ErrResendFirst: an earlier batch of the client failed and must be sent
	// again before later ones are written, so no record is skipped.
	ErrResendFirst = errors.New("mux: earlier batch must be resent first")
	// ErrClientSeqOrder: a record's client_seq is not above its client's
	// high-water and repeats no durable record.
	ErrClientSeqOrder = errors.New("mux: client_seq out of order")
	// ErrClientSeqReused: a record's client_seq already names a different
	// record of the client.
	ErrClientSeqReused = errors.New("mux: client_seq reused")
	// ErrClientSeqSkip: a record's client_seq is too far above its client's
	// high-water.
	ErrClientSeqSkip = errors.New("mux: client_seq skips ahead")
)

// InvalidError is bad input: a run id, a client id, a record. Message names
// the field and the fix.
type InvalidError struct {
	Message string
}

func (e *InvalidError) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &InvalidError{Message: fmt.Sprintf(format, args...)}
}

// OrderError rejects a history row whose step is below the run's step floor.
type OrderError struct {
	Step, Floor int64
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("history step %d is lower than the run's last step %d; log a rewind to restart from an earlier step", e.Step, e.Floor)
}

// TooLargeError rejects a record over the size limit.
type TooLargeError struct {
	Size, Limit int
	// What names the payload when it is not a published record ("run
	// info", "exit").
	What string
}

func (e *TooLargeError) Error() string {
	if e.What != "" {
		return fmt.Sprintf("%s of %d bytes (as a record) exceeds the record limit of %d (--max-record-bytes)", e.What, e.Size, e.Limit)
	}
	return fmt.Sprintf("record of %d bytes exceeds the limit of %d (--max-record-bytes)", e.Size, e.Limit)
}

// LockedError is returned by Open when another service holds the root.
type LockedError struct {
	Root   string
	PID    int    // 0 when the lock file could not be read
	Socket string // the running service's socket
	TCP    string // its TCP address, if any
}

func (e *LockedError) Error() string {
	holder := "another runlog service"
	if e.PID > 0 {
		holder = fmt.Sprintf("runlog service pid %d", e.PID)
	}
	msg := fmt.Sprintf("root %s is in use by %s", e.Root, holder)
	if e.Socket != "" {
		msg += fmt.Sprintf(", listening on %s", e.Socket)
	}
	if e.TCP != "" {
		msg += fmt.Sprintf(" and tcp://%s", e.TCP)
	}
	return msg
}

// kindError is an error with a message for the client and a sentinel for
// errors.Is, so the message does not end in the sentinel's text.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errorf returns an error that reads as the formatted message and matches
// kind with errors.Is.
func errorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// statusOf is the one place where errors become gRPC codes. The message is
// the error's text without the package prefix of the sentinels.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	var (
		inv     *InvalidError
		order   *OrderError
		large   *TooLargeError
		corrupt *wal.CorruptError
	)
	code := codes.Internal
	switch {
	case outOfFiles(err):
		return status.New(codes.ResourceExhausted, err.Error()+
			"; the service is out of file descriptors: raise its limit (ulimit -n) or finish runs")
	case errors.As(err, &inv), errors.As(err, &large),
		errors.Is(err, ErrClientSeqOrder), errors.Is(err, ErrClientSeqReused), errors.Is(err, ErrClientSeqSkip):
		code = codes.InvalidArgument
	case errors.As(err, &corrupt):
		code = codes.DataLoss
	case errors.As(err, &order), errors.Is(err, root.ErrUnsafe):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrRunExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrRunNotFound), errors.Is(err, wal.ErrNotExist):
		code = codes.NotFound
	case errors.Is(err, ErrRunFinished), errors.Is(err, wal.ErrFinished),
		errors.Is(err, ErrNotAttached):
		code = codes.FailedPrecondition
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrResendFirst),
		errors.Is(err, wal.ErrLocked), errors.Is(err, wal.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	st := status.New(code, err.Error())
	if corrupt != nil {
		// The record travels typed: a reader turns it back into a
		// *wal.CorruptError instead of parsing the message.
		reason := ""
		if corrupt.Err != nil {
			reason = corrupt.Err.Error()
		}
		if d, derr := st.WithDetails(&runlogv1.CorruptRecord{Seq: corrupt.Seq, Path: corrupt.Path, Reason: reason}); derr == nil {
			st = d
		}
	}
	return st
}

// rpcError converts err for a unary or streaming RPC return.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	return statusOf(err).Err()
}

// protoError converts err for an in-band error field.
func protoError(err error) *runlogv1.Error {
	s := statusOf(err)
	return &runlogv1.Error{Code: int32(s.Code()), Message: s.Message()}
}
