package web

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"sync"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
)

// table is the runs table kept in memory: each row is rebuilt only when its
// run's version changes, so that listing, filtering and sorting 10,000 runs
// reads only the cheap run index.
type table struct {
	src Source
	// mu protects rows.
	mu   sync.Mutex
	rows map[string]*row
}

// row is one run as the runs table shows it.
type row struct {
	version  uint64
	ID       string         `json:"id"`
	Project  string         `json:"project"`
	Name     string         `json:"name"`
	Group    string         `json:"group"`
	Tags     []string       `json:"tags"`
	State    string         `json:"state"`
	Start    int64          `json:"start"`
	Last     int64          `json:"last"`
	Duration int64          `json:"duration"`
	LastStep int64          `json:"last_step"`
	Records  uint64         `json:"records"`
	Config   map[string]any `json:"-"`
	Summary  map[string]any `json:"-"`
	search   string
}

func newTable(src Source) *table { return &table{src: src, rows: map[string]*row{}} }

// refresh brings the rows up to date with the source and returns them.
func (t *table) refresh(ctx context.Context) ([]*row, error) {
	briefs, err := t.src.List(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	stale := make([]Brief, 0)
	seen := make(map[string]bool, len(briefs))
	for _, b := range briefs {
		seen[b.ID] = true
		if r, ok := t.rows[b.ID]; !ok || r.version != b.Version {
			stale = append(stale, b)
		}
	}
	for id := range t.rows {
		if !seen[id] {
			delete(t.rows, id)
		}
	}
	t.mu.Unlock()
	built := make([]*row, len(stale))
	// Build stale rows on a few goroutines: a cold table of many runs.
	var wg sync.WaitGroup
	next := make(chan int)
	var firstErr error
	var errMu sync.Mutex
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				run, err := t.src.Run(ctx, stale[i].ID)
				if err != nil {
					errMu.Lock()
					firstErr = err
					errMu.Unlock()
					continue
				}
				built[i] = newRow(run)
			}
		}()
	}
	for i := range stale {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range built {
		if r != nil {
			t.rows[r.ID] = r
		}
	}
	out := make([]*row, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, r)
	}
	return out, nil
}

func newRow(run *Run) *row {
	st := run.State
	info := st.GetInfo()
	r := &row{
		version:  run.Seq,
		ID:       st.GetRunId(),
		Project:  info.GetProject(),
		Name:     info.GetName(),
		Group:    info.GetGroup(),
		Tags:     append([]string{}, info.GetTags()...),
		State:    stateName(st.GetStatus()),
		Start:    info.GetStartTimeUnixNano(),
		Last:     st.GetLastTimeUnixNano(),
		LastStep: st.GetLastStep(),
		Records:  st.GetRecords(),
		Config:   itemMap(st.GetConfig()),
		Summary:  itemMap(st.GetSummary()),
	}
	if r.Start == 0 {
		r.Start = st.GetStartTimeUnixNano()
	}
	if r.Last > r.Start && r.Start > 0 {
		r.Duration = r.Last - r.Start
	}
	r.search = strings.ToLower(strings.Join(append([]string{r.ID, r.Name, r.Group, r.Project}, r.Tags...), "\x00"))
	return r
}

// stateName is the lower-case state the page colours: running, finished,
// failed, crashed, killed, preempted.
func stateName(s runlogv1.RunStatus) string {
	n := replay.StatusName(s)
	return strings.ToLower(n)
}

func itemMap(items []*runlogv1.Item) map[string]any {
	m := make(map[string]any, len(items))
	for _, it := range items {
		m[it.GetKey()] = jsonValue(it.GetValue())
	}
	return m
}

// jsonValue converts a Value to what encoding/json writes: numbers, bools,
// strings, nested JSON as decoded JSON. NaN and infinities, which JSON
// lacks, become strings.
func jsonValue(v *runlogv1.Value) any {
	switch x := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return replayFloat(x.DoubleValue)
		}
		return x.DoubleValue
	case *runlogv1.Value_IntValue:
		return x.IntValue
	case *runlogv1.Value_BoolValue:
		return x.BoolValue
	case *runlogv1.Value_StringValue:
		return x.StringValue
	case *runlogv1.Value_JsonValue:
		if json.Valid(x.JsonValue) {
			return json.RawMessage(x.JsonValue)
		}
		return string(x.JsonValue)
	}
	return nil
}

func replayFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f > 0:
		return "Infinity"
	}
	return "-Infinity"
}

// column reads a sortable column of a row: a built-in name, or
// "config.KEY" / "summary.KEY".
func (r *row) column(col string) any {
	switch col {
	case "id":
		return r.ID
	case "name":
		return r.Name
	case "project":
		return r.Project
	case "group":
		return r.Group
	case "state":
		return r.State
	case "start":
		return r.Start
	case "duration":
		return r.Duration
	case "step":
		return r.LastStep
	case "records":
		return r.Records
	}
	if k, ok := strings.CutPrefix(col, "summary."); ok {
		return r.Summary[k]
	}
	if k, ok := strings.CutPrefix(col, "config."); ok {
		return r.Config[k]
	}
	return nil
}

// number returns v as a float when it is one.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// less orders values: numbers before strings before anything else; a
// missing value sorts last whatever the direction.
func compareValues(a, b any) int {
	an, aok := number(a)
	bn, bok := number(b)
	switch {
	case aok && bok:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aok:
		return -1
	case bok:
		return 1
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	switch {
	case aok && bok:
		return strings.Compare(as, bs)
	case aok:
		return -1
	case bok:
		return 1
	}
	return 0
}

// sortRows sorts by col, descending when desc; missing values last; ties
// by start time, newest first, then id.
func sortRows(rows []*row, col string, desc bool) {
	type keyed struct {
		r *row
		v any
	}
	ks := make([]keyed, len(rows))
	for i, r := range rows {
		ks[i] = keyed{r, r.column(col)}
	}
	sort.SliceStable(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if (a.v == nil) != (b.v == nil) {
			return b.v == nil
		}
		c := compareValues(a.v, b.v)
		if desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
		if a.r.Start != b.r.Start {
			return a.r.Start > b.r.Start
		}
		return a.r.ID < b.r.ID
	})
	for i := range ks {
		rows[i] = ks[i].r
	}
}
