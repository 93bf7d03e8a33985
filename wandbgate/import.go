package wandbgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
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
		if run != nil {
			// Two records in three are summaries core derived from
			// history: merged without decoding them into messages.
			if n, ok := sum.addEncoded(b); ok {
				res.Records++
				num = n
				continue
			}
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
//	{"client_id": ID, "spans": [[client_seq, num, count, stride], ...]}
//
// The records the import wrote carry client_id ID; the one with client_seq
// c in a span [s, n, k, d] (s <= c < s+k) came from wandb record
// n+(c-s)*d. A wandb record may yield no runlog record (the header,
// requests) or several (a files record); a run of summary updates merged
// into one record maps to the last of them. Spans keep the mapping small:
// one span covers every run of records whose numbers step evenly (rows
// whose derived summaries were merged away step by 3).
const RecordNumsKey = "_wandb/record_nums"

// recordNums collects the spans of RecordNumsKey.
type recordNums struct {
	spans [][4]int64
}

func (m *recordNums) add(seq uint64, num int64) {
	if n := len(m.spans); n > 0 {
		s := &m.spans[n-1]
		if int64(seq) == s[0]+s[2] {
			if s[2] == 1 && num > s[1] {
				s[3] = num - s[1]
			}
			if num == s[1]+s[2]*s[3] && s[3] > 0 {
				s[2]++
				return
			}
		}
	}
	m.spans = append(m.spans, [4]int64{int64(seq), num, 1, 0})
}

func (m *recordNums) config(clientID string) *runlogv1.Record {
	b, _ := json.Marshal(struct {
		ClientID string     `json:"client_id"`
		Spans    [][4]int64 `json:"spans"`
	}{clientID, m.spans})
	return &runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
		Set: []*runlogv1.Item{{Key: RecordNumsKey, Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: b}}}},
	}}}
}

// summaryMerge merges summary updates: later values of a key replace
// earlier ones, keys keep the order they first came in.
type summaryMerge struct {
	entries []mergeEntry
	index   map[string]int
	last    int64 // the wandb record number of the last update merged
	key     []byte
}

// mergeEntry is one key's latest value: a runlog value, or else the
// value_json of an encoded record, converted when taken.
type mergeEntry struct {
	key  string
	val  *runlogv1.Value
	json []byte
}

func (m *summaryMerge) entry(key []byte) *mergeEntry {
	if m.index == nil {
		m.index = map[string]int{}
	}
	if i, ok := m.index[string(key)]; ok {
		return &m.entries[i]
	}
	k := string(key)
	m.index[k] = len(m.entries)
	m.entries = append(m.entries, mergeEntry{key: k})
	return &m.entries[len(m.entries)-1]
}

func (m *summaryMerge) add(set []*runlogv1.Item, num int64) {
	for _, it := range set {
		e := m.entry([]byte(it.GetKey()))
		e.val, e.json = it.GetValue(), e.json[:0]
	}
	m.last = num
}

// Field numbers addEncoded reads: wandb_internal.Record's num and summary,
// SummaryRecord's update, JSONItem's key, nested_key and value_json.
const (
	fRecordNum     = 1
	fRecordSummary = 3
	fSummaryUpdate = 1
	fItemKey       = 1
	fItemNestedKey = 2
	fItemValueJSON = 16
	fSummaryRemove = 2
)

// addEncoded merges the encoded wandb record b if it is a summary update
// without removals, returning its record number; otherwise it reports
// false and merges nothing. It allocates only for keys it has not seen.
func (m *summaryMerge) addEncoded(b []byte) (int64, bool) {
	var num int64
	var summary []byte
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		switch {
		case f == fRecordNum && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, false
			}
			num, b = int64(v), b[n:]
			continue
		case f == fRecordSummary && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, false
			}
			summary, b = v, b[n:]
			continue
		case f == fRecordSummary:
			return 0, false
		}
		n = protowire.ConsumeFieldValue(f, typ, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	if summary == nil || !validSummary(summary) {
		return 0, false
	}
	for len(summary) > 0 {
		f, typ, n := protowire.ConsumeTag(summary)
		summary = summary[n:]
		if f != fSummaryUpdate || typ != protowire.BytesType {
			summary = summary[protowire.ConsumeFieldValue(f, typ, summary):]
			continue
		}
		item, n := protowire.ConsumeBytes(summary)
		summary = summary[n:]
		var key, value []byte
		m.key = m.key[:0]
		for len(item) > 0 {
			f, typ, n := protowire.ConsumeTag(item)
			item = item[n:]
			if typ != protowire.BytesType {
				item = item[protowire.ConsumeFieldValue(f, typ, item):]
				continue
			}
			v, n := protowire.ConsumeBytes(item)
			item = item[n:]
			switch f {
			case fItemKey:
				key = v
			case fItemNestedKey:
				if len(m.key) > 0 {
					m.key = append(m.key, '/')
				}
				m.key = append(m.key, v...)
			case fItemValueJSON:
				value = v
			}
		}
		if len(key) == 0 {
			key = m.key
		}
		e := m.entry(key)
		e.val, e.json = nil, append(e.json[:0], value...)
	}
	m.last = num
	return num, true
}

// validSummary checks that an encoded SummaryRecord is well formed, has no
// removals and that its items' strings are UTF-8, so that addEncoded may
// walk it without further checks.
func validSummary(b []byte) bool {
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 || f == fSummaryRemove {
			return false
		}
		b = b[n:]
		if f != fSummaryUpdate {
			if n = protowire.ConsumeFieldValue(f, typ, b); n < 0 {
				return false
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType {
			return false
		}
		item, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		for len(item) > 0 {
			f, typ, n := protowire.ConsumeTag(item)
			if n < 0 {
				return false
			}
			item = item[n:]
			if (f == fItemKey || f == fItemNestedKey || f == fItemValueJSON) && typ != protowire.BytesType {
				return false
			}
			if typ == protowire.BytesType {
				v, n := protowire.ConsumeBytes(item)
				if n < 0 || !utf8.Valid(v) {
					return false
				}
				item = item[n:]
				continue
			}
			if n = protowire.ConsumeFieldValue(f, typ, item); n < 0 {
				return false
			}
			item = item[n:]
		}
	}
	return true
}

// take returns the merged update, nil if there is none, and the record
// number it maps to, and starts over.
func (m *summaryMerge) take() (*runlogv1.Record, int64) {
	if len(m.entries) == 0 {
		return nil, 0
	}
	set := make([]*runlogv1.Item, len(m.entries))
	for i, e := range m.entries {
		v := e.val
		if v == nil {
			v = jsonValue(string(e.json))
		}
		set[i] = &runlogv1.Item{Key: e.key, Value: v}
	}
	rec := &runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: set}}}
	m.entries = m.entries[:0]
	clear(m.index)
	return rec, m.last
}
