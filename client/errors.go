package client

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
)

// Errors returned by the client. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a Client or Run after Close.
	ErrClosed = errors.New("client: closed")
	// ErrFinished is returned by calls on a Run after Finish.
	ErrFinished = errors.New("client: run finished")
	// ErrInvalid is returned, wrapped in a message naming the key, for a key
	// or value the service would refuse. Nothing was published.
	ErrInvalid = errors.New("client: invalid key or value")
	// ErrTooLarge is returned for a record larger than the service accepts.
	ErrTooLarge = errors.New("client: record too large")
	// ErrNoService is returned by Connect with NoStart when no service
	// answers at the addresses tried.
	ErrNoService = errors.New("client: no service answers")
	// ErrNoBinary is returned when a service must be started and no runlog
	// binary can be found.
	ErrNoBinary = errors.New("client: no runlog binary")
	// ErrGaveUp is the cause of every call failing after the client spent
	// Options.ReconnectTimeout without reaching a service.
	ErrGaveUp = errors.New("client: gave up reconnecting")
)

// Rejection is one record the service refused. It is permanent: the record
// is not in the log and is not sent again.
type Rejection struct {
	ClientSeq uint64
	Code      codes.Code
	Message   string
}

func (r Rejection) String() string {
	return fmt.Sprintf("record %d: %s: %s", r.ClientSeq, r.Code, r.Message)
}

// RejectedError is returned by Flush and Finish when the service refused
// records published since the previous Flush. The other records are durable.
type RejectedError struct {
	RunID string
	// Rejections holds the first rejections (at most maxRejections).
	Rejections []Rejection
	// Total counts all of them.
	Total int
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s: service rejected %d record(s)", e.RunID, e.Total)
	for i, r := range e.Rejections {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", e.Total-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(r.String())
	}
	return b.String()
}

// maxRejections bounds the rejections a run remembers between flushes.
const maxRejections = 100

// StartError reports a service that could not be started. Log is the file
// the service wrote to and Tail its last lines.
type StartError struct {
	Root string
	Log  string
	Tail string
	Err  error
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("start runlog service in %s: %v (see %s)", e.Root, e.Err, e.Log)
	if e.Tail != "" {
		msg += ":\n" + e.Tail
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }
