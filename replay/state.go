package replay

import (
	"sort"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// State is a run folded from its log: run info, config, summary, a count of
// live history rows and the step floor, console output counts, the exit and
// the position in the log. Apply records to it in sequence order.
//
// A State is not safe for concurrent use.
type State struct {
	runID string

	info    *runlogv1.RunInfo // nil until a RunInfo record
	config  map[string]*runlogv1.Value
	summary map[string]*runlogv1.Value
	exit    *runlogv1.Exit // the last exit record, nil while running

	lastSeq   uint64
	records   uint64
	firstTime int64
	lastTime  int64
	counts    [numKinds]uint64
	outBytes  uint64 // console text bytes

	history  steps
	lastStep int64 // step floor, -1 when the run has no history

	// The latest system-stats sample: its encoded SystemStats (the items),
	// seq and time. Kept encoded so that folding a sample is one copy into
	// a reused buffer; Stats decodes it.
	stats     []byte
	statsSeq  uint64
	statsTime int64
}

// NewState returns the state of an empty run.
func NewState(runID string) *State {
	return &State{
		runID:    runID,
		config:   make(map[string]*runlogv1.Value),
		summary:  make(map[string]*runlogv1.Value),
		lastStep: -1,
	}
}

// RunID returns the run the state belongs to.
func (s *State) RunID() string { return s.runID }

// LastSeq returns the seq of the last record applied, 0 for an empty run.
func (s *State) LastSeq() uint64 { return s.lastSeq }

// Records returns how many records were applied.
func (s *State) Records() uint64 { return s.records }

// Count returns how many records of kind k were applied.
func (s *State) Count(k Kind) uint64 {
	if k >= numKinds {
		return 0
	}
	return s.counts[k]
}

// OutputBytes returns the bytes of console text applied.
func (s *State) OutputBytes() uint64 { return s.outBytes }

// HistoryRows returns the number of live history rows: rows logged and not
// dropped by a later rewind.
func (s *State) HistoryRows() uint64 { return s.history.rows() }

// HistoryRowsExact reports whether HistoryRows is exact; see the package
// Caveats for when it is not.
func (s *State) HistoryRowsExact() bool { return !s.history.approx }

// SetHistoryRows corrects an estimated live row count with the exact count
// from the log (CountHistory up to LastSeq). The difference goes to the
// merged stretches the estimate came from, so later rewinds start from the
// right total.
func (s *State) SetHistoryRows(n uint64) {
	d := int64(n) - int64(s.history.total)
	for i := range s.history.segs {
		g := &s.history.segs[i]
		if g.exact || d == 0 {
			continue
		}
		adj := max(d, -int64(g.n))
		g.n = uint64(int64(g.n) + adj)
		d -= adj
	}
	s.history.total = 0
	for _, g := range s.history.segs {
		s.history.total += g.n
	}
	s.history.approx = s.history.total != n
}

// LastStep returns the step floor: the last history row's step, or the step
// of a later rewind; -1 when the run has no history.
func (s *State) LastStep() int64 { return s.lastStep }

// Finished reports whether an exit record was applied.
func (s *State) Finished() bool { return s.exit != nil }

// Status returns the run's status derived from its exit record.
func (s *State) Status() runlogv1.RunStatus {
	if s.exit == nil {
		if s.records == 0 {
			return runlogv1.RunStatus_RUN_STATUS_UNSPECIFIED
		}
		return runlogv1.RunStatus_RUN_STATUS_RUNNING
	}
	switch s.exit.GetReason() {
	case runlogv1.ExitReason_EXIT_REASON_FINISHED:
		return runlogv1.RunStatus_RUN_STATUS_FINISHED
	case runlogv1.ExitReason_EXIT_REASON_FAILED:
		return runlogv1.RunStatus_RUN_STATUS_FAILED
	case runlogv1.ExitReason_EXIT_REASON_CRASHED:
		return runlogv1.RunStatus_RUN_STATUS_CRASHED
	case runlogv1.ExitReason_EXIT_REASON_KILLED:
		return runlogv1.RunStatus_RUN_STATUS_KILLED
	case runlogv1.ExitReason_EXIT_REASON_PREEMPTED:
		return runlogv1.RunStatus_RUN_STATUS_PREEMPTED
	}
	// No reason given: the exit code decides, as for a process.
	if s.exit.GetCode() == 0 {
		return runlogv1.RunStatus_RUN_STATUS_FINISHED
	}
	return runlogv1.RunStatus_RUN_STATUS_FAILED
}

// Apply folds one record into the state. Records must be applied in sequence
// order; Apply does not check that (Verify does). The state keeps no
// reference to r or anything in it.
func (s *State) Apply(r *runlogv1.Record) {
	s.applyHeader(r.GetSeq(), r.GetTimeUnixNano(), KindOf(r))
	switch p := r.GetPayload().(type) {
	case *runlogv1.Record_Run:
		s.mergeInfo(p.Run)
	case *runlogv1.Record_Config:
		applyUpdate(s.config, p.Config.GetSet(), p.Config.GetRemove())
	case *runlogv1.Record_Summary:
		applyUpdate(s.summary, p.Summary.GetSet(), p.Summary.GetRemove())
	case *runlogv1.Record_History:
		s.applyStep(p.History.GetStep())
	case *runlogv1.Record_Rewind:
		step := p.Rewind.GetStep()
		s.history.rewind(step)
		s.lastStep = step
	case *runlogv1.Record_Stats:
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p.Stats)
		s.applyStats(r.GetSeq(), r.GetTimeUnixNano(), b)
	case *runlogv1.Record_Output:
		s.outBytes += uint64(len(p.Output.GetText()))
	case *runlogv1.Record_Exit:
		s.exit = &runlogv1.Exit{
			Code:    p.Exit.GetCode(),
			Reason:  p.Exit.GetReason(),
			Message: p.Exit.GetMessage(),
		}
	}
}

// applyHeader counts a record of kind k and moves the position to it.
func (s *State) applyHeader(seq uint64, t int64, k Kind) {
	s.records++
	s.lastSeq = seq
	if t != 0 {
		if s.firstTime == 0 {
			s.firstTime = t
		}
		s.lastTime = t
	}
	s.counts[k]++
}

// applyStats keeps an encoded SystemStats as the latest sample.
func (s *State) applyStats(seq uint64, t int64, payload []byte) {
	s.stats = append(s.stats[:0], payload...)
	s.statsSeq, s.statsTime = seq, t
}

// StatsSamples returns how many system-stats records were applied.
func (s *State) StatsSamples() uint64 { return s.counts[KindStats] }

// LastStats returns the latest system-stats sample's items, seq and time;
// nil items and zero seq when the run has none. The items are copies.
func (s *State) LastStats() (items []*runlogv1.Item, seq uint64, t int64) {
	if s.statsSeq == 0 {
		return nil, 0, 0
	}
	var st runlogv1.SystemStats
	if err := proto.Unmarshal(s.stats, &st); err != nil {
		return nil, s.statsSeq, s.statsTime // checked when folded; cannot happen
	}
	return st.GetItems(), s.statsSeq, s.statsTime
}

// applyStep folds a history row: only its step matters to the state.
func (s *State) applyStep(step int64) {
	s.history.add(step)
	s.lastStep = step
}

// mergeInfo applies a RunInfo record: the first one sets the info, later ones
// replace the fields they set (non-empty strings and lists, non-zero times).
func (s *State) mergeInfo(in *runlogv1.RunInfo) {
	if s.info == nil {
		s.info = &runlogv1.RunInfo{}
	}
	o := s.info
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&o.Project, in.GetProject())
	set(&o.Name, in.GetName())
	set(&o.Group, in.GetGroup())
	set(&o.Notes, in.GetNotes())
	set(&o.Host, in.GetHost())
	set(&o.Program, in.GetProgram())
	set(&o.JobType, in.GetJobType())
	set(&o.GitRemote, in.GetGitRemote())
	set(&o.GitCommit, in.GetGitCommit())
	set(&o.Entity, in.GetEntity())
	if t := in.GetStartTimeUnixNano(); t != 0 {
		o.StartTimeUnixNano = t
	}
	if len(in.GetTags()) > 0 {
		o.Tags = append([]string(nil), in.GetTags()...)
	}
	if len(in.GetArgs()) > 0 {
		o.Args = append([]string(nil), in.GetArgs()...)
	}
}

// applyUpdate sets then removes keys, in that order, as a ConfigUpdate or
// SummaryUpdate says.
func applyUpdate(m map[string]*runlogv1.Value, set []*runlogv1.Item, remove []string) {
	for _, it := range set {
		m[it.GetKey()] = copyValue(it.GetValue())
	}
	for _, k := range remove {
		delete(m, k)
	}
}

// copyValue copies a Value without reflection. A nil value stays an empty
// Value so that the key is kept.
func copyValue(v *runlogv1.Value) *runlogv1.Value {
	out := &runlogv1.Value{}
	switch k := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		out.Kind = &runlogv1.Value_DoubleValue{DoubleValue: k.DoubleValue}
	case *runlogv1.Value_IntValue:
		out.Kind = &runlogv1.Value_IntValue{IntValue: k.IntValue}
	case *runlogv1.Value_BoolValue:
		out.Kind = &runlogv1.Value_BoolValue{BoolValue: k.BoolValue}
	case *runlogv1.Value_StringValue:
		out.Kind = &runlogv1.Value_StringValue{StringValue: k.StringValue}
	case *runlogv1.Value_JsonValue:
		out.Kind = &runlogv1.Value_JsonValue{JsonValue: append([]byte(nil), k.JsonValue...)}
	}
	return out
}

// Config returns the run's config as items sorted by key. The items are
// copies.
func (s *State) Config() []*runlogv1.Item { return sortedItems(s.config) }

// Summary returns the run's summary as items sorted by key. The items are
// copies.
func (s *State) Summary() []*runlogv1.Item { return sortedItems(s.summary) }

func sortedItems(m map[string]*runlogv1.Value) []*runlogv1.Item {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*runlogv1.Item, len(keys))
	for i, k := range keys {
		out[i] = &runlogv1.Item{Key: k, Value: copyValue(m[k])}
	}
	return out
}

// Proto returns the state as a RunState message that shares nothing with s.
func (s *State) Proto() *runlogv1.RunState {
	rs := &runlogv1.RunState{
		RunId:             s.runID,
		Status:            s.Status(),
		Config:            s.Config(),
		Summary:           s.Summary(),
		HistoryRows:       s.HistoryRows(),
		LastStep:          s.lastStep,
		LastSeq:           s.lastSeq,
		StartTimeUnixNano: s.firstTime,
		LastTimeUnixNano:  s.lastTime,
		Records:           s.records,
	}
	if s.info != nil {
		rs.Info = copyInfo(s.info)
	}
	if s.exit != nil {
		rs.Exit = &runlogv1.Exit{Code: s.exit.Code, Reason: s.exit.Reason, Message: s.exit.Message}
	}
	return rs
}

func copyInfo(in *runlogv1.RunInfo) *runlogv1.RunInfo {
	return &runlogv1.RunInfo{
		Project:           in.Project,
		Name:              in.Name,
		Group:             in.Group,
		Tags:              append([]string(nil), in.Tags...),
		Notes:             in.Notes,
		Host:              in.Host,
		Program:           in.Program,
		StartTimeUnixNano: in.StartTimeUnixNano,
		JobType:           in.JobType,
		Args:              append([]string(nil), in.Args...),
		GitRemote:         in.GitRemote,
		GitCommit:         in.GitCommit,
		Entity:            in.Entity,
	}
}

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := *s
	c.config = make(map[string]*runlogv1.Value, len(s.config))
	for k, v := range s.config {
		c.config[k] = copyValue(v)
	}
	c.summary = make(map[string]*runlogv1.Value, len(s.summary))
	for k, v := range s.summary {
		c.summary[k] = copyValue(v)
	}
	if s.info != nil {
		c.info = copyInfo(s.info)
	}
	if s.exit != nil {
		c.exit = &runlogv1.Exit{Code: s.exit.Code, Reason: s.exit.Reason, Message: s.exit.Message}
	}
	c.history.segs = append([]segment(nil), s.history.segs...)
	c.stats = append([]byte(nil), s.stats...)
	return &c
}
