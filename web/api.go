package web

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/rollup"
)

func (s *Server) apiInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"title": s.opts.Title, "auth": s.auth != nil})
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest{fmt.Sprintf("%s=%q: want a whole number in %d..%d", name, v, lo, hi)}
	}
	return n, nil
}

// apiRuns lists runs: ?project=P&q=TEXT&state=S&sort=COL&desc=1&offset=N&limit=N&cols=summary.acc,config.lr
func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, err := intParam(r, "offset", 0, 0, 1<<30)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	all, err := s.table.refresh(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	project, state := q.Get("project"), q.Get("state")
	terms := strings.Fields(strings.ToLower(q.Get("q")))
	projects := map[string]int{}
	cfgKeys, sumKeys := map[string]bool{}, map[string]bool{}
	rows := make([]*row, 0, len(all))
	for _, rw := range all {
		projects[rw.Project]++
		if project != "" && rw.Project != project {
			continue
		}
		for k := range rw.Config {
			cfgKeys[k] = true
		}
		for k := range rw.Summary {
			sumKeys[k] = true
		}
		if state != "" && rw.State != state {
			continue
		}
		ok := true
		for _, t := range terms {
			if !strings.Contains(rw.search, t) {
				ok = false
				break
			}
		}
		if ok {
			rows = append(rows, rw)
		}
	}
	col := q.Get("sort")
	if col == "" {
		col = "start"
	}
	sortRows(rows, col, q.Get("desc") == "1" || (q.Get("desc") == "" && col == "start"))
	var cols []string
	if c := q.Get("cols"); c != "" {
		cols = strings.Split(c, ",")
	}
	page := rows[min(offset, len(rows)):min(offset+limit, len(rows))]
	out := make([]map[string]any, len(page))
	for i, rw := range page {
		vals := make(map[string]any, len(cols))
		for _, c := range cols {
			if v := rw.column(c); v != nil {
				vals[c] = v
			}
		}
		out[i] = map[string]any{
			"id": rw.ID, "project": rw.Project, "name": rw.Name, "group": rw.Group, "tags": rw.Tags,
			"state": rw.State, "start": rw.Start, "last": rw.Last, "duration": rw.Duration,
			"last_step": rw.LastStep, "records": rw.Records, "values": vals,
		}
	}
	writeJSON(w, map[string]any{
		"total": len(rows), "offset": offset, "runs": out,
		"projects": projects, "config_keys": sortedKeys(cfgKeys), "summary_keys": sortedKeys(sumKeys),
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type kv struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func items(list []*runlogv1.Item) []kv {
	out := make([]kv, len(list))
	for i, it := range list {
		out[i] = kv{it.GetKey(), jsonValue(it.GetValue())}
	}
	return out
}

func (s *Server) overview(r *http.Request, id string) (map[string]any, *Run, error) {
	run, err := s.src.Run(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	st := run.State
	info := st.GetInfo()
	o := map[string]any{
		"id": st.GetRunId(), "project": info.GetProject(), "name": info.GetName(), "group": info.GetGroup(),
		"tags": append([]string{}, info.GetTags()...), "notes": info.GetNotes(), "host": info.GetHost(),
		"program": info.GetProgram(), "args": append([]string{}, info.GetArgs()...), "job_type": info.GetJobType(),
		"git_remote": info.GetGitRemote(), "git_commit": info.GetGitCommit(),
		"state": stateName(st.GetStatus()), "start": info.GetStartTimeUnixNano(), "first": st.GetStartTimeUnixNano(),
		"last": st.GetLastTimeUnixNano(), "records": st.GetRecords(), "last_seq": run.Seq,
		"last_step": st.GetLastStep(), "history_rows": st.GetHistoryRows(),
		"config": items(st.GetConfig()), "summary": items(st.GetSummary()),
		"digest": hex.EncodeToString(run.Digest), "upstreams": run.Upstreams, "where": run.Where,
	}
	if o["start"] == int64(0) {
		o["start"] = st.GetStartTimeUnixNano()
	}
	if e := st.GetExit(); e != nil {
		o["exit"] = map[string]any{"code": e.GetCode(), "reason": strings.ToLower(strings.TrimPrefix(e.GetReason().String(), "EXIT_REASON_")), "message": e.GetMessage()}
	}
	if o["upstreams"] == nil {
		o["upstreams"] = []Upstream{}
	}
	return o, run, nil
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	o, _, err := s.overview(r, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, o)
}

// chartQuery reads ?keys=a,b&min=STEP&max=STEP&points=N.
func chartQuery(r *http.Request) (rollup.Query, error) {
	var q rollup.Query
	v := r.URL.Query()
	if k := v.Get("keys"); k != "" {
		q.Keys = strings.Split(k, ",")
	}
	n, err := intParam(r, "points", 1000, 10, 10000)
	if err != nil {
		return q, err
	}
	q.Points = n
	for _, p := range []struct {
		name string
		dst  *int64
		has  *bool
	}{{"min", &q.MinStep, &q.HasMin}, {"max", &q.MaxStep, &q.HasMax}} {
		if s := v.Get(p.name); s != "" {
			x, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return q, badRequest{fmt.Sprintf("%s=%q: want a step", p.name, s)}
			}
			*p.dst, *p.has = x, true
		}
	}
	return q, nil
}

func (s *Server) apiChart(w http.ResponseWriter, r *http.Request) {
	q, err := chartQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	run, err := s.src.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.src.Chart(r.Context(), id, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, map[string]any{"seq": run.Seq, "last_step": run.State.GetLastStep(), "chart": res})
}

// apiRecords pages through the records: ?from=SEQ&limit=N.
func (s *Server) apiRecords(w http.ResponseWriter, r *http.Request) {
	from, err := intParam(r, "from", 1, 1, 1<<62)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type rec struct {
		Seq     uint64 `json:"seq"`
		Time    int64  `json:"time"`
		Client  string `json:"client"`
		Kind    string `json:"kind"`
		Synth   bool   `json:"synthesized,omitempty"`
		Content string `json:"content"`
	}
	out := []rec{}
	var next uint64
	var pr runlogv1.Record
	err = s.src.Records(r.Context(), r.PathValue("id"), uint64(from), func(seq uint64, data []byte) error {
		if len(out) == limit {
			next = seq
			return errStop
		}
		if err := proto.Unmarshal(data, &pr); err != nil {
			out = append(out, rec{Seq: seq, Kind: "undecodable", Content: err.Error()})
			return nil
		}
		text := string(replay.AppendText(nil, &pr))
		out = append(out, rec{Seq: seq, Time: pr.GetTimeUnixNano(), Client: pr.GetClientId(), Kind: replay.KindOf(&pr).String(), Synth: pr.GetSynthesized(), Content: text})
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, map[string]any{"records": out, "next": next})
}

func (s *Server) apiVerify(w http.ResponseWriter, r *http.Request) {
	v, err := s.src.Verify(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, v)
}

// logLimit bounds the console lines and alerts one call returns: the last
// ones.
const logLimit = 2000

type consoleLine struct {
	Seq    uint64 `json:"seq"`
	Time   int64  `json:"time"`
	Stderr bool   `json:"stderr"`
	Text   string `json:"text"`
}

type alertJSON struct {
	Seq   uint64 `json:"seq"`
	Time  int64  `json:"time"`
	Level string `json:"level"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

type statsPoint struct {
	Time  int64              `json:"time"`
	Items map[string]float64 `json:"items"`
}

// logParts turns a record into what the run page's console, alerts and
// system tabs show; ok is false for other kinds.
func logParts(rec *runlogv1.Record) (c *consoleLine, a *alertJSON, st *statsPoint) {
	switch p := rec.GetPayload().(type) {
	case *runlogv1.Record_Output:
		return &consoleLine{Seq: rec.GetSeq(), Time: rec.GetTimeUnixNano(), Stderr: p.Output.GetStream() == runlogv1.ConsoleOutput_STREAM_STDERR, Text: p.Output.GetText()}, nil, nil
	case *runlogv1.Record_Alert:
		return nil, &alertJSON{Seq: rec.GetSeq(), Time: rec.GetTimeUnixNano(), Level: strings.ToLower(strings.TrimPrefix(p.Alert.GetLevel().String(), "LEVEL_")), Title: p.Alert.GetTitle(), Text: p.Alert.GetText()}, nil
	case *runlogv1.Record_Stats:
		pt := &statsPoint{Time: rec.GetTimeUnixNano(), Items: map[string]float64{}}
		for _, v := range numericItems(p.Stats.GetItems()) {
			pt.Items[v.Key] = v.V
		}
		return nil, nil, pt
	}
	return nil, nil, nil
}

func numericItems(list []*runlogv1.Item) []rollup.Value {
	var out []rollup.Value
	for _, it := range list {
		var v float64
		switch x := it.GetValue().GetKind().(type) {
		case *runlogv1.Value_DoubleValue:
			v = x.DoubleValue
		case *runlogv1.Value_IntValue:
			v = float64(x.IntValue)
		case *runlogv1.Value_BoolValue:
			if x.BoolValue {
				v = 1
			}
		default:
			continue
		}
		if rollup.Finite(v) {
			out = append(out, rollup.Value{Key: it.GetKey(), V: v})
		}
	}
	return out
}

// apiLog returns the run's console output, alerts and system metrics (the
// last logLimit of each).
func (s *Server) apiLog(w http.ResponseWriter, r *http.Request) {
	console, alerts, stats := []consoleLine{}, []alertJSON{}, []statsPoint{}
	kinds := replay.Filter{Kinds: []replay.Kind{replay.KindOutput, replay.KindAlert, replay.KindStats}}
	var last uint64
	err := s.src.Records(r.Context(), r.PathValue("id"), 1, func(seq uint64, data []byte) error {
		last = seq
		var rec runlogv1.Record
		if err := proto.Unmarshal(data, &rec); err != nil {
			return nil
		}
		if !kinds.Match(&rec) {
			return nil
		}
		c, a, st := logParts(&rec)
		switch {
		case c != nil:
			console = append(console, *c)
			if len(console) > 2*logLimit {
				console = slices.Clone(console[len(console)-logLimit:])
			}
		case a != nil:
			alerts = append(alerts, *a)
			if len(alerts) > 2*logLimit {
				alerts = slices.Clone(alerts[len(alerts)-logLimit:])
			}
		case st != nil:
			stats = append(stats, *st)
			if len(stats) > 2*logLimit {
				stats = slices.Clone(stats[len(stats)-logLimit:])
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	trim := func(n int) int { return max(0, n-logLimit) }
	writeJSON(w, map[string]any{"seq": last, "console": console[trim(len(console)):], "alerts": alerts[trim(len(alerts)):], "stats": stats[trim(len(stats)):]})
}

// apiCompare returns the runs' overviews and the config keys whose values
// differ: ?ids=a,b,c.
func (s *Server) apiCompare(w http.ResponseWriter, r *http.Request) {
	ids := strings.Split(r.URL.Query().Get("ids"), ",")
	if len(ids) < 1 || ids[0] == "" || len(ids) > 20 {
		s.fail(w, r, badRequest{"ids: want 1 to 20 run ids, comma separated"})
		return
	}
	runs := make([]map[string]any, 0, len(ids))
	configs := make([]map[string]any, 0, len(ids))
	keys := map[string]bool{}
	for _, id := range ids {
		o, run, err := s.overview(r, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		delete(o, "summary")
		delete(o, "config")
		runs = append(runs, o)
		m := itemMap(run.State.GetConfig())
		for k := range m {
			keys[k] = true
		}
		configs = append(configs, m)
	}
	type diff struct {
		Key    string `json:"key"`
		Values []any  `json:"values"`
	}
	diffs := []diff{}
	for _, k := range sortedKeys(keys) {
		vals := make([]any, len(configs))
		same := true
		for i, c := range configs {
			vals[i] = c[k]
			if i > 0 && fmt.Sprint(vals[i]) != fmt.Sprint(vals[0]) {
				same = false
			}
			if _, ok := c[k]; !ok {
				same = false
			}
		}
		if !same || len(configs) == 1 {
			diffs = append(diffs, diff{k, vals})
		}
	}
	writeJSON(w, map[string]any{"runs": runs, "config_diff": diffs})
}
