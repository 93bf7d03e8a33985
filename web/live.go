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
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/wire"
)

// maxLiveRows bounds the rows one live update carries; a page further
// behind is told to reload its charts instead.
const maxLiveRows = 20000

// liveRow is one history row of a live update, written by
// liveEvent.marshal as {"step":..,"time":..,"values":{..}}.
type liveRow struct {
	Step   int64
	Time   int64
	Values liveValues
}

// liveValues are a row's numeric items, written as a JSON object of key to
// value. A key logged twice in a row is written twice: JSON.parse keeps the
// last, as the row's decoding does.
type liveValues []liveValue

type liveValue struct {
	key []byte // the key as a JSON string
	v   float64
}

func (vs liveValues) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v.key...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, v.v, 'g', -1, 64)
	}
	return append(b, '}')
}

// liveKeys holds the JSON encoding of each history key one live update
// has met, so that a row's keys cost no allocation.
type liveKeys map[string][]byte

func (k liveKeys) json(key []byte) []byte {
	if j, ok := k[string(key)]; ok {
		return j
	}
	j, _ := json.Marshal(string(key))
	k[string(key)] = j
	return j
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
		data, err := ev.marshal()
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
	Rows     []liveRow     `json:"-"` // written by marshal
	Console  []consoleLine `json:"console"`
	Alerts   []alertJSON   `json:"alerts"`
	Summary  []kv          `json:"summary"`
	Exit     any           `json:"exit,omitempty"`
	Reload   bool          `json:"reload,omitempty"`
}

// marshal encodes the update as JSON. The rows, most of it, are written
// here: encoding/json would check and compact each row's values again.
func (ev *liveEvent) marshal() ([]byte, error) {
	head, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(head)+16+len(ev.Rows)*(48+24*10))
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"rows":[`...)
	for i := range ev.Rows {
		r := &ev.Rows[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"step":`...)
		b = strconv.AppendInt(b, r.Step, 10)
		b = append(b, `,"time":`...)
		b = strconv.AppendInt(b, r.Time, 10)
		b = append(b, `,"values":`...)
		b = r.Values.appendJSON(b)
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
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
	// A page that fell more than maxLiveRows rows behind reloads its
	// charts: count before reading the rows, so that a fast run's update
	// costs a pass over the records' headers, not a decoding of each.
	rows := uint64(0)
	if run.Seq-after > maxLiveRows {
		err := s.src.Records(r.Context(), id, after+1, func(seq uint64, data []byte) error {
			if seq > run.Seq {
				return errStop
			}
			if h, err := wire.ParseHeader(data); err == nil && h.Kind == wire.KindHistory {
				if rows++; rows > maxLiveRows {
					return errStop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
	}
	if rows > maxLiveRows {
		ev.Reload = true
		return ev, nil
	}
	var (
		rec  runlogv1.Record
		keys = liveKeys{}
		vals liveValues
	)
	err = s.src.Records(r.Context(), id, after+1, func(seq uint64, data []byte) error {
		if seq > run.Seq {
			return errStop
		}
		h, err := wire.ParseHeader(data)
		if err == nil && h.Kind == wire.KindHistory && h.Payloads == 1 {
			if len(ev.Rows) >= maxLiveRows {
				ev.Reload = true
				ev.Rows = ev.Rows[:0]
				return errStop
			}
			// Rows share one slice of values; a new one when it is full.
			if cap(vals)-len(vals) < 64 {
				vals = make(liveValues, 0, 4096)
			}
			start := len(vals)
			step, ok := wire.NumericRow(h.Payload, func(key []byte, v float64) {
				if rollup.Finite(v) {
					vals = append(vals, liveValue{key: keys.json(key), v: v})
				}
			})
			if ok {
				ev.Rows = append(ev.Rows, liveRow{Step: step, Time: h.Time, Values: vals[start:len(vals):len(vals)]})
				return nil
			}
			vals = vals[:start]
		}
		// Any other record, or a row in a layout the wire readers do not
		// take: decode it in full.
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
			row := liveRow{Step: rec.GetHistory().GetStep(), Time: rec.GetTimeUnixNano()}
			for _, v := range numericItems(rec.GetHistory().GetItems()) {
				row.Values = append(row.Values, liveValue{key: keys.json([]byte(v.Key)), v: v.V})
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
