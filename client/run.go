package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// defaultMaxRecord is the record limit assumed when the service names none.
const defaultMaxRecord = 4 << 20

// maxReattach bounds the re-attaches after a refused batch without progress
// in between, so a service that keeps refusing fails the run instead of
// looping.
const maxReattach = 3

// Run is a handle on one open run. Its publishing calls (Log, Config,
// Summary, Output, Alert, Rewind, Publish) encode the record and queue it
// without touching the network; the client's sender batches it onto the
// Publish stream. Flush waits until everything published is durable. A Run
// is safe for concurrent use; records from concurrent calls are ordered as
// the calls acquire the run.
type Run struct {
	c         *Client
	id        string
	clientID  string
	mode      runlogv1.SyncMode
	statsOff  bool   // the run's system stats choice, repeated on re-attach
	statsMs   uint32 // 0: the service's interval
	resumed   bool
	path      string
	initStep  int64
	maxRecord int

	// mu protects the fields below.
	mu          sync.Mutex
	w           window // un-acked records; w.base == acked+1
	epoch       uint64 // the stream the run is attached through
	acked       uint64 // every client_seq <= acked is durable or rejected
	sent        uint64 // highest client_seq sent on the current stream
	maxSent     uint64 // highest client_seq ever sent, to count resends
	unsentBytes int
	inflight    int    // batches awaiting their response
	gen         uint64 // bumped whenever sending restarts from acked+1
	reattach    bool   // the sender must Init the run again before its next batch
	reattaches  int    // re-attaches since the last ack that made progress
	pending     int64  // when the oldest unsent record was published (client clock)
	flushTo     uint64
	retryAt     int64 // after a retryable batch error: no batch before this
	retryWait   time.Duration
	lastStep    int64
	rejections  []Rejection
	rejTotal    int
	err         error // fatal for the run
	finishing   bool  // Finish was called: no more records
	finished    bool
	closed      bool
	changed     chan struct{} // closed and replaced on every ack and state change
}

func newRun(c *Client, resp *runlogv1.InitResponse, clientID string, mode runlogv1.SyncMode, epoch uint64) *Run {
	max := int(resp.GetMaxRecordBytes())
	if max <= 0 {
		max = defaultMaxRecord
	}
	acked := resp.GetAckedClientSeq()
	return &Run{
		c:         c,
		id:        resp.GetRunId(),
		clientID:  clientID,
		mode:      mode,
		resumed:   resp.GetResumed(),
		path:      resp.GetPath(),
		initStep:  resp.GetLastStep(),
		maxRecord: max,
		w:         newWindow(acked + 1),
		epoch:     epoch,
		acked:     acked,
		sent:      acked,
		maxSent:   acked,
		lastStep:  resp.GetLastStep(),
		changed:   make(chan struct{}),
	}
}

// ID returns the run's id.
func (r *Run) ID() string { return r.id }

// ClientID returns the id this handle publishes under.
func (r *Run) ClientID() string { return r.clientID }

// Resumed reports whether Init continued an existing run.
func (r *Run) Resumed() bool { return r.resumed }

// Path returns where the service keeps the run's log.
func (r *Run) Path() string { return r.path }

// StartStep returns the run's last history step when it was opened, -1 when
// it had none: a resumed run continues at StartStep()+1.
func (r *Run) StartStep() int64 { return r.initStep }

// Log publishes a history row: items at step. Values may be any integer or
// float type, bool, string, []byte or json.RawMessage holding JSON, or
// anything encoding/json accepts. Keys must be non-empty UTF-8 and step must
// not be lower than the previous row's (see Rewind). A bad key or value is
// an error naming it and nothing is published. Log blocks only while the
// run's window of un-acked records is full.
func (r *Run) Log(step int64, items map[string]any) error {
	return r.LogContext(context.Background(), step, items)
}

// LogContext is Log with a context that bounds the wait for window space.
func (r *Run) LogContext(ctx context.Context, step int64, items map[string]any) error {
	var stack [16]field
	fields, err := convertMap(stack[:0], items)
	if err != nil {
		return fmt.Errorf("log step %d: %w", step, err)
	}
	return r.logFields(ctx, step, fields)
}

// LogFloats publishes a history row of float metrics without boxing them in
// a map: keys[i] has values[i].
func (r *Run) LogFloats(step int64, keys []string, values []float64) error {
	if len(keys) != len(values) {
		return fmt.Errorf("log step %d: %d keys but %d values: %w", step, len(keys), len(values), ErrInvalid)
	}
	var stack [16]field
	fields := stack[:0]
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("log step %d: %w", step, err)
		}
		fields = append(fields, field{key: k, kind: kindDouble, num: math.Float64bits(values[i])})
	}
	return r.logFields(context.Background(), step, fields)
}

func (r *Run) logFields(ctx context.Context, step int64, fields []field) error {
	at := r.c.stamp()
	r.mu.Lock()
	if step < r.lastStep {
		last := r.lastStep
		r.mu.Unlock()
		return fmt.Errorf("log step %d: lower than the run's last step %d; call Rewind to restart from an earlier step: %w", step, last, ErrInvalid)
	}
	var body int
	seq, total, err := r.reserveLocked(ctx, func(seq uint64) int {
		var t int
		t, body = historySize(r.clientID, seq, step, fields)
		return t
	})
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("log step %d: %w", step, err)
	}
	b := appendHistory(r.w.alloc(total), r.clientID, seq, step, fields, body)
	r.lastStep = step
	kick := r.pushLocked(b, at)
	r.mu.Unlock()
	if kick {
		r.c.wake()
	}
	return nil
}

// Config sets configuration keys.
func (r *Run) Config(set map[string]any) error {
	fields, err := convertMap(nil, set)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Config{
		Config: &runlogv1.ConfigUpdate{Set: toItems(fields)},
	}})
}

// Summary sets summary keys.
func (r *Run) Summary(set map[string]any) error {
	fields, err := convertMap(nil, set)
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Summary{
		Summary: &runlogv1.SummaryUpdate{Set: toItems(fields)},
	}})
}

// Output publishes console text from stream (Stdout or Stderr). Bytes that
// are not UTF-8 become U+FFFD rather than failing the call: console output
// is best kept even when mangled.
func (r *Run) Output(stream runlogv1.ConsoleOutput_Stream, text string) error {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	return r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Output{
		Output: &runlogv1.ConsoleOutput{Stream: stream, Text: text},
	}})
}

// Alert publishes an alert.
func (r *Run) Alert(level runlogv1.Alert_Level, title, text string) error {
	if !utf8.ValidString(title) || !utf8.ValidString(text) {
		return fmt.Errorf("alert %q: title or text is not valid UTF-8: %w", title, ErrInvalid)
	}
	return r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Alert{
		Alert: &runlogv1.Alert{Title: title, Text: text, Level: level},
	}})
}

// Rewind restarts history at step: later rows may use any step >= step and
// the rows at or after it are dropped from the derived history.
func (r *Run) Rewind(step int64) error {
	return r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Rewind{
		Rewind: &runlogv1.Rewind{Step: step},
	}})
}

// Publish queues any record with a payload other than Exit (use Finish).
// The client fills client_id and client_seq, which must be unset; seq, id
// and time are stamped by the service. rec must not change until the call
// returns.
func (r *Run) Publish(ctx context.Context, rec *runlogv1.Record) error {
	switch {
	case rec.GetPayload() == nil:
		return fmt.Errorf("publish: record has no payload: %w", ErrInvalid)
	case rec.GetExit() != nil:
		return fmt.Errorf("publish: exit records are written by Finish: %w", ErrInvalid)
	case rec.GetClientId() != "" || rec.GetClientSeq() != 0:
		return fmt.Errorf("publish: client_id and client_seq are set by the client: %w", ErrInvalid)
	}
	return r.publish(ctx, rec)
}

func (r *Run) publish(ctx context.Context, rec *runlogv1.Record) error {
	at := r.c.stamp()
	r.mu.Lock()
	seq, total, err := r.reserveLocked(ctx, func(seq uint64) int {
		return payloadSize(r.clientID, seq, rec)
	})
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("publish: %w", err)
	}
	b, err := appendPayload(r.w.alloc(total), r.clientID, seq, rec)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("publish: encode: %v: %w", err, ErrInvalid)
	}
	if rw := rec.GetRewind(); rw != nil {
		r.lastStep = rw.GetStep()
	}
	kick := r.pushLocked(b, at)
	r.mu.Unlock()
	if kick {
		r.c.wake()
	}
	return nil
}

// usableLocked returns why the run takes no more records, if it does not.
func (r *Run) usableLocked() error {
	switch {
	case r.err != nil:
		return r.err
	case r.closed:
		return ErrClosed
	case r.finishing || r.finished:
		return fmt.Errorf("run %s: %w", r.id, ErrFinished)
	}
	return nil
}

// reserveLocked waits until a record of size(seq) bytes fits the window and
// returns its client_seq and size. It releases r.mu while it waits.
func (r *Run) reserveLocked(ctx context.Context, size func(seq uint64) int) (uint64, int, error) {
	o := &r.c.opts
	var waitStart time.Time
	for {
		if err := r.usableLocked(); err != nil {
			return 0, 0, err
		}
		seq := r.w.next()
		total := size(seq)
		if total > r.maxRecord {
			return 0, 0, fmt.Errorf("record of %d bytes exceeds the service's limit of %d: %w", total, r.maxRecord, ErrTooLarge)
		}
		if r.w.n < o.WindowRecords && (r.w.n == 0 || r.w.bytes+total <= o.WindowBytes) {
			if !waitStart.IsZero() {
				r.c.stats.waitNanos.Add(int64(time.Since(waitStart)))
			}
			return seq, total, nil
		}
		if waitStart.IsZero() {
			waitStart = time.Now()
			r.c.stats.waits.Add(1)
		}
		// A full window must not also wait for the linger.
		r.flushTo = max(r.flushTo, seq-1)
		ch := r.changed
		r.mu.Unlock()
		r.c.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			r.c.stats.waitNanos.Add(int64(time.Since(waitStart)))
			return 0, 0, fmt.Errorf("window full: %w", ctx.Err())
		}
		r.mu.Lock()
	}
}

// pushLocked adds an encoded record to the window and reports whether the
// sender needs a wake-up: when the run's first unsent record arrives (a
// batch may go at once) and when a full batch is ready. Waking it for every
// record would cost a context switch per record.
func (r *Run) pushLocked(b []byte, at int64) bool {
	r.w.push(b, at)
	r.c.stats.published.Add(1)
	prev := r.unsentBytes
	r.unsentBytes += len(b)
	unsent := r.w.next() - 1 - r.sent
	o := &r.c.opts
	switch {
	case unsent == 1:
		r.pending = r.c.now()
		return true
	case unsent == uint64(o.BatchRecords):
		return true
	case prev < o.BatchBytes && r.unsentBytes >= o.BatchBytes:
		return true
	}
	return false
}

// take returns the run's next batch if one may go now. Otherwise, if a
// linger or retry delay holds records back, it returns how long until they
// may go.
func (r *Run) take(now int64) (req *runlogv1.PublishRequest, last, gen uint64, wait time.Duration) {
	o := &r.c.opts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done() || r.closed {
		return nil, 0, 0, 0
	}
	next := r.w.next()
	if r.sent+1 >= next || r.inflight >= o.MaxInflight {
		return nil, 0, 0, 0
	}
	if r.retryAt > now {
		return nil, 0, 0, time.Duration(r.retryAt - now)
	}
	unsent := next - 1 - r.sent
	if r.inflight > 0 && unsent < uint64(o.BatchRecords) && r.unsentBytes < o.BatchBytes && r.flushTo <= r.sent {
		if age := time.Duration(now - r.pending); age < o.Linger {
			return nil, 0, 0, o.Linger - age
		}
	}
	from := r.sent + 1
	n := min(unsent, uint64(o.BatchRecords))
	recs := make([][]byte, 0, n)
	size := 0
	for s := from; s < next && len(recs) < int(n); s++ {
		d := r.w.at(s).data
		if len(recs) > 0 && size+len(d) > o.BatchBytes {
			break
		}
		recs = append(recs, d)
		size += len(d)
	}
	last = from + uint64(len(recs)) - 1
	if from <= r.maxSent {
		r.c.stats.resent.Add(min(last, r.maxSent) - from + 1)
	}
	r.sent = last
	r.maxSent = max(r.maxSent, last)
	r.unsentBytes -= size
	r.inflight++
	if r.sent+1 < next {
		r.pending = now
	}
	return &runlogv1.PublishRequest{RunId: r.id, ClientId: r.clientID, Records: recs}, last, r.gen, 0
}

// ack applies the service's response to batch b and returns lat extended by
// the latencies of the records it acknowledged, when they are measured.
func (r *Run) ack(resp *runlogv1.PublishResponse, b *batch, lat []time.Duration) []time.Duration {
	now := r.c.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight > 0 {
		r.inflight--
	}
	if e := resp.GetError(); e != nil {
		err := status.Error(codes.Code(e.GetCode()), e.GetMessage())
		switch codes.Code(e.GetCode()) {
		case codes.ResourceExhausted, codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
			if b.gen != r.gen {
				// Sent before the last restart of sending: its records go
				// again anyway, and the service refuses batches behind a
				// failed one, so this is an echo of the failure already
				// handled, not a new one.
				return lat
			}
			// Nothing of the batch was written: send everything un-acked
			// again after a pause. Batches still in flight may land in
			// between; the service drops what it already holds.
			r.gen++
			r.retryWait = min(max(2*r.retryWait, 50*time.Millisecond), 2*time.Second)
			r.retryAt = now + int64(r.retryWait)
			r.sent = r.acked
			r.unsentBytes = r.w.bytes
			r.c.log.Warn("publish batch failed; will retry", "run", r.id, "err", err, "retry_in", r.retryWait)
		case codes.FailedPrecondition, codes.NotFound:
			if b.gen != r.gen {
				return lat // an echo of a failure already handled
			}
			if r.reattaches < maxReattach {
				// The service no longer counts this client as attached
				// (or says so while shutting down). Re-attaching tells
				// whether the run is really gone: if Init fails too, the
				// run fails with that error.
				r.reattaches++
				r.reattach = true
				r.gen++
				r.sent = r.acked
				r.unsentBytes = r.w.bytes
				r.c.log.Warn("publish refused; re-attaching the run", "run", r.id, "err", err)
				return lat
			}
			r.failLocked(fmt.Errorf("run %s: publish: %w", r.id, err))
		default:
			r.failLocked(fmt.Errorf("run %s: publish: %w", r.id, err))
		}
		return lat
	}
	r.retryWait = 0
	for _, rj := range resp.GetRejections() {
		r.rejTotal++
		r.c.stats.rejected.Add(1)
		if len(r.rejections) < maxRejections {
			r.rejections = append(r.rejections, Rejection{
				ClientSeq: rj.GetClientSeq(),
				Code:      codes.Code(rj.GetError().GetCode()),
				Message:   rj.GetError().GetMessage(),
			})
		}
	}
	acked := min(resp.GetAckedClientSeq(), r.w.next()-1)
	if acked > r.acked {
		var fn func(*entry)
		if r.c.opts.OnAck != nil {
			fn = func(e *entry) { lat = append(lat, time.Duration(now-e.at)) }
		}
		r.c.stats.acked.Add(uint64(r.w.ack(acked, fn)))
		r.acked = acked
		r.reattaches = 0
		if r.sent < acked {
			r.sent = acked
			r.unsentBytes = r.w.bytes
		}
		r.changedLocked()
	} else if len(resp.GetRejections()) > 0 {
		r.changedLocked()
	}
	return lat
}

// resyncLocked applies the service's view after a re-attach: drop what it
// holds, resend the rest on the new stream.
func (r *Run) resyncLocked(acked, epoch uint64) {
	if acked < r.acked {
		// The service no longer holds records it acknowledged. They left
		// the window when they were acked, so they cannot be resent.
		r.c.log.Error("service lost acknowledged records", "run", r.id, "client", r.clientID,
			"acked", r.acked, "service_has", acked)
	}
	acked = min(acked, r.w.next()-1)
	if acked > r.acked {
		r.c.stats.acked.Add(uint64(r.w.ack(acked, nil)))
		r.acked = acked
		r.changedLocked()
	}
	r.sent = r.acked
	r.unsentBytes = r.w.bytes
	if r.epoch < epoch {
		r.inflight = 0 // the batches of the old stream are gone with it
	}
	r.retryAt = 0
	r.gen++
	r.epoch = epoch
	r.reattach = false
}

// needsAttach reports whether the run must be Init'ed again before the
// sender may send its records on the stream of epoch.
func (r *Run) needsAttach(epoch uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch < epoch || r.reattach
}

// done reports whether the sender has nothing more to do for the run.
func (r *Run) done() bool { return r.err != nil || r.finished }

func (r *Run) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Run) failLocked(err error) {
	if r.err != nil {
		return
	}
	r.err = err
	r.c.log.Error("run failed", "run", r.id, "err", err)
	r.changedLocked()
}

func (r *Run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLocked(err)
}

func (r *Run) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// close ends the handle when its client closes.
func (r *Run) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.changedLocked()
	}
}

// Flush returns once every record published before the call is durable in
// the run's log (or was rejected). If the service rejected records since
// the previous Flush, it returns a *RejectedError listing them; the other
// records are durable all the same. While the service is unreachable Flush
// keeps waiting (the client reconnects and resends) until ctx is done.
func (r *Run) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.w.next() - 1
	r.flushTo = max(r.flushTo, target)
	for r.acked < target {
		if r.err != nil || r.closed {
			err := r.usableLocked()
			r.mu.Unlock()
			return fmt.Errorf("flush run %s: %w", r.id, err)
		}
		ch := r.changed
		r.mu.Unlock()
		r.c.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			missing := target - r.acked
			r.mu.Unlock()
			return fmt.Errorf("flush run %s: %d record(s) not yet acknowledged: %w", r.id, missing, ctx.Err())
		}
		r.mu.Lock()
	}
	err := r.takeRejectionsLocked()
	r.mu.Unlock()
	return err
}

func (r *Run) takeRejectionsLocked() error {
	if r.rejTotal == 0 {
		return nil
	}
	err := &RejectedError{RunID: r.id, Rejections: r.rejections, Total: r.rejTotal}
	r.rejections, r.rejTotal = nil, 0
	return err
}

// Finish flushes the run and closes it with exit code code: reason
// finished for 0, failed otherwise.
func (r *Run) Finish(ctx context.Context, code int) error {
	reason := runlogv1.ExitReason_EXIT_REASON_FINISHED
	if code != 0 {
		reason = runlogv1.ExitReason_EXIT_REASON_FAILED
	}
	return r.FinishWith(ctx, code, reason, "")
}

// FinishWith flushes the run, then detaches this client with an exit record;
// the service writes it (durably) when the last attached client finishes.
// No record can be published after it. Like Flush it returns a
// *RejectedError for records refused since the last Flush, after the run
// was finished.
func (r *Run) FinishWith(ctx context.Context, code int, reason runlogv1.ExitReason, message string) error {
	r.mu.Lock()
	switch {
	case r.finished:
		r.mu.Unlock()
		return fmt.Errorf("finish run %s: %w", r.id, ErrFinished)
	case r.closed:
		r.mu.Unlock()
		return fmt.Errorf("finish run %s: %w", r.id, ErrClosed)
	}
	r.finishing = true
	r.mu.Unlock()

	ferr := r.Flush(ctx)
	var rej *RejectedError
	if ferr != nil && !errors.As(ferr, &rej) {
		return fmt.Errorf("finish: %w", ferr)
	}
	req := &runlogv1.FinishRequest{
		RunId:    r.id,
		ClientId: r.clientID,
		Exit:     &runlogv1.Exit{Code: int32(code), Reason: reason, Message: message},
	}
	err := r.c.call(ctx, func(ctx context.Context, rpc runlogv1.RunlogClient) error {
		_, err := rpc.Finish(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish run %s: %w", r.id, err)
	}
	r.mu.Lock()
	r.finished = true
	r.w = newWindow(r.acked + 1) // let the garbage collector have the arena
	r.changedLocked()
	r.mu.Unlock()
	r.c.mu.Lock()
	delete(r.c.runs, r)
	r.c.mu.Unlock()
	return ferr
}
