package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/wal"
)

// Upstream is where a sender pushes runs. *Hub implements it over gRPC.
type Upstream interface {
	// Open starts a push session for one run. Cancelling ctx ends it.
	Open(ctx context.Context, runID string) (Stream, error)
}

// Stream is one push session for one run. Send and Recv may be called from
// two goroutines at once; neither from two.
//
// Errors are gRPC status errors. A FAILED_PRECONDITION carries the run's
// mark upstream as a runlog.v1.HighWaterMark detail (see MarkOf).
type Stream interface {
	// Send pushes a batch of encoded records with consecutive sequences; an
	// empty batch asks for the run's mark. records are valid only during the
	// call. io.EOF means the upstream ended the session: Recv has the reason.
	Send(batch uint64, records [][]byte) error
	// Recv returns the next acknowledgement, in the order batches were sent:
	// the batch it answers and the run's high-water mark upstream, durable
	// there.
	Recv() (batch, highWater uint64, err error)
	// Close ends the session and releases it.
	Close() error
}

// Options configure a Sender. The zero value is a working default.
type Options struct {
	// Logger receives the sender's messages. Nil discards them.
	Logger *slog.Logger
	// BatchRecords and BatchBytes bound one batch (a single larger record
	// still goes alone). Zero means 4096 records and 1 MiB.
	BatchRecords int
	BatchBytes   int
	// MaxInflight is how many batches may wait for their ack. Zero means 4.
	MaxInflight int
	// Linger is how long a batch smaller than BatchRecords waits for more
	// records while nothing is in flight. Zero means 100ms; a finished run's
	// tail goes at once.
	Linger time.Duration
	// CursorInterval is how often the cursor is written while acks stream
	// in; it is always written when the sender goes idle or stops. Zero
	// means one second.
	CursorInterval time.Duration
	// BackoffBase and BackoffMax shape the wait before a retry: full jitter
	// over BackoffBase * 2^(failures-1), capped at BackoffMax. Zero means
	// 250ms and 10s. A retry while the hub is unreachable costs nothing on
	// the network (the connection fails it locally; see HubOptions
	// .MaxBackoff), so the cap decides how soon a sender notices the hub is
	// back.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAttempts is how many sessions in a row may fail without progress
	// before Run gives up. Zero means never: a service's sender waits for
	// its upstream as long as it takes.
	MaxAttempts int
	// Drain makes Run return once every record the log holds is
	// acknowledged, finished run or not (runlog sync). Without it Run
	// follows the log until the run is finished.
	//
	// A draining sender is a one-off push: it creates no placeholder cursor
	// and keeps no sync error for an upstream that never acknowledged
	// anything, so a mistyped URL leaves no trace in the run's log.
	Drain bool
	// IdleCheck is the fallback wake-up while waiting for records. Zero
	// means five seconds.
	IdleCheck time.Duration
	// OnAck, when set, is called from Run after each ack that moves the
	// mark: the new mark and how many records it added.
	OnAck func(highWater, added uint64)
	// OnError, when set, is called from Run after each failed session with
	// the upstream's URL and the error (a service counts them per upstream).
	OnError func(upstream string, err error)
	// Rand returns a number in [0, 1) for the backoff jitter. Nil means
	// math/rand/v2.
	Rand func() float64
}

// Sender pushes one run's log to one upstream. Its methods are not safe for
// concurrent use; run it in one goroutine.
type Sender struct {
	l      Source
	marks  Marks // l's cursors and meta; nil when it has none
	runID  string
	url    string
	up     Upstream
	opts   Options
	log    *slog.Logger
	cursor string // the cursor's name in the wal
	errKey string // the meta key of the last error

	acked   uint64    // the upstream's mark as last acknowledged
	saved   uint64    // the cursor as stored
	savedAt time.Time // when it was stored
	lastErr string    // the error as stored in meta, "" when none
	tracked bool      // the log holds this upstream's cursor

	buf  []byte   // record bytes of the batch being read
	offs []int    // end of each record in buf
	recs [][]byte // the batch, slices of buf
}

// CursorName is the wal cursor that holds a run's position for upstream url.
func CursorName(url string) string { return wal.CursorUpstreamPrefix + url }

// ErrorKey is the wal meta key that holds the last sync error for upstream
// url.
func ErrorKey(url string) string { return wal.MetaSyncErrorPrefix + url }

// New returns a sender of run runID's log l to up, known as url (the
// cursor and error names use it). When l is also Marks the sender keeps its
// cursor and last error there; otherwise it keeps neither.
func New(l Source, runID, url string, up Upstream, opts Options) *Sender {
	opts = opts.withDefaults()
	marks, _ := l.(Marks)
	return &Sender{
		l:      l,
		marks:  marks,
		runID:  runID,
		url:    url,
		up:     up,
		opts:   opts,
		log:    opts.Logger.With("run", runID, "upstream", url),
		cursor: CursorName(url),
		errKey: ErrorKey(url),
	}
}

// Acked returns the upstream's high-water mark for the run as last
// acknowledged during Run; call it after Run returned.
func (s *Sender) Acked() uint64 { return s.acked }

// Run pushes the run until it is finished and every record is acknowledged
// (with Options.Drain: until every record the log holds is), and returns
// nil. It returns an error for a failure retrying cannot fix, after
// Options.MaxAttempts failed sessions in a row, or ctx's error when ctx is
// done. A damaged record ends Run, after the records before it are
// acknowledged, with an error wrapping the *wal.CorruptError.
func (s *Sender) Run(ctx context.Context) error {
	if err := s.loadMarks(); err != nil {
		return fmt.Errorf("sync run %s to %s: %w", s.runID, s.url, err)
	}
	opts := s.opts
	opts.Logger = s.log
	err := retry(ctx, opts, func(ctx context.Context) (bool, error) {
		progressed, err := s.session(ctx)
		if err != nil && ctx.Err() == nil {
			s.noteError(err)
			if s.opts.OnError != nil {
				s.opts.OnError(s.url, err)
			}
		}
		return progressed, err
	})
	if err == nil || err == ctx.Err() {
		return err
	}
	return fmt.Errorf("sync run %s to %s: %w", s.runID, s.url, err)
}

// loadMarks reads the stored cursor and last error, when the source keeps
// them. A cursor at 0 makes a service's upstream show in listings before its
// first ack, with its error if it never answers.
func (s *Sender) loadMarks() error {
	if s.marks == nil {
		return nil
	}
	var err error
	if s.saved, err = s.marks.Cursor(s.cursor); err != nil {
		return err
	}
	if v, err := s.marks.Meta(s.errKey); err == nil {
		s.lastErr = string(v)
	}
	if cur, err := s.marks.Cursors(); err == nil {
		_, s.tracked = cur[s.cursor]
		if !s.tracked && !s.opts.Drain {
			if err := s.marks.SetCursor(s.cursor, 0); err != nil {
				s.log.Debug("cannot create the cursor", "err", err)
			} else {
				s.tracked = true
			}
		}
	}
	return nil
}

// Permanent reports whether retrying err cannot help: the upstream refused
// the caller or the data, or the log itself is damaged or closed.
func Permanent(err error) bool {
	var corrupt *wal.CorruptError
	if errors.As(err, &corrupt) || errors.Is(err, ErrConflict) || errors.Is(err, wal.ErrClosed) {
		return true
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument,
		codes.NotFound, codes.Unimplemented, codes.AlreadyExists:
		return true
	}
	return false
}

// ack is one acknowledgement, or the error that ended the session.
type ack struct {
	batch, hw uint64
	err       error
}

// inflight is a batch waiting for its ack.
type inflight struct {
	batch, last uint64
}

// session runs one push session: ask for the mark, then send from it and
// follow the log. progressed reports whether the upstream's mark moved.
func (s *Sender) session(ctx context.Context) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := s.up.Open(sctx, s.runID)
	if err != nil {
		return false, err
	}
	acks := make(chan ack, s.opts.MaxInflight+2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			b, hw, err := st.Recv()
			select {
			case acks <- ack{b, hw, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		st.Close()
		wg.Wait()
	}()

	// sendErr turns a Send failure into the reason the session ended.
	sendErr := func(err error) error {
		if !errors.Is(err, io.EOF) {
			return err
		}
		for {
			select {
			case a := <-acks:
				if a.err != nil {
					return a.err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}

	if err := st.Send(0, nil); err != nil {
		return false, sendErr(err)
	}
	var a ack
	select {
	case a = <-acks:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if a.err != nil {
		return false, a.err
	}
	acked := a.hw
	s.acked = acked
	if last := s.l.LastSeq(); acked > last {
		return false, fmt.Errorf("%w: the upstream holds %d records of run %s, this log %d; was another run with the same id synced there?",
			ErrConflict, acked, s.runID, last)
	}
	// Send from the record the upstream holds at its mark, not the one
	// after it: the upstream compares it with its own and refuses another
	// run that uses the same id (ALREADY_EXISTS) instead of mixing the two.
	// The ack of that record leaves the mark where it is, and only that ack
	// lets the cursor move to the mark.
	next := max(acked, 1)
	s.log.Debug("session started", "high_water", acked)

	var (
		pending  []inflight
		batch    uint64
		damaged  error
		lingerAt time.Time // when a short batch started waiting; zero when none waits
	)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	idle := time.NewTicker(s.opts.IdleCheck)
	defer idle.Stop()

	for {
		changed := s.l.Changed()
		last := s.l.LastSeq()
		done := s.l.Finished() || s.opts.Drain

		for len(pending) < s.opts.MaxInflight && next <= last && damaged == nil {
			if avail := last - next + 1; avail < uint64(s.opts.BatchRecords) && !done {
				if len(pending) > 0 {
					break // the ack makes room, and more may come meanwhile
				}
				if lingerAt.IsZero() {
					lingerAt = time.Now()
					linger.Reset(s.opts.Linger)
					break
				}
				if time.Since(lingerAt) < s.opts.Linger {
					break
				}
			}
			lingerAt = time.Time{}
			n, err := s.read(next)
			var corrupt *wal.CorruptError
			if errors.As(err, &corrupt) {
				damaged = err
			} else if err != nil {
				return progressed, err
			}
			if n == 0 {
				break
			}
			batch++
			if err := st.Send(batch, s.recs[:n]); err != nil {
				return progressed, sendErr(err)
			}
			s.release()
			pending = append(pending, inflight{batch: batch, last: next + uint64(n) - 1})
			next += uint64(n)
		}

		if len(pending) == 0 {
			if damaged != nil {
				if next > acked {
					// Not when the damaged record is the unchecked one
					// at the upstream's mark.
					s.saveCursor(acked, true)
				}
				return progressed, damaged
			}
			if acked == last {
				s.saveCursor(acked, true)
				s.clearError()
				if done {
					return progressed, nil
				}
				s.idle()
			}
		}

		select {
		case a := <-acks:
			if a.err != nil {
				if m, ok := MarkOf(a.err); ok && m > acked && m <= s.l.LastSeq() {
					s.saveCursor(m, true)
				}
				return progressed, a.err
			}
			if len(pending) == 0 || a.batch != pending[0].batch {
				return progressed, status.Errorf(codes.Internal, "upstream answered batch %d out of order", a.batch)
			}
			b := pending[0]
			pending = pending[1:]
			if a.hw < b.last {
				return progressed, status.Errorf(codes.Internal, "upstream acknowledged up to seq %d a batch ending at %d", a.hw, b.last)
			}
			if a.hw > acked {
				added := a.hw - acked
				acked = a.hw
				s.acked = acked
				progressed = true
				s.clearError()
				if s.opts.OnAck != nil {
					s.opts.OnAck(acked, added)
				}
			}
			// Another sender of the same run may have pushed further.
			next = max(next, acked+1)
			s.saveCursor(acked, len(pending) == 0)
		case <-changed:
			if s.l.LastSeq() == last {
				// Changed fires on close too; a closed log has nothing more.
				if err := s.probeClosed(); err != nil {
					return progressed, err
				}
			}
		case <-linger.C:
		case <-idle.C:
		case <-ctx.Done():
			return progressed, ctx.Err()
		}
	}
}

// probeClosed returns wal.ErrClosed when the log is closed: a scan past its
// end reads nothing, or fails so.
func (s *Sender) probeClosed() error {
	err := s.l.Scan(s.l.LastSeq()+1, func(uint64, []byte) error { return errBatchFull })
	if errors.Is(err, wal.ErrClosed) {
		return err
	}
	return nil
}

// errBatchFull ends a read when the batch is full.
var errBatchFull = errors.New("sender: batch full")

// read fills s.recs with up to a batch of records from seq from, in short
// read transactions, and returns how many it read. A damaged record ends the
// batch before it with a *wal.CorruptError.
func (s *Sender) read(from uint64) (int, error) {
	s.buf, s.offs = s.buf[:0], s.offs[:0]
	err := s.l.Scan(from, func(seq uint64, data []byte) error {
		if want := from + uint64(len(s.offs)); seq != want {
			return &wal.CorruptError{Path: s.l.Path(), Seq: want, Err: fmt.Errorf("record missing (next is seq %d)", seq)}
		}
		s.buf = append(s.buf, data...)
		s.offs = append(s.offs, len(s.buf))
		if len(s.offs) >= s.opts.BatchRecords || len(s.buf) >= s.opts.BatchBytes {
			return errBatchFull
		}
		return nil
	})
	if errors.Is(err, errBatchFull) {
		err = nil
	}
	s.recs = s.recs[:0]
	start := 0
	for _, end := range s.offs {
		s.recs = append(s.recs, s.buf[start:end:end])
		start = end
	}
	return len(s.recs), err
}

// release drops a batch buffer that one huge record made large.
func (s *Sender) release() {
	clear(s.recs)
	if cap(s.buf) > 4*s.opts.BatchBytes {
		s.buf = nil
	}
}

// idle drops a large batch buffer while the sender waits for records, so
// that many followed runs that once drained a backlog do not each keep one.
func (s *Sender) idle() {
	if cap(s.buf) > 64<<10 {
		s.buf, s.offs, s.recs = nil, nil, nil
	}
}

// saveCursor stores the acknowledged mark as the cursor: at once when force
// is set, otherwise at most every CursorInterval.
func (s *Sender) saveCursor(mark uint64, force bool) {
	if s.marks == nil || mark <= s.saved || (!force && time.Since(s.savedAt) < s.opts.CursorInterval) {
		return
	}
	if err := s.marks.SetCursor(s.cursor, mark); err != nil {
		s.log.Warn("cannot store the cursor", "seq", mark, "err", err)
		return
	}
	s.saved, s.savedAt, s.tracked = mark, time.Now(), true
}

// noteError keeps the last error in the log's meta, for runlog runs.
func (s *Sender) noteError(err error) {
	msg := err.Error()
	if s.marks == nil || msg == s.lastErr || !s.tracked {
		return
	}
	if werr := s.marks.SetMeta(s.errKey, []byte(msg)); werr != nil {
		s.log.Debug("cannot store the sync error", "err", werr)
		return
	}
	s.lastErr = msg
}

// clearError removes the stored error after a success.
func (s *Sender) clearError() {
	if s.marks == nil || s.lastErr == "" {
		return
	}
	if err := s.marks.SetMeta(s.errKey, nil); err != nil {
		s.log.Debug("cannot clear the sync error", "err", err)
		return
	}
	s.lastErr = ""
}
