package wandbgate

import (
	"encoding/base64"
	"strings"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
)

// TelemetryKey is the config key that keeps a run's wandb telemetry: the
// base64 of its TelemetryRecords merged (protobuf merge is concatenation).
const TelemetryKey = "_wandb/telemetry"

// Translator turns one wandb stream's records into runlog records. It
// assembles history rows from partial_history requests the way wandb's own
// core does, and passes the history records of a .wandb file through. It is
// not safe for concurrent use.
//
// Its memory is the row being assembled and the merged telemetry.
type Translator struct {
	step    int64 // the step of the row being assembled
	partial []*runlogv1.Item
	index   map[string]int // key -> position in partial
	tele    []byte
	exit    *runlogv1.Exit
	run     *wandbv1.RunRecord
}

// NewTranslator returns a translator for a stream starting at step 0.
func NewTranslator() *Translator {
	return &Translator{index: map[string]int{}}
}

// Step is the step of the row being assembled: the next row's step.
func (t *Translator) Step() int64 { return t.step }

// Run is the stream's run record, once one arrived.
func (t *Translator) Run() *wandbv1.RunRecord { return t.run }

// Exit is the stream's exit, once its exit record arrived.
func (t *Translator) Exit() *runlogv1.Exit { return t.exit }

// Record translates rec and calls emit for each runlog record it yields, in
// order. An exit record flushes the row being assembled and sets Exit; it
// emits no record (the caller finishes the run with it).
func (t *Translator) Record(rec *wandbv1.Record, emit func(*runlogv1.Record) error) error {
	switch k := rec.GetKind().(type) {
	case *wandbv1.Record_Run:
		return t.runRecord(k.Run, emit)
	case *wandbv1.Record_History:
		return t.history(k.History, emit)
	case *wandbv1.Record_Request:
		if ph := k.Request.GetPartialHistory(); ph != nil {
			return t.partialHistory(ph, emit)
		}
	case *wandbv1.Record_Config:
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
			Set: jsonItems(k.Config.GetUpdate()), Remove: keys(k.Config.GetRemove()),
		}}})
	case *wandbv1.Record_Summary:
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{
			Set: jsonItems(k.Summary.GetUpdate()), Remove: keys(k.Summary.GetRemove()),
		}}})
	case *wandbv1.Record_Output:
		return emit(output(k.Output))
	case *wandbv1.Record_OutputRaw:
		return emit(output(k.OutputRaw))
	case *wandbv1.Record_Stats:
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{
			Items: jsonItems(k.Stats.GetItem()),
		}}})
	case *wandbv1.Record_Alert:
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{
			Title: k.Alert.GetTitle(), Text: k.Alert.GetText(), Level: alertLevel(k.Alert.GetLevel()),
		}}})
	case *wandbv1.Record_Files:
		for _, f := range k.Files.GetFiles() {
			if err := emit(&runlogv1.Record{Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: f.GetPath()}}}); err != nil {
				return err
			}
		}
	case *wandbv1.Record_Metric:
		if m := metric(k.Metric); m != nil {
			return emit(&runlogv1.Record{Payload: &runlogv1.Record_Metric{Metric: m}})
		}
	case *wandbv1.Record_Telemetry:
		b, err := proto.Marshal(k.Telemetry)
		if err != nil || len(b) == 0 {
			return nil
		}
		t.tele = append(t.tele, b...)
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
			Set: []*runlogv1.Item{{Key: TelemetryKey, Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{
				StringValue: base64.StdEncoding.EncodeToString(t.tele)}}}},
		}}})
	case *wandbv1.Record_Exit:
		if err := t.Flush(emit); err != nil {
			return err
		}
		code := k.Exit.GetExitCode()
		reason := runlogv1.ExitReason_EXIT_REASON_FINISHED
		if code != 0 {
			reason = runlogv1.ExitReason_EXIT_REASON_FAILED
		}
		t.exit = &runlogv1.Exit{Code: code, Reason: reason}
	}
	return nil
}

func (t *Translator) runRecord(r *wandbv1.RunRecord, emit func(*runlogv1.Record) error) error {
	t.run = r
	if s := r.GetStartingStep(); s > t.step {
		t.step = s
	}
	info := RunInfo(r)
	if err := emit(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: info}}); err != nil {
		return err
	}
	if c := r.GetConfig(); len(c.GetUpdate())+len(c.GetRemove()) > 0 {
		if err := emit(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
			Set: jsonItems(c.GetUpdate()), Remove: keys(c.GetRemove()),
		}}}); err != nil {
			return err
		}
	}
	if s := r.GetSummary(); len(s.GetUpdate())+len(s.GetRemove()) > 0 {
		return emit(&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{
			Set: jsonItems(s.GetUpdate()), Remove: keys(s.GetRemove()),
		}}})
	}
	return nil
}

// RunInfo is the runlog description of a wandb run record.
func RunInfo(r *wandbv1.RunRecord) *runlogv1.RunInfo {
	info := &runlogv1.RunInfo{
		Project: r.GetProject(),
		Name:    r.GetDisplayName(),
		Group:   r.GetRunGroup(),
		Tags:    r.GetTags(),
		Notes:   r.GetNotes(),
		Host:    r.GetHost(),
		JobType: r.GetJobType(),
		Entity:  r.GetEntity(),
	}
	if st := r.GetStartTime(); st != nil {
		info.StartTimeUnixNano = st.GetSeconds()*1e9 + int64(st.GetNanos())
	}
	return info
}

// history passes a history record of a .wandb file through: its step is
// step.num, else its _step item.
func (t *Translator) history(h *wandbv1.HistoryRecord, emit func(*runlogv1.Record) error) error {
	row := &runlogv1.HistoryRow{Step: h.GetStep().GetNum()}
	hasStep := h.GetStep() != nil
	for _, it := range h.GetItem() {
		k := itemKey(it.GetKey(), it.GetNestedKey())
		v := historyValue(it)
		if k == "_step" {
			if !hasStep {
				row.Step = v.GetIntValue()
			}
			continue
		}
		row.Items = append(row.Items, &runlogv1.Item{Key: k, Value: v})
	}
	t.step = row.Step + 1
	return emit(&runlogv1.Record{Payload: &runlogv1.Record_History{History: row}})
}

// partialHistory assembles rows as wandb's core does. A request with a step
// above the current one first flushes the row being assembled and moves to
// that step; one below it is dropped. Its items are merged into the row.
// The row is then flushed if the request says flush, or if it names no step
// and says nothing about flushing (wandb.log without step or commit).
func (t *Translator) partialHistory(p *wandbv1.PartialHistoryRequest, emit func(*runlogv1.Record) error) error {
	flush := p.GetAction().GetFlush()
	if p.GetStep() != nil {
		s := p.GetStep().GetNum()
		if s < t.step {
			return nil
		}
		if s > t.step {
			if err := t.Flush(emit); err != nil {
				return err
			}
			t.step = s
		}
	} else if p.GetAction() == nil {
		flush = true
	}
	for _, it := range p.GetItem() {
		k := itemKey(it.GetKey(), it.GetNestedKey())
		if k == "_step" {
			continue
		}
		v := historyValue(it)
		if i, ok := t.index[k]; ok {
			t.partial[i].Value = v
			continue
		}
		t.index[k] = len(t.partial)
		t.partial = append(t.partial, &runlogv1.Item{Key: k, Value: v})
	}
	if flush {
		return t.Flush(emit)
	}
	return nil
}

// Flush emits the row being assembled, if it has items, and moves to the
// next step.
func (t *Translator) Flush(emit func(*runlogv1.Record) error) error {
	if len(t.partial) == 0 {
		return nil
	}
	row := &runlogv1.HistoryRow{Step: t.step, Items: t.partial}
	t.partial = nil
	clear(t.index)
	t.step++
	return emit(&runlogv1.Record{Payload: &runlogv1.Record_History{History: row}})
}

func jsonItems(in []*wandbv1.JSONItem) []*runlogv1.Item {
	out := make([]*runlogv1.Item, 0, len(in))
	for _, it := range in {
		out = append(out, &runlogv1.Item{Key: itemKey(it.GetKey(), it.GetNestedKey()), Value: jsonValue(it.GetValueJson())})
	}
	return out
}

func keys(in []*wandbv1.JSONItem) []string {
	out := make([]string, 0, len(in))
	for _, it := range in {
		out = append(out, itemKey(it.GetKey(), it.GetNestedKey()))
	}
	return out
}

func output(o *wandbv1.OutputRecord) *runlogv1.Record {
	s := runlogv1.ConsoleOutput_STREAM_STDERR
	if o.GetOutputType() == wandbv1.OutputRecord_STDOUT {
		s = runlogv1.ConsoleOutput_STREAM_STDOUT
	}
	return &runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: s, Text: o.GetLine()}}}
}

func alertLevel(l string) runlogv1.Alert_Level {
	switch strings.ToUpper(l) {
	case "WARN", "WARNING":
		return runlogv1.Alert_LEVEL_WARN
	case "ERROR":
		return runlogv1.Alert_LEVEL_ERROR
	}
	return runlogv1.Alert_LEVEL_INFO
}

func metric(m *wandbv1.MetricRecord) *runlogv1.MetricDefinition {
	name := m.GetName()
	if name == "" {
		name = m.GetGlobName()
	}
	if name == "" {
		return nil
	}
	d := &runlogv1.MetricDefinition{Name: name, StepMetric: m.GetStepMetric()}
	switch s := m.GetSummary(); {
	case s.GetMin():
		d.Summary = runlogv1.MetricDefinition_SUMMARY_MIN
	case s.GetMax():
		d.Summary = runlogv1.MetricDefinition_SUMMARY_MAX
	case s.GetMean():
		d.Summary = runlogv1.MetricDefinition_SUMMARY_MEAN
	case s.GetLast():
		d.Summary = runlogv1.MetricDefinition_SUMMARY_LAST
	case s.GetNone():
		d.Summary = runlogv1.MetricDefinition_SUMMARY_NONE
	}
	switch m.GetGoal() {
	case 1:
		d.Goal = runlogv1.MetricDefinition_GOAL_MINIMIZE
	case 2:
		d.Goal = runlogv1.MetricDefinition_GOAL_MAXIMIZE
	}
	return d
}
