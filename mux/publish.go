package mux

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// pubStream is one Publish stream's flow control: a slot per batch that is
// read but not yet answered, and the answers waiting to be sent. replies
// holds as many answers as there are slots, so a writer never blocks on a
// slow stream.
type pubStream struct {
	slots   chan struct{}
	replies chan *runlogv1.PublishResponse
}

// Publish receives batches of records for any runs and answers each batch
// once its records are durable or refused. One goroutine receives and queues
// batches (it stops reading while maxOutstanding batches are unanswered, which
// pushes back on the client through gRPC flow control); this one sends the
// answers. Problems with a batch or a record are answered in-band; the stream
// ends only when the client closes it, the connection breaks or the service
// shuts down (after answering every batch it queued).
func (s *Service) Publish(stream grpc.BidiStreamingServer[runlogv1.PublishRequest, runlogv1.PublishResponse]) error {
	ctx := stream.Context()
	ps := &pubStream{
		slots:   make(chan struct{}, maxOutstanding),
		replies: make(chan *runlogv1.PublishResponse, maxOutstanding),
	}
	recvErr := make(chan error, 1)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	// The receiver may be blocked in Recv when this handler returns; gRPC
	// then cancels the stream, Recv returns and the receiver ends. The
	// service waits for it at shutdown.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		recvErr <- s.receive(ctx, stream, ps)
	}()
	for {
		select {
		case resp := <-ps.replies:
			if err := stream.Send(resp); err != nil {
				return err
			}
			<-ps.slots
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				return err
			}
			// The client is done sending: answer what is outstanding.
			return s.flush(ctx, stream, ps)
		case <-s.drained:
			if err := s.flush(ctx, stream, ps); err != nil {
				return err
			}
			return rpcError(errorf(ErrShuttingDown, "the service is shutting down; reconnect and resend what was not acknowledged"))
		}
	}
}

// flush sends the answers of every batch still holding a slot.
func (s *Service) flush(ctx context.Context, stream grpc.BidiStreamingServer[runlogv1.PublishRequest, runlogv1.PublishResponse], ps *pubStream) error {
	for len(ps.slots) > 0 {
		select {
		case resp := <-ps.replies:
			if err := stream.Send(resp); err != nil {
				return err
			}
			<-ps.slots
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// receive reads requests until the stream ends and queues them.
func (s *Service) receive(ctx context.Context, stream grpc.BidiStreamingServer[runlogv1.PublishRequest, runlogv1.PublishResponse], ps *pubStream) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case ps.slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if resp := s.publish(ctx, req, ps.replies); resp != nil {
			ps.replies <- resp
		}
	}
}

// publish checks one request and queues it for its run's writer. It returns
// the answer itself when the batch fails as a whole before reaching the
// writer; otherwise the writer answers on replies.
func (s *Service) publish(ctx context.Context, req *runlogv1.PublishRequest, replies chan<- *runlogv1.PublishResponse) *runlogv1.PublishResponse {
	fail := func(err error) *runlogv1.PublishResponse {
		s.metrics.refuse(err, len(req.GetRecords()))
		return &runlogv1.PublishResponse{RunId: req.GetRunId(), Batch: req.GetBatch(), Error: protoError(err)}
	}
	id, client := req.GetRunId(), req.GetClientId()
	if err := checkRunID(id); err != nil {
		return fail(err)
	}
	if client == "" {
		return fail(invalid("client_id is empty; pass the id Init returned"))
	}
	r, err := s.use(ctx, id)
	if err != nil {
		return fail(err)
	}
	if r == nil {
		return fail(s.notOpen(id))
	}
	defer r.release()
	r.mu.Lock()
	_, attached := r.attached[client]
	werr := r.workErrLocked()
	r.mu.Unlock()
	if werr != nil {
		return fail(werr)
	}
	if !attached {
		return fail(errorf(ErrNotAttached, "client %s is not attached to run %s; call Init (resume=must) with this client id first", client, id))
	}

	size, limit := 0, s.batchLimit()
	for _, raw := range req.GetRecords() {
		if len(raw) <= s.maxRecord { // larger ones are refused one by one
			size += len(raw)
		}
	}
	if size > limit {
		return fail(invalid("batch of %d records holds %d bytes, over the limit of %d per PublishRequest; send fewer records per batch",
			len(req.GetRecords()), size, limit))
	}

	b := &batch{client: client, number: req.GetBatch(), reply: replies, queued: time.Now()}
	b.recs = make([]entry, 0, len(req.GetRecords()))
	for i, raw := range req.GetRecords() {
		c, err := s.checkRecord(raw)
		if err != nil {
			s.metrics.refuse(err, 1)
			b.rejections = append(b.rejections, &runlogv1.Rejection{ClientSeq: c.clientSeq, Index: uint32(i), Error: protoError(err)})
			continue
		}
		b.recs = append(b.recs, entry{checked: c, index: uint32(i)})
		b.bytes += len(c.body)
	}
	if err := r.enqueue(ctx, b); err != nil {
		return fail(err)
	}
	return nil
}

// notOpen explains why a run that is not open takes no records.
func (s *Service) notOpen(id string) error {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	// While draining, runs leave s.runs before their logs close; they are not
	// finished, and the client should resend to the next service.
	if draining {
		return errorf(ErrShuttingDown, "the service is shutting down; reconnect and resend what was not acknowledged")
	}
	// An unfinished run is open for as long as the service runs (runs found
	// at startup included), so a log that exists but is not open ends with
	// its exit record.
	if _, err := os.Lstat(s.dir.Log(id)); err == nil {
		return errorf(ErrRunFinished, "run %s is finished; start a new run", id)
	}
	return errorf(ErrRunNotFound, "run %s not found under %s; Init it first", id, s.root)
}
