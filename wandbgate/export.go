package wandbgate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
	"github.com/runlog/runlog/wandbwire"
)

// Exporter writes a runlog run as a wandb offline run directory,
// DIR/offline-run-<start time>-<id>/run-<id>.wandb, the layout wandb sync
// reads. Records go in log order; history rows get the _step, _runtime and
// _timestamp items wandb's own rows carry.
type Exporter struct {
	id    string
	dir   string
	f     *os.File
	w     *wandbwire.Writer
	num   int64
	start time.Time
	run   *wandbv1.RunRecord
	buf   []byte
	ended bool
}

// NewExporter prepares the export of run id into dir. Nothing is written
// before the run's first record.
func NewExporter(dir, id string) *Exporter { return &Exporter{id: id, dir: dir} }

// Path is the .wandb file written, once the first record came.
func (e *Exporter) Path() string {
	if e.f == nil {
		return ""
	}
	return e.f.Name()
}

func (e *Exporter) open(start time.Time) error {
	e.start = start
	d := filepath.Join(e.dir, fmt.Sprintf("offline-run-%s-%s", start.UTC().Format("20060102_150405"), e.id))
	if err := os.MkdirAll(filepath.Join(d, "files"), 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d, "run-"+e.id+".wandb"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	e.f = f
	if e.w, err = wandbwire.NewWriter(f); err != nil {
		return err
	}
	return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Header{Header: &wandbv1.HeaderRecord{
		VersionInfo: &wandbv1.VersionInfo{Producer: "runlog", MinConsumer: "0.70.0"},
	}}})
}

func (e *Exporter) write(rec *wandbv1.Record) error {
	e.num++
	rec.Num = e.num
	rec.Info = &wandbv1.StreamInfo{StreamId: e.id}
	var err error
	if e.buf, err = (proto.MarshalOptions{}).MarshalAppend(e.buf[:0], rec); err != nil {
		return fmt.Errorf("export: encode record %d: %w", e.num, err)
	}
	return e.w.Write(e.buf)
}

// Record writes one runlog record.
func (e *Exporter) Record(r *runlogv1.Record) error {
	if e.f == nil {
		t := time.Unix(0, r.GetTimeUnixNano())
		if st := r.GetRun().GetStartTimeUnixNano(); st != 0 {
			t = time.Unix(0, st)
		}
		if err := e.open(t); err != nil {
			return err
		}
	}
	switch p := r.GetPayload().(type) {
	case *runlogv1.Record_Run:
		in := p.Run
		if e.run == nil {
			e.run = &wandbv1.RunRecord{RunId: e.id, StartTime: ts(e.start)}
		}
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&e.run.Project, in.GetProject())
		set(&e.run.Entity, in.GetEntity())
		set(&e.run.DisplayName, in.GetName())
		set(&e.run.RunGroup, in.GetGroup())
		set(&e.run.Notes, in.GetNotes())
		set(&e.run.Host, in.GetHost())
		set(&e.run.JobType, in.GetJobType())
		if len(in.GetTags()) > 0 {
			e.run.Tags = in.GetTags()
		}
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Run{Run: proto.Clone(e.run).(*wandbv1.RunRecord)}})
	case *runlogv1.Record_Config:
		var set []*runlogv1.Item
		for _, it := range p.Config.GetSet() {
			// Keys under _wandb/ are runlog's notes on an imported run
			// (telemetry, record numbers), not the run's config.
			if !strings.HasPrefix(it.GetKey(), "_wandb/") {
				set = append(set, it)
			}
		}
		if len(set)+len(p.Config.GetRemove()) == 0 {
			return nil
		}
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Config{Config: &wandbv1.ConfigRecord{
			Update: toJSONItems(set), Remove: removeItems(p.Config.GetRemove()),
		}}})
	case *runlogv1.Record_Summary:
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Summary{Summary: &wandbv1.SummaryRecord{
			Update: toJSONItems(p.Summary.GetSet()), Remove: removeItems(p.Summary.GetRemove()),
		}}})
	case *runlogv1.Record_History:
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_History{History: e.history(r, p.History)}})
	case *runlogv1.Record_Output:
		typ := wandbv1.OutputRecord_STDERR
		if p.Output.GetStream() == runlogv1.ConsoleOutput_STREAM_STDOUT {
			typ = wandbv1.OutputRecord_STDOUT
		}
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_OutputRaw{OutputRaw: &wandbv1.OutputRecord{
			OutputType: typ, Line: p.Output.GetText(), Timestamp: ts(time.Unix(0, r.GetTimeUnixNano())),
		}}})
	case *runlogv1.Record_Stats:
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Stats{Stats: &wandbv1.StatsRecord{
			Timestamp: ts(time.Unix(0, r.GetTimeUnixNano())), Item: toJSONItems(p.Stats.GetItems()),
		}}})
	case *runlogv1.Record_Alert:
		level := strings.TrimPrefix(p.Alert.GetLevel().String(), "LEVEL_")
		if level == "UNSPECIFIED" {
			level = "INFO"
		}
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Alert{Alert: &wandbv1.AlertRecord{
			Title: p.Alert.GetTitle(), Text: p.Alert.GetText(), Level: level,
		}}})
	case *runlogv1.Record_File:
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Files{Files: &wandbv1.FilesRecord{
			Files: []*wandbv1.FilesItem{{Path: p.File.GetPath()}},
		}}})
	case *runlogv1.Record_Exit:
		e.ended = true
		runtime := int32(time.Unix(0, r.GetTimeUnixNano()).Sub(e.start) / time.Second)
		return e.write(&wandbv1.Record{Kind: &wandbv1.Record_Exit{Exit: &wandbv1.RunExitRecord{
			ExitCode: p.Exit.GetCode(), Runtime: runtime,
		}}})
	}
	return nil
}

func (e *Exporter) history(r *runlogv1.Record, h *runlogv1.HistoryRow) *wandbv1.HistoryRecord {
	out := &wandbv1.HistoryRecord{Step: &wandbv1.HistoryStep{Num: h.GetStep()}}
	item := func(k, v string) {
		out.Item = append(out.Item, &wandbv1.HistoryItem{NestedKey: []string{k}, ValueJson: v})
	}
	item("_step", fmt.Sprint(h.GetStep()))
	var hasTS, hasRuntime bool
	for _, it := range h.GetItems() {
		hasTS = hasTS || it.GetKey() == "_timestamp"
		hasRuntime = hasRuntime || it.GetKey() == "_runtime"
		out.Item = append(out.Item, &wandbv1.HistoryItem{NestedKey: strings.Split(it.GetKey(), "/"), ValueJson: valueJSON(it.GetValue())})
	}
	at := time.Unix(0, r.GetTimeUnixNano())
	if !hasTS {
		item("_timestamp", valueJSON(doubleValue(float64(at.UnixNano())/1e9)))
	}
	if !hasRuntime {
		item("_runtime", valueJSON(doubleValue(at.Sub(e.start).Seconds())))
	}
	return out
}

// Close writes the closing records and closes the file.
func (e *Exporter) Close() error {
	if e.f == nil {
		return fmt.Errorf("export run %s: the run has no records", e.id)
	}
	if e.ended {
		if err := e.write(&wandbv1.Record{Kind: &wandbv1.Record_Final{Final: &wandbv1.Opaque{}}}); err != nil {
			return err
		}
	}
	if err := e.w.Flush(); err != nil {
		e.f.Close()
		return err
	}
	if err := e.f.Sync(); err != nil {
		e.f.Close()
		return fmt.Errorf("export: %w", err)
	}
	return e.f.Close()
}

func ts(t time.Time) *wandbv1.Timestamp {
	return &wandbv1.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

func toJSONItems(in []*runlogv1.Item) []*wandbv1.JSONItem {
	out := make([]*wandbv1.JSONItem, 0, len(in))
	for _, it := range in {
		out = append(out, &wandbv1.JSONItem{NestedKey: strings.Split(it.GetKey(), "/"), ValueJson: valueJSON(it.GetValue())})
	}
	return out
}

func removeItems(keys []string) []*wandbv1.JSONItem {
	out := make([]*wandbv1.JSONItem, 0, len(keys))
	for _, k := range keys {
		out = append(out, &wandbv1.JSONItem{NestedKey: strings.Split(k, "/")})
	}
	return out
}
