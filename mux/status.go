package mux

import (
	"context"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// senderLag is one upstream's progress on one open run, read from the run's
// log: its cursor, the last error its sender saved, and the age of the
// oldest record it has not acknowledged.
type senderLag struct {
	upstream string
	records  uint64
	age      time.Duration // 0 when nothing is behind
	lastErr  string
}

// sendersOf reads the upstream cursors of r's log. A sender appears once
// its upstream acknowledged something (its cursor exists).
func sendersOf(r *run, now time.Time) []senderLag {
	cursors, err := r.log.Cursors()
	if err != nil || len(cursors) == 0 {
		return nil
	}
	errs := r.log.SyncErrors(cursors)
	last := r.log.LastSeq()
	var out []senderLag
	for name, at := range cursors {
		url, ok := strings.CutPrefix(name, wal.CursorUpstreamPrefix)
		if !ok {
			continue
		}
		l := senderLag{upstream: url, lastErr: errs[url]}
		if last > at {
			l.records = last - at
			if recs, err := r.log.Read(at+1, 1, 0); err == nil && len(recs) == 1 {
				l.age = max(now.Sub(time.Unix(0, recs[0].GetTimeUnixNano())), 0)
			}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].upstream < out[j].upstream })
	return out
}

// Status implements runlogv1.RunlogServer.
func (s *Service) Status(ctx context.Context, _ *runlogv1.StatusRequest) (*runlogv1.StatusResponse, error) {
	st := s.Stats()
	resp := &runlogv1.StatusResponse{
		Pid:               int64(os.Getpid()),
		StartTimeUnixNano: s.started.UnixNano(),
		Root:              s.root,
		RecordsAppended:   st.Records,
		Commits:           st.Commits,
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(s.root, &fs); err == nil {
		resp.DiskFreeBytes = fs.Bavail * uint64(fs.Bsize)
		resp.DiskTotalBytes = fs.Blocks * uint64(fs.Bsize)
	}
	now := time.Now()
	for _, r := range s.openRuns() {
		ref, err := s.use(ctx, r.id)
		if err != nil {
			return nil, rpcError(err)
		}
		if ref == nil {
			continue // closed in the meantime
		}
		r.mu.Lock()
		rs := &runlogv1.OpenRunStatus{
			RunId:           r.id,
			QueueRecords:    uint64(r.queued),
			QueueBytes:      uint64(r.queuedBytes),
			Clients:         uint32(len(r.attached)),
			StatsIntervalMs: uint32(r.statsEvery.Milliseconds()),
		}
		r.mu.Unlock()
		rs.LastSeq = r.log.LastSeq()
		for _, l := range sendersOf(r, now) {
			rs.Senders = append(rs.Senders, &runlogv1.SenderStatus{Upstream: l.upstream, LagRecords: l.records, LastError: l.lastErr})
		}
		ref.release()
		resp.Runs = append(resp.Runs, rs)
	}
	sort.Slice(resp.Runs, func(i, j int) bool { return resp.Runs[i].RunId < resp.Runs[j].RunId })
	return resp, nil
}
