package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"google.golang.org/grpc"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/wal"
)

const (
	defaultSamples = 1000
	maxSamples     = 100_000
	maxProblems    = 10_000
	readChunk      = 512     // records per ReadResponse
	readChunkBytes = 1 << 20 // and about this many bytes
)

// foldRun returns the state of an open run, folding only the records
// appended since the last call.
func (r *run) foldRun() (*runlogv1.RunState, error) {
	r.foldMu.Lock()
	defer r.foldMu.Unlock()
	if r.state == nil {
		r.state = replay.NewState(r.id)
	}
	if err := r.state.Fold(r.log, 0); err != nil {
		return nil, err
	}
	return r.state.Proto(), nil
}

// Query returns a run's state folded from its log and, for the requested
// keys, history samples spread evenly over its live rows.
func (s *Service) Query(ctx context.Context, req *runlogv1.QueryRequest) (*runlogv1.QueryResponse, error) {
	id := req.GetRunId()
	if n := len(req.GetHistoryKeys()); n > maxHistoryKeys {
		return nil, rpcError(invalid("history_keys holds %d keys, over the limit of %d per query", n, maxHistoryKeys))
	}
	l, r, done, err := s.openLog(ctx, id)
	if err != nil {
		return nil, rpcError(err)
	}
	defer done()
	var st *runlogv1.RunState
	if r != nil {
		st, err = r.foldRun()
	} else {
		var fs *replay.State
		fs, err = replay.Fold(l, id, 0)
		if err == nil {
			st = fs.Proto()
		}
	}
	if err != nil {
		return nil, rpcError(err)
	}
	resp := &runlogv1.QueryResponse{State: st}
	if len(req.GetHistoryKeys()) > 0 {
		n := int(req.GetMaxSamples())
		if n <= 0 {
			n = defaultSamples
		}
		n = min(n, maxSamples)
		resp.History, err = replay.SampleHistory(l, replay.HistoryOptions{Keys: req.GetHistoryKeys(), To: st.GetLastSeq()}, n)
		if err != nil {
			return nil, rpcError(fmt.Errorf("sample history of %s: %w", id, err))
		}
	}
	return resp, nil
}

// ListRuns lists every run under the root: open runs from the service's
// handles, the others opened read-only for a moment.
func (s *Service) ListRuns(ctx context.Context, _ *runlogv1.ListRunsRequest) (*runlogv1.ListRunsResponse, error) {
	ents, err := s.readRunsDir()
	if err != nil {
		return nil, rpcError(fmt.Errorf("list runs in %s: %w", s.dir.Runs(), err))
	}
	ids := s.dir.RunIDsOf(ents)
	resp := &runlogv1.ListRunsResponse{}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, rpcError(err)
		}
		resp.Runs = append(resp.Runs, s.summarize(ctx, id))
	}
	sort.Slice(resp.Runs, func(i, j int) bool { return resp.Runs[i].RunId < resp.Runs[j].RunId })
	return resp, nil
}

// readRunsDir lists ROOT/runs through the handle the service keeps open.
func (s *Service) readRunsDir() ([]os.DirEntry, error) {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	if _, err := s.runsFile.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.runsFile.ReadDir(-1)
}

// summarize describes one run; problems go into the summary's error.
func (s *Service) summarize(ctx context.Context, id string) *runlogv1.RunSummary {
	l, r, done, err := s.openLog(ctx, id)
	if err != nil {
		sum := replay.UnreadableSummary(id, err)
		if !errors.Is(err, wal.ErrLocked) {
			sum.Error = statusOf(err).Message() // without the code of a status error
		}
		return sum
	}
	defer done()
	var fold func() (*runlogv1.RunState, error)
	if r != nil {
		fold = r.foldRun
	}
	sum := replay.Summary(l, id, fold)
	sum.Open = r != nil
	return sum
}

// Read streams a run's records from from_seq to to_seq, following new ones
// when asked, in chunks of bounded size: decoded, or with encoded exactly as
// the log stores them. A damaged record ends the stream with DATA_LOSS after
// the records before it were sent, and the damaged record as a
// runlog.v1.CorruptRecord detail. Each response says where the log ends.
func (s *Service) Read(req *runlogv1.ReadRequest, stream grpc.ServerStreamingServer[runlogv1.ReadResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stopOnDrain := context.AfterFunc(s.drainCtx, cancel)
	defer stopOnDrain()

	l, r, done, err := s.openLog(ctx, req.GetRunId())
	if err != nil {
		return rpcError(err)
	}
	defer done()
	from, to := max(req.GetFromSeq(), 1), req.GetToSeq()
	for {
		if to != 0 && from > to {
			return nil
		}
		changed := l.Changed() // before reading, so no append is missed
		resp, n, err := readChunkAt(l, from, to, req.GetEncoded())
		// Read after the chunk: the end is never before its last record.
		resp.LastSeq, resp.Finished = l.LastSeq(), l.Finished()
		if n > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
			from += uint64(n)
		}
		if err != nil {
			return rpcError(fmt.Errorf("read run %s from seq %d: %w", req.GetRunId(), from, err))
		}
		if n > 0 {
			continue
		}
		// At the end of the log.
		if !req.GetFollow() || r == nil || l.Finished() {
			return nil
		}
		select {
		case <-changed:
		case <-r.writerDone:
			// The writer stopped: the run finished (the next pass sends the
			// exit record and ends) or the service is shutting down.
			if !l.Finished() && l.LastSeq() < from {
				return rpcError(errorf(ErrShuttingDown, "the service is shutting down; read again from seq %d once it is back", from))
			}
		case <-ctx.Done():
			if s.isDraining() {
				return rpcError(errorf(ErrShuttingDown, "the service is shutting down; read again from seq %d once it is back", from))
			}
			return rpcError(context.Cause(ctx))
		}
	}
}

// errChunkFull ends the scan of a full read chunk.
var errChunkFull = errors.New("mux: read chunk full")

// readChunkAt reads the next chunk of a Read from seq from (up to seq to
// when it is not 0): n records, decoded or as stored, in one short read
// transaction. On a damaged or missing record it returns the records before
// it and a *wal.CorruptError naming it.
func readChunkAt(l *wal.Log, from, to uint64, encoded bool) (resp *runlogv1.ReadResponse, n int, err error) {
	resp = &runlogv1.ReadResponse{}
	if !encoded {
		recs, err := l.Read(from, readChunk, readChunkBytes)
		if to != 0 {
			n := len(recs)
			for n > 0 && recs[n-1].GetSeq() > to {
				n--
			}
			recs = recs[:n]
		}
		resp.Records = recs
		return resp, len(recs), err
	}
	size := 0
	err = l.Scan(from, func(seq uint64, data []byte) error {
		if to != 0 && seq > to {
			return errChunkFull
		}
		if want := from + uint64(len(resp.Encoded)); seq != want {
			return &wal.CorruptError{Path: l.Path(), Seq: want, Err: fmt.Errorf("record missing (next is seq %d)", seq)}
		}
		// data is valid only during the call.
		resp.Encoded = append(resp.Encoded, append([]byte(nil), data...))
		size += len(data)
		if len(resp.Encoded) >= readChunk || size >= readChunkBytes {
			return errChunkFull
		}
		return nil
	})
	if errors.Is(err, errChunkFull) {
		err = nil
	}
	return resp, len(resp.Encoded), err
}

// Verify checks a run's log with the service's handle (or a read-only open).
func (s *Service) Verify(ctx context.Context, req *runlogv1.VerifyRequest) (*runlogv1.VerifyResponse, error) {
	l, _, done, err := s.openLog(ctx, req.GetRunId())
	if err != nil {
		return nil, rpcError(err)
	}
	defer done()
	resp := &runlogv1.VerifyResponse{}
	res, err := l.Verify(wal.VerifyOptions{}, func(p wal.Problem) {
		if len(resp.Problems) < maxProblems {
			resp.Problems = append(resp.Problems, &runlogv1.Problem{Seq: p.Seq, Kind: p.Kind, Message: p.Message})
		}
	})
	if err != nil {
		return nil, rpcError(err)
	}
	resp.Records, resp.FirstBadSeq, resp.LastGoodSeq = res.Records, res.FirstBad, res.LastGood
	return resp, nil
}
