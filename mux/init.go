package mux

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// checkRunID refuses a run id that cannot name a run's directory.
func checkRunID(id string) error {
	if err := root.CheckRunID(id); err != nil {
		return invalid("%v", err)
	}
	return nil
}

const maxClientIDLen = 256

func checkClientID(id string) error {
	if len(id) > maxClientIDLen || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' }) {
		return invalid("client id %q is not valid: use up to %d printable UTF-8 bytes, or leave it empty to get one", id, maxClientIDLen)
	}
	return nil
}

// newRunID makes a run id: a lower-case ULID, so ids sort by creation time.
func newRunID() string {
	return strings.ToLower(ulid.Make().String())
}

// newClientID makes a client id, <host>-<pid>-<random>.
func (s *Service) newClientID(pid int64) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", s.host, pid, hex.EncodeToString(b[:]))
}

// Init opens a new run or resumes one and attaches the client.
func (s *Service) Init(ctx context.Context, req *runlogv1.InitRequest) (*runlogv1.InitResponse, error) {
	id := req.GetRunId()
	if id == "" {
		id = newRunID()
	} else if err := checkRunID(id); err != nil {
		return nil, rpcError(err)
	}
	client := req.GetClientId()
	if client == "" {
		client = s.newClientID(req.GetClientPid())
	} else if err := checkClientID(client); err != nil {
		return nil, rpcError(err)
	}
	if p := req.GetClientPid(); p < 0 || p > 1<<31 {
		return nil, rpcError(invalid("client_pid %d is not a process id", p))
	}
	if info := req.GetInfo(); info != nil {
		if err := s.checkAsRecord(&runlogv1.Record{ClientId: client, Payload: &runlogv1.Record_Run{Run: info}}, "run info"); err != nil {
			return nil, rpcError(err)
		}
	}
	r, resumed, err := s.attach(ctx, id, client, req)
	if err != nil {
		return nil, rpcError(err)
	}
	s.setStats(r, req)
	r.mu.Lock()
	acked := r.ackedLocked(client)
	r.mu.Unlock()
	s.log.Info("client attached", "run", id, "client", client, "pid", req.GetClientPid(), "resumed", resumed)
	return &runlogv1.InitResponse{
		RunId:          id,
		ClientId:       client,
		Resumed:        resumed,
		LastSeq:        r.log.LastSeq(),
		LastStep:       r.log.LastStep(),
		AckedClientSeq: acked,
		Path:           r.log.Path(),
		MaxRecordBytes: uint64(s.maxRecord),
	}, nil
}

// attach finds or opens run id for Init and attaches the client to it.
func (s *Service) attach(ctx context.Context, id, client string, req *runlogv1.InitRequest) (*run, bool, error) {
	for {
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			return nil, false, errorf(ErrShuttingDown, "the service is shutting down; retry once it is back")
		}
		r, ok := s.runs[id]
		if !ok {
			r = s.newRun(id)
			s.runs[id] = r
			s.mu.Unlock()
			resumed, err := s.openForInit(r, client, req)
			return r, resumed, err
		}
		s.mu.Unlock()
		select {
		case <-r.ready:
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		}
		if r.openErr != nil {
			continue // that Init failed; this one may ask differently
		}
		return r, true, s.resume(ctx, r, client, req)
	}
}

// damagedRun returns the error that refuses a client a run whose log is
// damaged (err wraps a *wal.CorruptError), and nil for any other err.
func damagedRun(id string, err error) error {
	var ce *wal.CorruptError
	if !errors.As(err, &ce) {
		return nil
	}
	return fmt.Errorf("run %s is damaged at seq %d and takes no more records; start a new run (its records before seq %d still read and sync): %w",
		id, ce.Seq, ce.Seq, err)
}

// resume attaches the client to the open run r.
func (s *Service) resume(ctx context.Context, r *run, client string, req *runlogv1.InitRequest) error {
	switch req.GetResume() {
	case runlogv1.ResumeMode_RESUME_MODE_ALLOW, runlogv1.ResumeMode_RESUME_MODE_MUST:
	default:
		return errorf(ErrRunExists, "run %s exists; pass resume=allow to continue it", r.id)
	}
	r.mu.Lock()
	if r.finished || r.finishing {
		r.mu.Unlock()
		return errorf(ErrRunFinished, "run %s is finished; it cannot be resumed, start a new run", r.id)
	}
	if r.stopping {
		r.mu.Unlock()
		return errorf(ErrShuttingDown, "the service is shutting down; retry once it is back")
	}
	if err := damagedRun(r.id, r.log.Refused()); err != nil {
		r.mu.Unlock()
		return err
	}
	r.attached[client] = newProc(int(req.GetClientPid()))
	delete(r.left, client)
	r.orphanSince, r.orphanWhy = time.Time{}, ""
	r.mu.Unlock()
	if info := req.GetInfo(); info != nil && proto.Size(info) > 0 {
		body, err := encodeBody(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: info}})
		if err != nil {
			return err
		}
		if err := r.writeOwn(ctx, wal.Encoded{ClientID: client, Body: body}, false); err != nil {
			return fmt.Errorf("update run info of %s: %w", r.id, err)
		}
	}
	return nil
}

// openForInit opens run r (registered, not ready) for Init, creating it when
// the resume mode allows, and attaches the client. It closes r.ready.
func (s *Service) openForInit(r *run, client string, req *runlogv1.InitRequest) (resumed bool, err error) {
	defer func() {
		if err != nil {
			s.mu.Lock()
			delete(s.runs, r.id)
			s.mu.Unlock()
			r.openErr = err
		}
		close(r.ready)
	}()
	path, err := s.walPath(r.id)
	if err != nil {
		return false, err
	}
	_, statErr := os.Lstat(path)
	exists := statErr == nil
	mode := req.GetResume()
	switch {
	case exists && mode != runlogv1.ResumeMode_RESUME_MODE_ALLOW && mode != runlogv1.ResumeMode_RESUME_MODE_MUST:
		return false, errorf(ErrRunExists, "run %s exists; pass resume=allow to continue it", r.id)
	case !exists && mode == runlogv1.ResumeMode_RESUME_MODE_MUST:
		return false, errorf(ErrRunNotFound, "run %s not found under %s; pass resume=allow to create it", r.id, s.root)
	}
	opts := s.walOptions()
	opts.MustExist = exists
	l, err := wal.Open(path, opts)
	if err != nil {
		if !exists {
			os.RemoveAll(filepath.Dir(path))
		}
		if err := damagedRun(r.id, err); err != nil {
			return false, err
		}
		return false, fmt.Errorf("open run %s: %w", r.id, err)
	}
	if err := damagedRun(r.id, l.Refused()); err != nil {
		l.Close()
		return false, err
	}
	if exists && l.Finished() {
		seq := l.LastSeq()
		l.Close()
		return false, errorf(ErrRunFinished, "run %s is finished (exit record at seq %d); it cannot be resumed, start a new run", r.id, seq)
	}
	info := req.GetInfo()
	if !exists {
		if err := s.create(l, client, req); err != nil {
			l.Close()
			// Nothing was written: leave no trace, so a retry can create it.
			os.RemoveAll(filepath.Dir(path))
			return false, fmt.Errorf("create run %s: %w", r.id, err)
		}
	} else if info != nil && proto.Size(info) > 0 {
		// The writer does not run yet: append directly.
		rec := &runlogv1.Record{ClientId: client, Payload: &runlogv1.Record_Run{Run: info}}
		if err := l.Append([]*runlogv1.Record{rec}); err != nil {
			l.Close()
			return false, fmt.Errorf("update run info of %s: %w", r.id, err)
		}
	}
	r.log = l
	r.attached[client] = newProc(int(req.GetClientPid()))
	s.startFollowers(r)
	s.start(r)
	if exists {
		s.log.Info("run resumed", "run", r.id, "last_seq", l.LastSeq())
	} else {
		s.log.Info("run created", "run", r.id, "path", path)
	}
	return exists, nil
}

// create writes a new run's first record, its RunInfo, and its sync mode.
func (s *Service) create(l *wal.Log, client string, req *runlogv1.InitRequest) error {
	mode := req.GetMode()
	if mode == runlogv1.SyncMode_SYNC_MODE_UNSPECIFIED {
		mode = s.opts.DefaultMode
	}
	switch mode {
	case runlogv1.SyncMode_SYNC_MODE_OFFLINE:
		if err := l.SetMeta(MetaSyncMode, []byte("offline")); err != nil {
			return err
		}
	case runlogv1.SyncMode_SYNC_MODE_ONLINE:
		if err := l.SetMeta(MetaSyncMode, []byte("online")); err != nil {
			return err
		}
	}
	info := &runlogv1.RunInfo{}
	if req.GetInfo() != nil {
		info = proto.Clone(req.GetInfo()).(*runlogv1.RunInfo)
	}
	if info.Host == "" {
		info.Host = s.host
	}
	if info.StartTimeUnixNano == 0 {
		info.StartTimeUnixNano = time.Now().UnixNano()
	}
	return l.Append([]*runlogv1.Record{{ClientId: client, Payload: &runlogv1.Record_Run{Run: info}}})
}

// encodeBody encodes a record of the service's own for wal.Encoded: the
// record without its header fields.
func encodeBody(r *runlogv1.Record) ([]byte, error) {
	b, err := proto.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// Teardown detaches a client from every run it did not finish; those runs
// then wait out the crash grace for another client.
func (s *Service) Teardown(ctx context.Context, req *runlogv1.TeardownRequest) (*runlogv1.TeardownResponse, error) {
	client := req.GetClientId()
	if client == "" {
		return nil, rpcError(invalid("client_id is empty; pass the id Init returned"))
	}
	if err := checkClientID(client); err != nil {
		return nil, rpcError(err)
	}
	now := time.Now()
	for _, r := range s.openRuns() {
		r.mu.Lock()
		if _, ok := r.attached[client]; ok && !r.finished {
			r.detachLocked(client, now, fmt.Sprintf("client %s left (Teardown) without finishing the run", client))
			s.log.Info("client detached", "run", r.id, "client", client, "why", "teardown")
		}
		r.mu.Unlock()
	}
	return &runlogv1.TeardownResponse{}, nil
}

// detachLocked removes a client; a run left without clients starts its grace.
func (r *run) detachLocked(client string, now time.Time, why string) {
	delete(r.attached, client)
	if len(r.attached) == 0 && !r.finished && r.orphanSince.IsZero() {
		r.orphanSince, r.orphanWhy = now, why
	}
}

// openRuns returns the runs whose open completed.
func (s *Service) openRuns() []*run {
	s.mu.Lock()
	runs := make([]*run, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	out := runs[:0]
	for _, r := range runs {
		select {
		case <-r.ready:
			if r.openErr == nil {
				out = append(out, r)
			}
		default:
		}
	}
	return out
}

// exitRank orders exit reasons: the worst one wins when clients disagree.
func exitRank(e *runlogv1.Exit) int {
	switch e.GetReason() {
	case runlogv1.ExitReason_EXIT_REASON_FINISHED:
		return 0
	case runlogv1.ExitReason_EXIT_REASON_PREEMPTED:
		return 1
	case runlogv1.ExitReason_EXIT_REASON_FAILED:
		return 2
	case runlogv1.ExitReason_EXIT_REASON_KILLED:
		return 3
	case runlogv1.ExitReason_EXIT_REASON_CRASHED:
		return 4
	}
	return 0
}

// normalExit fills in a missing exit or reason: code 0 finished, else failed.
func normalExit(e *runlogv1.Exit) *runlogv1.Exit {
	out := &runlogv1.Exit{}
	if e != nil {
		out = proto.Clone(e).(*runlogv1.Exit)
	}
	if out.Reason == runlogv1.ExitReason_EXIT_REASON_UNSPECIFIED {
		out.Reason = runlogv1.ExitReason_EXIT_REASON_FINISHED
		if out.Code != 0 {
			out.Reason = runlogv1.ExitReason_EXIT_REASON_FAILED
		}
	}
	return out
}

func worse(a, b *runlogv1.Exit) *runlogv1.Exit {
	if a == nil || exitRank(b) > exitRank(a) {
		return b
	}
	return a
}

// Finish detaches the client; the last client to finish writes the exit.
func (s *Service) Finish(ctx context.Context, req *runlogv1.FinishRequest) (*runlogv1.FinishResponse, error) {
	id, client := req.GetRunId(), req.GetClientId()
	if err := checkRunID(id); err != nil {
		return nil, rpcError(err)
	}
	if err := checkClientID(client); err != nil {
		return nil, rpcError(err)
	}
	exit := normalExit(req.GetExit())
	if err := s.checkAsRecord(&runlogv1.Record{ClientId: client, Payload: &runlogv1.Record_Exit{Exit: exit}}, "exit"); err != nil {
		return nil, rpcError(err)
	}
	r, err := s.use(ctx, id)
	if err != nil {
		return nil, rpcError(err)
	}
	if r == nil {
		return s.finishClosed(id)
	}
	defer r.release()

	for {
		r.mu.Lock()
		if r.finished {
			seq := r.exitSeq
			r.mu.Unlock()
			return &runlogv1.FinishResponse{Closed: true, Seq: seq}, nil
		}
		if r.finishing {
			// Another Finish (or the crash grace) is writing the exit: wait
			// for it, then answer as the run is.
			w := r.exitWait
			r.mu.Unlock()
			select {
			case <-w:
			case <-ctx.Done():
				return nil, rpcError(context.Cause(ctx))
			}
			continue
		}
		prev, wasAttached := r.attached[client]
		if !wasAttached {
			_, again := r.left[client]
			r.mu.Unlock()
			if again {
				// A repeated Finish of a client that already finished
				// while others stayed: the same answer.
				return &runlogv1.FinishResponse{Closed: false}, nil
			}
			// Only a client of the run (or the crash grace, once they are
			// all gone) decides how it ended.
			return nil, rpcError(errorf(ErrNotAttached,
				"client %q is not attached to run %s, so it cannot finish it; call Init (resume=must) with this client id first, or Finish with the client id Init returned", client, id))
		}
		delete(r.attached, client)
		// A client whose process is gone (typically the crashed process a
		// resumed run continues from) would hold the run open until the
		// next liveness poll, and the run would then close as crashed after
		// the grace. Check the others now, so that this exit closes it.
		s.detachGoneLocked(r, time.Now())
		if len(r.attached) > 0 {
			r.left[client] = struct{}{}
			r.pendingExit = worse(r.pendingExit, exit)
			left := len(r.attached)
			r.mu.Unlock()
			s.log.Info("client finished; run stays open", "run", id, "client", client, "attached", left)
			return &runlogv1.FinishResponse{Closed: false}, nil
		}
		final := worse(r.pendingExit, exit)
		r.beginExitLocked()
		r.mu.Unlock()

		body, err := encodeBody(&runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: final}})
		if err == nil {
			err = r.writeOwn(ctx, wal.Encoded{ClientID: client, Body: body}, true)
		}
		r.mu.Lock()
		seq := r.exitSeq
		if err != nil && !r.finished {
			// Not closed: the client stays attached and may retry.
			r.attached[client] = prev
			r.orphanSince, r.orphanWhy = time.Time{}, ""
		}
		r.mu.Unlock()
		if err != nil {
			return nil, rpcError(fmt.Errorf("finish run %s: %w", id, err))
		}
		return &runlogv1.FinishResponse{Closed: true, Seq: seq}, nil
	}
}

// finishClosed answers Finish for a run that is not open: idempotent for a
// finished run.
func (s *Service) finishClosed(id string) (*runlogv1.FinishResponse, error) {
	opts := s.opts.WAL
	opts.ReadOnly, opts.MustExist = true, false
	path, err := s.walPath(id)
	if err != nil {
		return nil, rpcError(err)
	}
	l, err := wal.Open(path, opts)
	if errors.Is(err, wal.ErrNotExist) {
		return nil, rpcError(errorf(ErrRunNotFound, "run %s not found under %s", id, s.root))
	}
	if err != nil {
		return nil, rpcError(fmt.Errorf("finish run %s: %w", id, err))
	}
	defer l.Close()
	if !l.Finished() {
		return nil, rpcError(errorf(ErrNotAttached, "run %s is not open in this service; Init it first", id))
	}
	return &runlogv1.FinishResponse{Closed: true, Seq: l.LastSeq()}, nil
}
