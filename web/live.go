package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
)

// maxLiveRows bounds the rows one live update carries; a page further
// behind is told to reload its charts instead.
const maxLiveRows = 20000

type liveRow struct {
	Step   int64              `json:"step"`
	Time   int64              `json:"time"`
	Values map[string]float64 `json:"values"`
}

// apiLive streams a run's new records as server-sent events: ?seq=N is the
// last seq the page has. Each event carries only what came after it: the
// new history rows, console lines and alerts, and the run's state.
func (s *Server) apiLive(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
	if err != nil {
		s.fail(w, r, badRequest{"seq: want the last seq the page has"})
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		s.fail(w, r, errors.New("streaming unsupported"))
		return
	}
	if _, err := s.src.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": live\n\n")
	fl.Flush()
	ctx := r.Context()
	for {
		if err := s.src.Wait(ctx, id, after); err != nil {
			return
		}
		ev, err := s.liveEvent(r, id, after)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("ui live update failed", "run", id, "err", err)
			}
			return
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return
		}
		fl.Flush()
		after = ev.Seq
		if ev.State != "running" {
			return
		}
		// Coalesce: a page needs a few updates a second, not one per commit.
		t := time.NewTimer(s.opts.LiveInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

type liveEvent struct {
	Seq      uint64        `json:"seq"`
	State    string        `json:"state"`
	LastStep int64         `json:"last_step"`
	Rows     []liveRow     `json:"rows"`
	Console  []consoleLine `json:"console"`
	Alerts   []alertJSON   `json:"alerts"`
	Summary  []kv          `json:"summary"`
	Exit     any           `json:"exit,omitempty"`
	Reload   bool          `json:"reload,omitempty"`
}

func (s *Server) liveEvent(r *http.Request, id string, after uint64) (*liveEvent, error) {
	run, err := s.src.Run(r.Context(), id)
	if err != nil {
		return nil, err
	}
	st := run.State
	ev := &liveEvent{Seq: run.Seq, State: stateName(st.GetStatus()), LastStep: st.GetLastStep(),
		Rows: []liveRow{}, Console: []consoleLine{}, Alerts: []alertJSON{}, Summary: items(st.GetSummary())}
	if e := st.GetExit(); e != nil {
		ev.Exit = map[string]any{"code": e.GetCode(), "message": e.GetMessage()}
	}
	var rec runlogv1.Record
	err = s.src.Records(r.Context(), id, after+1, func(seq uint64, data []byte) error {
		if seq > run.Seq {
			return errStop
		}
		if err := proto.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		switch replay.KindOf(&rec) {
		case replay.KindHistory:
			if len(ev.Rows) >= maxLiveRows {
				ev.Reload = true
				ev.Rows = ev.Rows[:0]
				return errStop
			}
			row := liveRow{Step: rec.GetHistory().GetStep(), Time: rec.GetTimeUnixNano(), Values: map[string]float64{}}
			for _, v := range numericItems(rec.GetHistory().GetItems()) {
				row.Values[v.Key] = v.V
			}
			ev.Rows = append(ev.Rows, row)
		case replay.KindRewind:
			ev.Reload = true
		default:
			c, a, _ := logParts(&rec)
			if c != nil {
				ev.Console = append(ev.Console, *c)
			}
			if a != nil {
				ev.Alerts = append(ev.Alerts, *a)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if ev.Reload {
		ev.Rows = ev.Rows[:0]
	}
	return ev, nil
}
