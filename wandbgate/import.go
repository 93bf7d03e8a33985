package wandbgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
	"github.com/runlog/runlog/wandbwire"
)

// ImportResult says what an import wrote.
type ImportResult struct {
	RunID   string
	Records int // wandb records read intact
	Written int // runlog records published
	// Stopped is set when the file was damaged or truncated: the valid
	// prefix before it was imported and the run closed as crashed.
	Stopped *wandbwire.CorruptError
}

// WandbFile finds the .wandb file of path: path itself, or the one
// run-*.wandb inside an offline run directory.
func WandbFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	m, _ := filepath.Glob(filepath.Join(path, "run-*.wandb"))
	if len(m) != 1 {
		return "", fmt.Errorf("import %s: want one run-*.wandb in the directory, found %d", path, len(m))
	}
	return m[0], nil
}

// Import writes the wandb run in the .wandb file at path as a runlog run
// through c, with the wandb run's id. A damaged or truncated file imports
// its valid prefix; the result names where it stopped.
func Import(ctx context.Context, c *client.Client, path string) (ImportResult, error) {
	var res ImportResult
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	r, err := wandbwire.NewReader(f)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", path, err)
	}
	t := NewTranslator()
	var run *client.Run
	var nums recordNums
	var num int64 // the wandb record number of the record being translated
	write := func(rec *runlogv1.Record, num int64) error {
		res.Written++
		nums.add(uint64(res.Written), num)
		return run.Publish(ctx, rec)
	}
	// wandb's core writes the summary it derives from history as one or
	// two summary records after every row: merged into one record, kept
	// until a record other than a row or a plain summary update, they
	// fold to the same summary at a third of the records.
	var sum summaryMerge
	flushSummary := func() error {
		if rec, last := sum.take(); rec != nil {
			return write(rec, last)
		}
		return nil
	}
	emit := func(rec *runlogv1.Record) error {
		switch {
		case rec.GetHistory() != nil:
		case rec.GetSummary() != nil && len(rec.GetSummary().GetRemove()) == 0:
			sum.add(rec.GetSummary().GetSet(), num)
			return nil
		default:
			if err := flushSummary(); err != nil {
				return err
			}
		}
		return write(rec, num)
	}
	var rec wandbv1.Record
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce *wandbwire.CorruptError
			if !errors.As(err, &ce) {
				return res, fmt.Errorf("import %s: %w", path, err)
			}
			res.Stopped = ce
			break
		}
		rec.Reset()
		if err := proto.Unmarshal(b, &rec); err != nil {
			res.Stopped = &wandbwire.CorruptError{Offset: r.Offset(), Record: res.Records, Err: fmt.Errorf("decode record: %w", err)}
			break
		}
		res.Records++
		num = rec.GetNum()
		if run == nil {
			rr := rec.GetRun()
			if rr == nil {
				continue // the header, and nothing else, comes first
			}
			info := RunInfo(rr)
			res.RunID = rr.GetRunId()
			if run, err = c.Init(ctx, client.RunOptions{
				ID: rr.GetRunId(), Mode: client.Offline, Project: info.GetProject(), Name: info.GetName(),
				Group: info.GetGroup(), Tags: info.GetTags(), Notes: info.GetNotes(), JobType: info.GetJobType(),
			}); err != nil {
				return res, fmt.Errorf("import %s: %w", path, err)
			}
		}
		if err := t.Record(&rec, emit); err != nil {
			return res, fmt.Errorf("import %s: record %d: %w", path, res.Records-1, err)
		}
		if t.Exit() != nil {
			break
		}
	}
	if run == nil {
		if res.Stopped != nil {
			return res, fmt.Errorf("import %s: no run record before the damage: %w", path, res.Stopped)
		}
		return res, fmt.Errorf("import %s: no run record", path)
	}
	if err := flushSummary(); err != nil {
		return res, fmt.Errorf("import %s: %w", path, err)
	}
	if err := run.Publish(ctx, nums.config(run.ClientID())); err != nil {
		return res, fmt.Errorf("import %s: record numbers: %w", path, err)
	}
	e := t.Exit()
	if e == nil {
		msg := "the .wandb file ends without an exit record"
		if res.Stopped != nil {
			msg = "import stopped: " + res.Stopped.Error()
		}
		e = &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: msg}
	}
	if err := run.FinishWith(ctx, int(e.GetCode()), e.GetReason(), e.GetMessage()); err != nil {
		return res, fmt.Errorf("import %s: finish run %s: %w", path, run.ID(), err)
	}
	return res, nil
}

// RecordNumsKey is the config key where an import keeps the wandb record
// number of every runlog record it wrote, as JSON:
//
//	{"client_id": ID, "spans": [[client_seq, num, count], ...]}
//
// The records the import wrote carry client_id ID; the one with client_seq
// c in a span [s, n, k] (s <= c < s+k) came from wandb record n+(c-s). A
// wandb record may yield no runlog record (the header, requests) or several
// (a files record). Spans keep the mapping small: one span covers every
// run of consecutive records that map one to one.
const RecordNumsKey = "_wandb/record_nums"

// recordNums collects the spans of RecordNumsKey.
type recordNums struct {
	spans [][3]int64
}

func (m *recordNums) add(seq uint64, num int64) {
	if n := len(m.spans); n > 0 {
		s := &m.spans[n-1]
		if int64(seq) == s[0]+s[2] && num == s[1]+s[2] {
			s[2]++
			return
		}
	}
	m.spans = append(m.spans, [3]int64{int64(seq), num, 1})
}

func (m *recordNums) config(clientID string) *runlogv1.Record {
	b, _ := json.Marshal(struct {
		ClientID string     `json:"client_id"`
		Spans    [][3]int64 `json:"spans"`
	}{clientID, m.spans})
	return &runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
		Set: []*runlogv1.Item{{Key: RecordNumsKey, Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: b}}}},
	}}}
}

// summaryMerge merges summary updates: later values of a key replace
// earlier ones, keys keep the order they first came in.
type summaryMerge struct {
	items []*runlogv1.Item
	index map[string]int
	last  int64 // the wandb record number of the last update merged
}

func (m *summaryMerge) add(set []*runlogv1.Item, num int64) {
	if m.index == nil {
		m.index = map[string]int{}
	}
	for _, it := range set {
		if i, ok := m.index[it.GetKey()]; ok {
			m.items[i] = it
			continue
		}
		m.index[it.GetKey()] = len(m.items)
		m.items = append(m.items, it)
	}
	m.last = num
}

// take returns the merged update, nil if there is none, and the record
// number it maps to, and starts over.
func (m *summaryMerge) take() (*runlogv1.Record, int64) {
	if len(m.items) == 0 {
		return nil, 0
	}
	rec := &runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: m.items}}}
	m.items = nil
	clear(m.index)
	return rec, m.last
}
