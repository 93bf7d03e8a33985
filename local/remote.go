package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// maxRecvBytes bounds one message from the service: a read chunk holds at
// least one record, and a record may be large.
const maxRecvBytes = 128 << 20

// Remote reads one run through the service that holds its log, with the
// service's Read: the records come exactly as the log stores them, so
// readers take the same paths as over the file and a hub gets the same
// bytes. It is a sender.Source and a replay.Source, and not a sender.Marks:
// the service alone writes the file, so a push through it moves no cursor.
//
// Consecutive scans that go on where the last one stopped share one Read
// stream, so a Sender's batches cost no call each; memory stays bounded by
// one response and the transport's flow-control windows. Remote is not safe
// for concurrent use.
type Remote struct {
	// ctx bounds Scan, which has no context of its own.
	ctx  context.Context
	conn *grpc.ClientConn
	c    runlogv1.RunlogClient
	ref  Ref

	last     uint64 // the log's end, as the service last said
	finished bool   // the log holds the exit record, as the service last said

	// The open Read, positioned at seq next: pending holds records
	// received and not yet passed on.
	stream  grpc.ServerStreamingClient[runlogv1.ReadResponse]
	cancel  context.CancelFunc
	next    uint64
	pending [][]byte
}

var (
	_ sender.Source = (*Remote)(nil)
	_ replay.Source = (*Remote)(nil)
)

// Dial connects to the service on ref's root and checks that it serves the
// run by reading its first record, which also tells where the log ends. ctx
// bounds the reads until Close.
func Dial(ctx context.Context, ref Ref) (*Remote, error) {
	sock := ref.Root.Socket()
	if err := root.CheckSocket(sock); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(sock); err != nil {
		return nil, fmt.Errorf("no service socket %s", sock)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", sock, err)
	}
	r := &Remote{ctx: ctx, conn: conn, c: runlogv1.NewRunlogClient(conn), ref: ref}
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	st, err := r.c.Read(pctx, &runlogv1.ReadRequest{RunId: ref.ID, FromSeq: 1, ToSeq: 1, Encoded: true})
	if err == nil {
		var resp *runlogv1.ReadResponse
		if resp, err = st.Recv(); err == nil {
			r.note(resp)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		conn.Close()
		return nil, fmt.Errorf("service on %s: %w", sock, err)
	}
	return r, nil
}

// Path returns the run's log, as named in errors.
func (r *Remote) Path() string { return r.ref.Path }

// LastSeq returns the log's last seq as the service last said.
func (r *Remote) LastSeq() uint64 { return r.last }

// Finished reports whether the service last said the log holds the exit
// record.
func (r *Remote) Finished() bool { return r.finished }

// Changed returns nil: a Remote learns of new records only by reading, so
// a Sender over it drains (sender.Options.Drain).
func (r *Remote) Changed() <-chan struct{} { return nil }

// note keeps what a response says about the log's end.
func (r *Remote) note(resp *runlogv1.ReadResponse) {
	if resp.GetLastSeq() > r.last {
		r.last = resp.GetLastSeq()
	}
	r.finished = r.finished || resp.GetFinished()
}

// Scan calls fn with each record from seq from to the end of the log. It
// returns nil at the end, fn's error when fn returns one, ctx's error once
// the context given to Dial is done, and a *wal.CorruptError naming the seq
// where the service found damage, after the records before it.
func (r *Remote) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	from = max(from, 1)
	if r.stream == nil || r.next != from {
		if err := r.open(from, 0, false); err != nil {
			return err
		}
	}
	for {
		for len(r.pending) > 0 {
			data := r.pending[0]
			r.pending[0] = nil
			r.pending = r.pending[1:]
			seq := r.next
			r.next++
			if err := fn(seq, data); err != nil {
				return err
			}
		}
		recs, err := r.recv()
		if errors.Is(err, io.EOF) {
			r.stop()
			return nil
		}
		if err != nil {
			r.stop()
			return err
		}
		r.pending = recs
	}
}

// open starts a Read from seq from (up to seq to when not 0, following new
// records when follow is set), ending the one before.
func (r *Remote) open(from, to uint64, follow bool) error {
	r.stop()
	ctx, cancel := context.WithCancel(r.ctx)
	st, err := r.c.Read(ctx, &runlogv1.ReadRequest{RunId: r.ref.ID, FromSeq: from, ToSeq: to, Follow: follow, Encoded: true})
	if err != nil {
		cancel()
		return fmt.Errorf("read run %s through the service: %w", r.ref.ID, err)
	}
	r.stream, r.cancel, r.next, r.pending = st, cancel, from, nil
	return nil
}

// stop ends the open Read, if any.
func (r *Remote) stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.stream, r.cancel, r.pending = nil, nil, nil
}

// recv returns the records of the stream's next response, checked to carry
// the seqs from r.next on; io.EOF at the end of the stream.
func (r *Remote) recv() ([][]byte, error) {
	resp, err := r.stream.Recv()
	if err != nil {
		return nil, r.readError(r.next, err)
	}
	r.note(resp)
	recs := resp.GetEncoded()
	if len(recs) == 0 && len(resp.GetRecords()) > 0 {
		// A service that predates encoded reads sends them decoded.
		if recs, err = marshal(resp.GetRecords()); err != nil {
			return nil, fmt.Errorf("read run %s through the service: record %d: %w", r.ref.ID, r.next, err)
		}
	}
	for i, data := range recs {
		// A record that does not parse is left to the reader, which
		// reports it as it would from the file.
		if seq, ok := recordSeq(data); ok && seq != r.next+uint64(i) {
			return nil, &wal.CorruptError{Path: r.ref.Path, Seq: r.next + uint64(i), Err: fmt.Errorf("the service sent seq %d in its place", seq)}
		}
	}
	return recs, nil
}

// readError turns an error that ended a Read before seq next into the
// error of the same event on the file: io.EOF at the end, ctx's error, or
// the *wal.CorruptError the service sent as a runlog.v1.CorruptRecord.
func (r *Remote) readError(next uint64, err error) error {
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	st := status.Convert(err)
	switch {
	case r.ctx.Err() != nil && st.Code() == codes.Canceled:
		return r.ctx.Err()
	case st.Code() == codes.DataLoss:
		return corruptFrom(st, r.ref.Path, next)
	}
	return fmt.Errorf("read run %s through the service from seq %d: %w", r.ref.ID, next, err)
}

// corruptFrom returns the damaged record a DATA_LOSS status carries. A
// status without the detail is taken to name seq next, the first record
// the stream did not deliver, with its message as the reason.
func corruptFrom(st *status.Status, path string, next uint64) *wal.CorruptError {
	for _, d := range st.Details() {
		if cr, ok := d.(*runlogv1.CorruptRecord); ok {
			p := cr.GetPath()
			if p == "" {
				p = path
			}
			return &wal.CorruptError{Path: p, Seq: cr.GetSeq(), Err: errors.New(cr.GetReason())}
		}
	}
	return &wal.CorruptError{Path: path, Seq: next, Err: fmt.Errorf("reported by the service: %s", st.Message())}
}

// Close ends the open Read and the connection.
func (r *Remote) Close() error {
	r.stop()
	return r.conn.Close()
}

// Tail is a Read through the service that follows a run as it is written,
// until its exit record or a given seq: the reader of runlog replay
// --follow. It is a replay.Source.
type Tail struct {
	ctx   context.Context
	rem   *Remote
	to    uint64       // the last seq to ask for; 0 leaves the end open
	chunk func() error // called after each response's records; may be nil

	// After Scan: the last record it passed on, as stored, and its seq.
	last    []byte
	lastSeq uint64
}

var _ replay.Source = (*Tail)(nil)

// Scan calls fn with each record from seq from as the run is written. It
// returns nil once the run's exit record or seq to was passed on, or when
// the service ends the stream (it is not writing the run); ctx's error once
// the context given to Follow is done.
func (t *Tail) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	r := t.rem
	// The follow gets a context of its own, ended with the scan.
	saved := r.ctx
	r.ctx = t.ctx
	defer func() { r.ctx = saved; r.stop() }()
	if err := r.open(max(from, 1), t.to, true); err != nil {
		return err
	}
	for {
		recs, err := r.recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, data := range recs {
			seq := r.next
			r.next++
			if err := fn(seq, data); err != nil {
				return err
			}
		}
		if n := len(recs); n > 0 {
			t.last, t.lastSeq = append(t.last[:0], recs[n-1]...), r.next-1
		}
		if t.chunk != nil {
			if err := t.chunk(); err != nil {
				return err
			}
		}
	}
}

// LastSeq returns the seq of the last record Scan passed on.
func (t *Tail) LastSeq() uint64 { return t.lastSeq }

// Finished reports whether the last record Scan passed on is the exit
// record.
func (t *Tail) Finished() bool {
	if t.lastSeq == 0 {
		return false
	}
	e, err := replay.DecodeEvent(t.last)
	return err == nil && e.Kind() == replay.KindExit
}

// marshal encodes decoded records.
func marshal(recs []*runlogv1.Record) ([][]byte, error) {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		data, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

// recordSeq returns the seq field of an encoded Record; ok is false when
// the record has none or does not parse.
func recordSeq(data []byte) (seq uint64, ok bool) {
	h, err := wire.ParseHeader(data)
	return h.Seq, err == nil && h.Seq != 0
}
