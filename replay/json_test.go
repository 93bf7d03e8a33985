package replay

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

// parseJSON reads one line of the audit format back into a Record, written
// from docs/replay.md independently of the encoder, with a strict reader:
// unknown members are errors.
func parseJSON(line []byte) (*runlogv1.Record, error) {
	var m map[string]json.RawMessage
	if err := strictUnmarshal(line, &m); err != nil {
		return nil, err
	}
	r := &runlogv1.Record{}
	take := func(k string, v any) error {
		raw, ok := m[k]
		if !ok {
			return fmt.Errorf("no %q", k)
		}
		delete(m, k)
		return strictUnmarshal(raw, v)
	}
	var (
		idStr, timeStr, kind string
	)
	if err := take("seq", &r.Seq); err != nil {
		return nil, err
	}
	if _, ok := m["id"]; ok {
		if err := take("id", &idStr); err != nil {
			return nil, err
		}
		id, err := ulid.ParseStrict(idStr)
		if err != nil {
			return nil, err
		}
		r.Id = id[:]
	} else {
		var b64 string
		if err := take("id_base64", &b64); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 {
			r.Id = b
		}
	}
	if err := take("time", &timeStr); err != nil {
		return nil, err
	}
	ts, err := time.Parse(time.RFC3339Nano, timeStr)
	if err != nil {
		return nil, err
	}
	r.TimeUnixNano = ts.UnixNano()
	if err := take("client_id", &r.ClientId); err != nil {
		return nil, err
	}
	if err := take("client_seq", &r.ClientSeq); err != nil {
		return nil, err
	}
	if err := take("synthesized", &r.Synthesized); err != nil {
		return nil, err
	}
	if err := take("kind", &kind); err != nil {
		return nil, err
	}
	if kind != "none" {
		var p map[string]json.RawMessage
		if err := take(kind, &p); err != nil {
			return nil, err
		}
		if err := parsePayload(r, kind, p); err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	if len(m) > 0 {
		return nil, fmt.Errorf("unknown members %v", m)
	}
	return r, nil
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	d.UseNumber()
	return d.Decode(v)
}

func parsePayload(r *runlogv1.Record, kind string, p map[string]json.RawMessage) error {
	str := func(k string, dst *string) {
		if raw, ok := p[k]; ok {
			json.Unmarshal(raw, dst)
			delete(p, k)
		}
	}
	i64 := func(k string, dst *int64) {
		if raw, ok := p[k]; ok {
			*dst, _ = strconv.ParseInt(string(raw), 10, 64)
			delete(p, k)
		}
	}
	strs := func(k string, dst *[]string) {
		if raw, ok := p[k]; ok {
			json.Unmarshal(raw, dst)
			delete(p, k)
		}
	}
	items := func(k string, dst *[]*runlogv1.Item) error {
		raw, ok := p[k]
		if !ok {
			return nil
		}
		delete(p, k)
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		for _, im := range list {
			it, err := parseItem(im)
			if err != nil {
				return err
			}
			*dst = append(*dst, it)
		}
		return nil
	}
	enum := func(k string, names map[string]int32) int32 {
		raw, ok := p[k]
		if !ok {
			return 0
		}
		delete(p, k)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return names[s]
		}
		n, _ := strconv.ParseInt(string(raw), 10, 32)
		return int32(n)
	}
	var err error
	switch kind {
	case "run":
		in := &runlogv1.RunInfo{}
		str("project", &in.Project)
		str("name", &in.Name)
		str("group", &in.Group)
		strs("tags", &in.Tags)
		str("notes", &in.Notes)
		str("host", &in.Host)
		str("program", &in.Program)
		i64("start_time_unix_nano", &in.StartTimeUnixNano)
		str("job_type", &in.JobType)
		strs("args", &in.Args)
		str("git_remote", &in.GitRemote)
		str("git_commit", &in.GitCommit)
		str("entity", &in.Entity)
		r.Payload = &runlogv1.Record_Run{Run: in}
	case "config":
		c := &runlogv1.ConfigUpdate{}
		err = items("set", &c.Set)
		strs("remove", &c.Remove)
		r.Payload = &runlogv1.Record_Config{Config: c}
	case "summary":
		c := &runlogv1.SummaryUpdate{}
		err = items("set", &c.Set)
		strs("remove", &c.Remove)
		r.Payload = &runlogv1.Record_Summary{Summary: c}
	case "history":
		h := &runlogv1.HistoryRow{}
		if _, ok := p["step"]; !ok {
			return fmt.Errorf("no step")
		}
		i64("step", &h.Step)
		err = items("items", &h.Items)
		r.Payload = &runlogv1.Record_History{History: h}
	case "stats":
		s := &runlogv1.SystemStats{}
		err = items("items", &s.Items)
		r.Payload = &runlogv1.Record_Stats{Stats: s}
	case "output":
		o := &runlogv1.ConsoleOutput{}
		o.Stream = runlogv1.ConsoleOutput_Stream(enum("stream", map[string]int32{"stdout": 1, "stderr": 2}))
		str("text", &o.Text)
		r.Payload = &runlogv1.Record_Output{Output: o}
	case "file":
		f := &runlogv1.FileRef{}
		str("path", &f.Path)
		i64("size", &f.Size)
		var h string
		str("sha256", &h)
		if h != "" {
			f.Sha256, err = hex.DecodeString(h)
		}
		str("mime_type", &f.MimeType)
		r.Payload = &runlogv1.Record_File{File: f}
	case "metric":
		m := &runlogv1.MetricDefinition{}
		str("name", &m.Name)
		str("step_metric", &m.StepMetric)
		m.Summary = runlogv1.MetricDefinition_Summary(enum("summary", map[string]int32{"last": 1, "min": 2, "max": 3, "mean": 4, "none": 5}))
		m.Goal = runlogv1.MetricDefinition_Goal(enum("goal", map[string]int32{"minimize": 1, "maximize": 2}))
		if raw, ok := p["hidden"]; ok {
			json.Unmarshal(raw, &m.Hidden)
			delete(p, "hidden")
		}
		r.Payload = &runlogv1.Record_Metric{Metric: m}
	case "alert":
		a := &runlogv1.Alert{}
		str("title", &a.Title)
		str("text", &a.Text)
		a.Level = runlogv1.Alert_Level(enum("level", map[string]int32{"info": 1, "warn": 2, "error": 3}))
		r.Payload = &runlogv1.Record_Alert{Alert: a}
	case "rewind":
		w := &runlogv1.Rewind{}
		i64("step", &w.Step)
		r.Payload = &runlogv1.Record_Rewind{Rewind: w}
	case "exit":
		e := &runlogv1.Exit{}
		var code int64
		i64("code", &code)
		e.Code = int32(code)
		e.Reason = runlogv1.ExitReason(enum("reason", map[string]int32{"finished": 1, "failed": 2, "crashed": 3, "killed": 4, "preempted": 5}))
		str("message", &e.Message)
		r.Payload = &runlogv1.Record_Exit{Exit: e}
	default:
		return fmt.Errorf("unknown kind")
	}
	if err != nil {
		return err
	}
	if len(p) > 0 {
		return fmt.Errorf("unknown members %v", p)
	}
	return nil
}

func parseItem(m map[string]json.RawMessage) (*runlogv1.Item, error) {
	it := &runlogv1.Item{}
	if err := json.Unmarshal(m["key"], &it.Key); err != nil {
		return nil, fmt.Errorf("item key: %w", err)
	}
	delete(m, "key")
	if len(m) > 1 {
		return nil, fmt.Errorf("item %q has %d values", it.Key, len(m))
	}
	for t, raw := range m {
		v := &runlogv1.Value{}
		switch t {
		case "double":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				switch s {
				case "NaN":
					v.Kind = &runlogv1.Value_DoubleValue{DoubleValue: math.NaN()}
				case "Infinity":
					v.Kind = &runlogv1.Value_DoubleValue{DoubleValue: math.Inf(1)}
				case "-Infinity":
					v.Kind = &runlogv1.Value_DoubleValue{DoubleValue: math.Inf(-1)}
				default:
					return nil, fmt.Errorf("double %q", s)
				}
			} else {
				f, err := strconv.ParseFloat(string(raw), 64)
				if err != nil {
					return nil, err
				}
				v.Kind = &runlogv1.Value_DoubleValue{DoubleValue: f}
			}
		case "int":
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return nil, err
			}
			v.Kind = &runlogv1.Value_IntValue{IntValue: n}
		case "bool":
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return nil, err
			}
			v.Kind = &runlogv1.Value_BoolValue{BoolValue: b}
		case "string":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			v.Kind = &runlogv1.Value_StringValue{StringValue: s}
		case "json":
			v.Kind = &runlogv1.Value_JsonValue{JsonValue: []byte(raw)}
		case "json_base64":
			var s string
			json.Unmarshal(raw, &s)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, err
			}
			v.Kind = &runlogv1.Value_JsonValue{JsonValue: b}
		default:
			return nil, fmt.Errorf("unknown value type %q", t)
		}
		it.Value = v
	}
	return it, nil
}

// normalize makes a record comparable after a JSON round trip: the format
// does not tell a missing Value from an empty one.
func normalize(r *runlogv1.Record) *runlogv1.Record {
	r = proto.Clone(r).(*runlogv1.Record)
	var lists [][]*runlogv1.Item
	switch p := r.Payload.(type) {
	case *runlogv1.Record_Config:
		lists = append(lists, p.Config.Set)
	case *runlogv1.Record_Summary:
		lists = append(lists, p.Summary.Set)
	case *runlogv1.Record_History:
		lists = append(lists, p.History.Items)
	case *runlogv1.Record_Stats:
		lists = append(lists, p.Stats.Items)
	}
	for _, l := range lists {
		for _, it := range l {
			if it.Value == nil || it.Value.Kind == nil {
				it.Value = nil
			}
		}
	}
	return r
}

func jsonRecords() []*runlogv1.Record {
	id := ulid.MustParse("01JDQ3D7KX0000000000000000")
	v := func(k string, val *runlogv1.Value) *runlogv1.Item { return &runlogv1.Item{Key: k, Value: val} }
	return []*runlogv1.Record{
		{Seq: 1, Id: id[:], TimeUnixNano: 1_795_000_000_123_456_789, ClientId: "host-1-ab", ClientSeq: 1,
			Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Name: "n\"q\"", Tags: []string{"a", "b"}, StartTimeUnixNano: 5, Args: []string{"--lr", "0.1"}, Entity: "e"}}},
		{Seq: 2, Id: id[:], TimeUnixNano: 1, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
			Set: []*runlogv1.Item{
				v("d", dbl(0.1)), v("neg0", dbl(math.Copysign(0, -1))), v("big", dbl(1e300)), v("tiny", dbl(5e-324)),
				v("nan", dbl(math.NaN())), v("inf", dbl(math.Inf(1))), v("-inf", dbl(math.Inf(-1))),
				v("i", i64(math.MaxInt64)), v("imin", i64(math.MinInt64)),
				v("t", &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}),
				v("s", str("tab\tnl\nquote\"bs\\ctl\x01 ünï 😀 \u2028")),
				v("j", &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(`{"a": [1, 2.5, "x"]}`)}}),
				v("jml", &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("{\n\"a\": 1\n}")}}),
				v("jbad", &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte{0xff, 0x00, '{'}}}),
				v("none", nil),
			},
			Remove: []string{"old", "k/ey"},
		}}},
		{Seq: 3, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 0}}},
		{Seq: 4, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: -7, Items: []*runlogv1.Item{v("loss", dbl(0.25))}}}},
		{Seq: 5, Synthesized: true, Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Remove: []string{"x"}}}},
		{Seq: 6, Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: "Traceback\n  line 1\n"}}},
		{Seq: 7, Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: 9, Text: ""}}},
		{Seq: 8, Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "model.pt", Size: 1 << 40, Sha256: bytes.Repeat([]byte{0xab}, 32), MimeType: "application/octet-stream"}}},
		{Seq: 9, Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{v("cpu", dbl(12.5)), v("gpu.0.mem", i64(1<<33))}}}},
		{Seq: 10, Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "acc", StepMetric: "epoch", Summary: runlogv1.MetricDefinition_SUMMARY_MAX, Goal: runlogv1.MetricDefinition_GOAL_MAXIMIZE, Hidden: true}}},
		{Seq: 11, Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "t", Text: "x", Level: runlogv1.Alert_LEVEL_ERROR}}},
		{Seq: 12, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 0}}},
		{Seq: 13, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: -9, Reason: runlogv1.ExitReason_EXIT_REASON_KILLED, Message: "SIGKILL"}}},
		{Seq: 14, Id: []byte{1, 2, 3}},
		{Seq: 15, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{}}},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, r := range jsonRecords() {
		line := AppendJSON(nil, r)
		if !json.Valid(line) || bytes.ContainsAny(line, "\n\r") {
			t.Fatalf("seq %d: not one line of JSON: %s", r.Seq, line)
		}
		got, err := parseJSON(line)
		if err != nil {
			t.Fatalf("seq %d: parse %s: %v", r.Seq, line, err)
		}
		if want := normalize(r); !proto.Equal(normalize(got), want) {
			t.Fatalf("seq %d: round trip\n line %s\n  got %v\n want %v", r.Seq, line, got, want)
		}
	}
}

func TestJSONGolden(t *testing.T) {
	// A few exact lines pin the format itself; docs/replay.md shows them.
	recs := jsonRecords()
	want := []string{
		`{"seq":1,"id":"01JDQ3D7KX0000000000000000","time":"2026-11-18T11:06:40.123456789Z","client_id":"host-1-ab","client_seq":1,"synthesized":false,"kind":"run","run":{"project":"p","name":"n\"q\"","tags":["a","b"],"start_time_unix_nano":5,"args":["--lr","0.1"],"entity":"e"}}`,
		`{"seq":4,"id_base64":"","time":"1970-01-01T00:00:00Z","client_id":"","client_seq":0,"synthesized":false,"kind":"history","history":{"step":-7,"items":[{"key":"loss","double":0.25}]}}`,
		`{"seq":13,"id_base64":"","time":"1970-01-01T00:00:00Z","client_id":"","client_seq":0,"synthesized":false,"kind":"exit","exit":{"code":-9,"reason":"killed","message":"SIGKILL"}}`,
	}
	for i, idx := range []int{0, 3, 12} {
		if got := string(AppendJSON(nil, recs[idx])); got != want[i] {
			t.Errorf("seq %d:\n got %s\nwant %s", recs[idx].Seq, got, want[i])
		}
	}
	line := string(AppendJSON(nil, recs[1]))
	for _, part := range []string{
		`{"key":"nan","double":"NaN"}`, `{"key":"inf","double":"Infinity"}`, `{"key":"-inf","double":"-Infinity"}`,
		`{"key":"i","int":9223372036854775807}`, `{"key":"neg0","double":-0}`,
		`{"key":"j","json":{"a": [1, 2.5, "x"]}}`, `{"key":"jml","json_base64":"ewoiYSI6IDEKfQ=="}`,
		`"string":"tab\tnl\nquote\"bs\\ctl\u0001 ünï 😀 ` + "\u2028" + `"`, `{"key":"none"}`,
	} {
		if !strings.Contains(line, part) {
			t.Errorf("config line lacks %s:\n%s", part, line)
		}
	}
}

func FuzzJSON(f *testing.F) {
	for _, r := range jsonRecords() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r runlogv1.Record
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		line := AppendJSON(nil, &r)
		if !json.Valid(line) || bytes.ContainsAny(line, "\n\r") {
			t.Fatalf("not one line of JSON: %s", line)
		}
		got, err := parseJSON(line)
		if err != nil {
			t.Fatalf("parse %s: %v", line, err)
		}
		// Unknown fields are not part of the format.
		want := normalize(&r)
		dropUnknown(want)
		if !proto.Equal(normalize(got), want) {
			t.Fatalf("round trip\n line %s\n  got %v\n want %v", line, got, want)
		}
	})
}

func dropUnknown(r *runlogv1.Record) {
	b, _ := proto.Marshal(r)
	var clean runlogv1.Record
	proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, &clean)
	proto.Reset(r)
	proto.Merge(r, &clean)
}

// FuzzJSONEncoded checks that the export straight from encoded records
// writes exactly what decoding and AppendJSON write, and fails exactly when
// decoding fails.
func FuzzJSONEncoded(f *testing.F) {
	for _, r := range jsonRecords() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := AppendJSONEncoded(nil, data)
		var r runlogv1.Record
		if derr := proto.Unmarshal(data, &r); derr != nil {
			if err == nil {
				t.Fatalf("decode fails (%v), encoded export wrote %s", derr, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode works, encoded export failed: %v", err)
		}
		if want := AppendJSON(nil, &r); !bytes.Equal(got, want) {
			t.Fatalf("encoded export\n got %s\nwant %s", got, want)
		}
	})
}

func TestJSONEncodedTakesFastPath(t *testing.T) {
	// The records a long run is made of must not need the decoder.
	for _, r := range jsonRecords() {
		data, _ := proto.Marshal(r)
		h, err := wire.ParseHeader(data)
		if err != nil {
			t.Fatalf("seq %d: %v", r.Seq, err)
		}
		k := KindOf(r)
		fast := k == KindHistory || k == KindStats || k == KindConfig || k == KindSummary || k == KindNone
		if _, ok := appendJSONWire(nil, &h); ok != fast {
			t.Errorf("seq %d (%v): fast path %v, want %v", r.Seq, k, ok, fast)
		}
	}
}
