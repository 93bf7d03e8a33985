package mux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// run is one open run: its log, the queue its writer drains and the clients
// attached to it.
type run struct {
	id  string
	svc *Service

	// Set before ready is closed, constant after.
	log     *wal.Log
	openErr error

	ready      chan struct{} // closed once the open finished; openErr says how
	writerDone chan struct{} // closed when the writer returned
	closed     chan struct{} // closed once the log is closed and the run unregistered
	follows    sync.WaitGroup

	// mu protects the fields below.
	mu          sync.Mutex
	queue       []*batch
	queued      int           // records in queue
	queuedBytes int           // encoded bytes in queue
	wake        chan struct{} // one slot: the queue got work
	space       chan struct{} // closed and replaced whenever the writer takes work
	stopping    bool          // shutdown: the writer drains the queue and returns
	finishing   bool          // an exit record is queued or being committed
	exitWait    chan struct{} // closed when that exit is durable or failed
	finished    bool          // the exit record is durable
	exitSeq     uint64
	pendingExit *runlogv1.Exit // worst exit of clients that finished while others stayed
	attached    map[string]proc
	left        map[string]struct{} // clients that finished while others stayed
	acked       map[string]uint64   // every record of the client <= this is durable or refused
	blocked     map[string]uint64   // highest client_seq of a failed commit not yet written
	orphanSince time.Time           // when the run lost its last client without an exit
	orphanWhy   string              // how, for the synthesized exit's message
	refs        int                 // calls reading the log outside the writer
	closing     bool                // the log is about to close; no new refs
	refsDone    *sync.Cond          // signalled when refs drops to 0
	statsEvery  time.Duration       // system stats interval, 0: none
	statsNext   time.Time           // when the next sample is due

	// foldMu serialises folding into state, the run's state as of
	// state.LastSeq(), kept so a query folds only what is new.
	foldMu sync.Mutex
	state  *replay.State

	// Writer scratch, touched only by the writer goroutine (and by
	// takeLocked, which the writer calls with mu held).
	take    []*batch
	encs    []wal.Encoded
	hw      map[string]uint64
	blk     map[string]uint64
	resends map[string]*resendIndex // see priorRecord; nil until needed
}

// batch is one unit of work for a run's writer: a client's PublishRequest,
// or a record the service writes itself (run info on resume, the exit).
type batch struct {
	client     string
	number     uint64
	recs       []entry
	rejections []*runlogv1.Rejection
	bytes      int
	reply      chan<- *runlogv1.PublishResponse
	queued     time.Time // when publish queued it, for the ack latency

	own  *wal.Encoded // a record of the service's own
	exit bool         // own is the exit record
	done chan error   // one slot; answers own

	// Set by the writer.
	err error  // the batch was refused as a whole
	top uint64 // the client's high-water once the batch is written
}

// lowestAbove returns the lowest client_seq above hw among the batch's
// records, those refused on arrival included; 0 when there is none.
func (b *batch) lowestAbove(hw uint64) uint64 {
	lo := uint64(0)
	note := func(s uint64) {
		if s > hw && (lo == 0 || s < lo) {
			lo = s
		}
	}
	for i := range b.recs {
		note(b.recs[i].clientSeq)
	}
	for _, rj := range b.rejections {
		note(rj.GetClientSeq())
	}
	return lo
}

// entry is a checked record and its index in the request.
type entry struct {
	checked
	index uint32
}

func (s *Service) newRun(id string) *run {
	r := &run{
		id:         id,
		svc:        s,
		ready:      make(chan struct{}),
		writerDone: make(chan struct{}),
		closed:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		space:      make(chan struct{}),
		attached:   make(map[string]proc),
		left:       make(map[string]struct{}),
		acked:      make(map[string]uint64),
		blocked:    make(map[string]uint64),
		hw:         make(map[string]uint64),
		blk:        make(map[string]uint64),
	}
	r.refsDone = sync.NewCond(&r.mu)
	return r
}

// walPath returns the log of run id after root.CheckRun: no path of the
// run is followed through a symlink.
func (s *Service) walPath(id string) (string, error) {
	if err := s.dir.CheckRun(id); err != nil {
		return "", fmt.Errorf("open run %s: %w", id, err)
	}
	return s.dir.Log(id), nil
}

func (s *Service) walOptions() wal.Options {
	o := s.opts.WAL
	o.ReadOnly, o.MustExist = false, false
	return o
}

// start runs r's lifecycle: writer, followers, close. r.log is open.
func (s *Service) start(r *run) {
	s.wg.Add(1)
	go s.lifecycle(r)
}

// lifecycle is the goroutine that owns an open run: it runs the writer until
// the run is finished (or the service stops), waits for the followers and
// for readers, closes the log and unregisters the run.
func (s *Service) lifecycle(r *run) {
	defer s.wg.Done()
	r.writeLoop()
	r.follows.Wait()
	r.mu.Lock()
	r.closing = true
	for r.refs > 0 {
		r.refsDone.Wait()
	}
	r.mu.Unlock()
	if err := r.log.Close(); err != nil {
		s.log.Error("close run", "run", r.id, "err", err)
	}
	s.mu.Lock()
	if s.runs[r.id] == r {
		delete(s.runs, r.id)
	}
	s.mu.Unlock()
	close(r.closed)
	s.log.Debug("run closed", "run", r.id)
}

// ackedLocked returns the client's high-water: the larger of what the log
// holds and what was refused in this service's life.
func (r *run) ackedLocked(client string) uint64 {
	if v, ok := r.acked[client]; ok {
		return v
	}
	v := r.log.ClientSeq(client)
	r.acked[client] = v
	return v
}

// workErrLocked says why the run takes no more work, nil if it does.
func (r *run) workErrLocked() error {
	switch {
	case r.finished:
		return errorf(ErrRunFinished, "run %s is finished (exit record at seq %d); start a new run", r.id, r.exitSeq)
	case r.stopping:
		return errorf(ErrShuttingDown, "the service is shutting down; reconnect and resend what was not acknowledged")
	}
	return nil
}

// enqueue queues b for the writer, waiting while the queue is full.
func (r *run) enqueue(ctx context.Context, b *batch) error {
	opts := &r.svc.opts
	r.mu.Lock()
	for {
		if err := r.workErrLocked(); err != nil {
			r.mu.Unlock()
			return err
		}
		if len(r.queue) == 0 || (r.queued+len(b.recs) <= opts.MaxQueueRecords && r.queuedBytes+b.bytes <= opts.MaxQueueBytes) {
			break
		}
		space := r.space
		r.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		r.mu.Lock()
	}
	r.pushLocked(b)
	r.mu.Unlock()
	return nil
}

func (r *run) pushLocked(b *batch) {
	r.queue = append(r.queue, b)
	r.queued += len(b.recs)
	r.queuedBytes += b.bytes
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// writeOwn queues a record of the service's own and waits until it is
// durable. exit marks the exit record; the caller has called
// beginExitLocked.
func (r *run) writeOwn(ctx context.Context, rec wal.Encoded, exit bool) error {
	done, err := r.pushOwn(rec, exit)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// pushOwn queues a record of the service's own; done answers once.
func (r *run) pushOwn(rec wal.Encoded, exit bool) (done <-chan error, err error) {
	b := &batch{own: &rec, exit: exit, bytes: len(rec.Body), done: make(chan error, 1)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.workErrLocked(); err != nil {
		if exit && r.finishing {
			r.endExitLocked()
		}
		return nil, err
	}
	r.pushLocked(b)
	return b.done, nil
}

// beginExitLocked marks an exit record as on its way to the writer.
func (r *run) beginExitLocked() {
	r.finishing = true
	r.exitWait = make(chan struct{})
}

// endExitLocked marks that exit as written or failed.
func (r *run) endExitLocked() {
	r.finishing = false
	close(r.exitWait)
}

// stop makes the writer commit what is queued and return.
func (r *run) stop() {
	r.mu.Lock()
	r.stopping = true
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the run's writer: it takes everything queued (within the
// commit bounds), writes it in one transaction and answers each batch. It
// returns once the run is finished, or stopping with an empty queue.
func (r *run) writeLoop() {
	defer close(r.writerDone)
	for {
		r.mu.Lock()
		for len(r.queue) == 0 {
			if r.stopping || r.finished {
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		take := r.takeLocked()
		r.mu.Unlock()
		r.commit(take)
	}
}

// takeLocked removes the next commit's batches from the queue and snapshots
// what the writer needs to know about their clients.
func (r *run) takeLocked() []*batch {
	opts := &r.svc.opts
	take := r.take[:0]
	recs, bytes, k := 0, 0, 0
	for k < len(r.queue) {
		b := r.queue[k]
		if k > 0 && (recs+len(b.recs) > opts.MaxCommitRecords || bytes+b.bytes > opts.MaxCommitBytes) {
			break
		}
		take = append(take, b)
		recs += len(b.recs)
		bytes += b.bytes
		k++
		if b.exit {
			break // nothing after the exit record
		}
	}
	n := copy(r.queue, r.queue[k:])
	clear(r.queue[n:])
	r.queue = r.queue[:n]
	r.queued -= recs
	r.queuedBytes -= bytes
	close(r.space)
	r.space = make(chan struct{})

	clear(r.hw)
	clear(r.blk)
	for _, b := range take {
		if b.own != nil {
			continue
		}
		if _, ok := r.hw[b.client]; !ok {
			r.hw[b.client] = r.ackedLocked(b.client)
			if v, ok := r.blocked[b.client]; ok {
				r.blk[b.client] = v
			}
		}
	}
	r.take = take
	return take
}

// commit writes one group of batches. Checks that depend on the run's state
// happen here, in log order: resends are skipped, history steps are checked
// against the step floor as it moves through the group.
func (r *run) commit(take []*batch) {
	encs := r.encs[:0]
	floor := r.log.LastStep()
	clear(r.resends)
	exit := false
	for _, b := range take {
		if b.own != nil {
			encs = append(encs, *b.own)
			exit = exit || b.exit
			continue
		}
		hw := r.hw[b.client]
		if blk, ok := r.blk[b.client]; ok && hw < blk {
			// Records of this client failed to commit earlier; until they
			// are written, only the batch that resends them may pass, or a
			// later one would move the high-water over the hole. Records
			// refused on arrival count: they move the high-water too.
			if s := b.lowestAbove(hw); s > hw+1 {
				b.err = errorf(ErrResendFirst,
					"records of client %s from client_seq %d were not written (an earlier batch failed); resend them before client_seq %d",
					b.client, hw+1, s)
				continue
			}
		}
		// Records refused on arrival are in b.rejections so far, in index
		// order like b.recs; walk both in index order, since the client_seq
		// of a refused record moves the high-water too.
		early := b.rejections
		refuse := func(e *entry, err error) {
			r.svc.metrics.refuse(err, 1)
			b.rejections = append(b.rejections, &runlogv1.Rejection{ClientSeq: e.clientSeq, Index: e.index, Error: protoError(err)})
		}
		for i, j := 0, 0; i < len(b.recs) || j < len(early); {
			if j < len(early) && (i == len(b.recs) || early[j].Index < b.recs[i].index) {
				if s := early[j].GetClientSeq(); s > hw && s-hw <= maxClientSeqSkip {
					hw = s
				}
				j++
				continue
			}
			e := &b.recs[i]
			i++
			switch {
			case e.clientSeq <= hw:
				// A resend, or a client_seq going backwards or used twice.
				if err := r.checkResend(encs, b.client, e, hw); err != nil {
					refuse(e, err)
				}
				continue
			case e.clientSeq-hw > maxClientSeqSkip:
				refuse(e, errorf(ErrClientSeqSkip,
					"client_seq %d skips ahead of client %s's high-water %d by more than %d; number each client's records 1, 2, 3, ... in publish order",
					e.clientSeq, b.client, hw, maxClientSeqSkip))
				continue
			}
			switch e.payload {
			case wire.KindHistory:
				if e.step < floor {
					refuse(e, &OrderError{Step: e.step, Floor: floor})
					hw = e.clientSeq
					continue
				}
				floor = e.step
			case wire.KindRewind:
				floor = e.step
			}
			encs = append(encs, wal.Encoded{ClientID: b.client, ClientSeq: e.clientSeq, Body: e.body})
			hw = e.clientSeq
		}
		b.top = hw
		r.hw[b.client] = hw
	}

	var err error
	if len(encs) > 0 {
		start, wrote := time.Now(), r.log.WriteTime()
		_, err = r.log.AppendEncoded(encs)
		if err == nil {
			r.svc.stats.add(len(take), len(encs))
			n := 0
			for i := range encs {
				n += len(encs[i].Body)
			}
			r.svc.metrics.commit(len(encs), n, time.Since(start), r.log.WriteTime()-wrote)
		}
	}
	clear(encs) // do not pin the requests' bytes until the next commit
	r.encs = encs[:0]
	if err != nil {
		r.svc.log.Warn("commit failed; nothing of it is acknowledged", "run", r.id, "records", len(encs), "err", err)
	}

	r.mu.Lock()
	lastSeq := r.log.LastSeq()
	var rest []*batch
	if err == nil {
		for c, hw := range r.hw {
			if hw > r.acked[c] {
				r.acked[c] = hw
			}
			if blk, ok := r.blocked[c]; ok && r.acked[c] >= blk {
				delete(r.blocked, c)
			}
		}
		if exit {
			r.finished, r.exitSeq = true, lastSeq
			r.endExitLocked()
			clear(r.attached)
			rest = r.queue
			r.queue, r.queued, r.queuedBytes = nil, 0, 0
			close(r.space)
			r.space = make(chan struct{})
		}
	} else {
		for _, b := range take {
			// Every record of the batch is unanswered, refused ones
			// included: the client resends them all.
			if b.own == nil && b.err == nil && b.top > r.blocked[b.client] {
				r.blocked[b.client] = b.top
			}
		}
		if exit {
			r.endExitLocked()
		}
	}
	for _, b := range take {
		if b.own != nil {
			b.done <- err
			continue
		}
		resp := &runlogv1.PublishResponse{
			RunId:          r.id,
			Batch:          b.number,
			AckedClientSeq: r.ackedLocked(b.client),
			LastSeq:        lastSeq,
		}
		switch {
		case b.err != nil:
			r.svc.metrics.refuse(b.err, len(b.recs))
			resp.Error = protoError(b.err)
		case err != nil:
			r.svc.metrics.refuse(err, len(b.recs))
			resp.Error = protoError(err)
		default:
			resp.Rejections = b.rejections
			sort.Slice(resp.Rejections, func(i, j int) bool { return resp.Rejections[i].Index < resp.Rejections[j].Index })
		}
		b.reply <- resp
		if !b.queued.IsZero() {
			r.svc.metrics.ackDur.Observe(time.Since(b.queued).Seconds())
		}
	}
	r.mu.Unlock()
	if exit && err == nil {
		r.svc.log.Info("run finished", "run", r.id, "seq", lastSeq)
	}
	if len(rest) > 0 {
		ferr := errorf(ErrRunFinished, "run %s is finished (exit record at seq %d); start a new run", r.id, lastSeq)
		for _, b := range rest {
			if b.own != nil {
				b.done <- ferr
				continue
			}
			r.svc.metrics.refuse(ferr, len(b.recs))
			b.reply <- &runlogv1.PublishResponse{RunId: r.id, Batch: b.number, Error: protoError(ferr), LastSeq: lastSeq}
		}
	}
}

// use returns the open run id holding a reference that keeps its log open
// (release it with r.release), or nil when the run is not open.
func (s *Service) use(ctx context.Context, id string) (*run, error) {
	for {
		s.mu.Lock()
		r := s.runs[id]
		s.mu.Unlock()
		if r == nil {
			return nil, nil
		}
		select {
		case <-r.ready:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if r.openErr != nil {
			return nil, nil // the failed open already unregistered it
		}
		r.mu.Lock()
		if !r.closing {
			r.refs++
			r.mu.Unlock()
			return r, nil
		}
		r.mu.Unlock()
		select {
		case <-r.closed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

func (r *run) release() {
	r.mu.Lock()
	r.refs--
	if r.refs == 0 {
		r.refsDone.Broadcast()
	}
	r.mu.Unlock()
}

// openLog returns the log of run id for reading: the service's own handle
// when the run is open, else a read-only open of the file. done releases it.
func (s *Service) openLog(ctx context.Context, id string) (l *wal.Log, r *run, done func(), err error) {
	if err := checkRunID(id); err != nil {
		return nil, nil, nil, err
	}
	r, err = s.use(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if r != nil {
		return r.log, r, r.release, nil
	}
	opts := s.opts.WAL
	opts.ReadOnly, opts.MustExist = true, false
	path, err := s.walPath(id)
	if err != nil {
		return nil, nil, nil, err
	}
	l, err = wal.Open(path, opts)
	if err != nil {
		if errors.Is(err, wal.ErrNotExist) {
			return nil, nil, nil, errorf(ErrRunNotFound, "run %s not found under %s", id, s.root)
		}
		return nil, nil, nil, fmt.Errorf("open run %s: %w", id, err)
	}
	return l, nil, func() { l.Close() }, nil
}

// recover opens the runs found under the root at startup: every run without
// an exit record (its clients are gone unless they re-attach within the
// grace) and every finished run a follower wants.
func (s *Service) recover() error {
	ents, err := os.ReadDir(s.dir.Runs())
	if err != nil {
		return fmt.Errorf("scan runs in %s: %w", s.dir.Runs(), err)
	}
	now := time.Now()
	for _, e := range ents {
		id := e.Name()
		if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if err := checkRunID(id); err != nil {
			s.log.Warn("skipping a directory that is not a run", "dir", s.dir.RunDir(id))
			continue
		}
		path, err := s.walPath(id)
		if err != nil {
			s.log.Error("cannot open run; leaving it alone", "run", id, "err", err)
			continue
		}
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		l, err := s.openFound(id, path)
		if err != nil {
			s.log.Error("cannot open run; leaving it alone", "run", id, "err", err)
			continue
		}
		if l == nil {
			continue // finished, and no follower wants it
		}
		var ce *wal.CorruptError
		if errors.As(l.Refused(), &ce) {
			s.log.Error("run is damaged; it takes no more records, its valid prefix still reads", "run", id, "first_bad_seq", ce.Seq)
		}
		r := s.newRun(id)
		r.log = l
		s.mu.Lock()
		s.runs[id] = r
		s.mu.Unlock()
		if l.Finished() {
			r.finished, r.exitSeq = true, l.LastSeq()
			if !s.startFollowers(r) {
				s.mu.Lock()
				delete(s.runs, id)
				s.mu.Unlock()
				l.Close()
				continue
			}
		} else {
			r.orphanSince = now
			r.orphanWhy = "the service restarted while the run was open"
			s.startFollowers(r)
			s.log.Info("run without exit record found; waiting for a client to re-attach", "run", id, "grace", s.grace)
		}
		close(r.ready)
		s.start(r)
	}
	return nil
}

// openFound opens a run found at startup: read-only first, so that a
// finished run is never opened for writing unless a follower wants it (to
// keep its cursor), and an unfinished run for writing, which reads every
// record once (wal.Open). It returns nil for a finished run no follower
// wants.
func (s *Service) openFound(id, path string) (*wal.Log, error) {
	ro := s.opts.WAL
	ro.ReadOnly, ro.MustExist = true, true
	l, err := wal.Open(path, ro)
	if err != nil {
		return nil, err
	}
	if l.Finished() {
		wanted := false
		for _, f := range s.opts.Followers {
			wanted = wanted || f.Wants(id, l)
		}
		if !wanted {
			l.Close()
			return nil, nil
		}
	}
	if err := l.Close(); err != nil {
		return nil, err
	}
	opts := s.walOptions()
	opts.MustExist = true
	return wal.Open(path, opts)
}

// Stats counts the service's group commits since it started, over all runs.
// Records per commit above one, and batches per commit above one, are the
// batching that lets an fsynced commit carry many acks.
type Stats struct {
	Commits uint64 // transactions written to a run's log (each one fsync)
	Batches uint64 // Publish batches (and the service's own records) they answered
	Records uint64 // records they wrote (resends of durable records skipped)
}

// commitStats are the counters behind Stats.
type commitStats struct{ commits, batches, records atomic.Uint64 }

func (c *commitStats) add(batches, records int) {
	c.commits.Add(1)
	c.batches.Add(uint64(batches))
	c.records.Add(uint64(records))
}

// Stats returns the service's commit counters; a nil service has none. It
// is safe to call while the service runs.
func (s *Service) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	return Stats{Commits: s.stats.commits.Load(), Batches: s.stats.batches.Load(), Records: s.stats.records.Load()}
}
