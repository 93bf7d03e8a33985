package replay

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// The JSON lines format is the public audit format of a run; docs/replay.md
// is its reference and must change with this file. It is written by hand,
// field by field, because export speed matters and every choice below is part
// of the format:
//
//   - one object per line, the record header first, then "kind" and the
//     payload under a key named after the kind;
//   - payload fields use the snake_case names of record.proto and are left
//     out when they hold the proto default, except the always-present ones
//     (history and rewind step, exit code);
//   - values are {"key": k, T: v} with T one of double, int, bool, string,
//     json or json_base64, so a reader never guesses a type.

// Names of enum values in the JSON and text formats: the proto name without
// its prefix, in lower case.
var (
	streamNames = map[runlogv1.ConsoleOutput_Stream]string{
		runlogv1.ConsoleOutput_STREAM_STDOUT: "stdout",
		runlogv1.ConsoleOutput_STREAM_STDERR: "stderr",
	}
	summaryNames = map[runlogv1.MetricDefinition_Summary]string{
		runlogv1.MetricDefinition_SUMMARY_LAST: "last",
		runlogv1.MetricDefinition_SUMMARY_MIN:  "min",
		runlogv1.MetricDefinition_SUMMARY_MAX:  "max",
		runlogv1.MetricDefinition_SUMMARY_MEAN: "mean",
		runlogv1.MetricDefinition_SUMMARY_NONE: "none",
	}
	goalNames = map[runlogv1.MetricDefinition_Goal]string{
		runlogv1.MetricDefinition_GOAL_MINIMIZE: "minimize",
		runlogv1.MetricDefinition_GOAL_MAXIMIZE: "maximize",
	}
	levelNames = map[runlogv1.Alert_Level]string{
		runlogv1.Alert_LEVEL_INFO:  "info",
		runlogv1.Alert_LEVEL_WARN:  "warn",
		runlogv1.Alert_LEVEL_ERROR: "error",
	}
	reasonNames = map[runlogv1.ExitReason]string{
		runlogv1.ExitReason_EXIT_REASON_FINISHED:  "finished",
		runlogv1.ExitReason_EXIT_REASON_FAILED:    "failed",
		runlogv1.ExitReason_EXIT_REASON_CRASHED:   "crashed",
		runlogv1.ExitReason_EXIT_REASON_KILLED:    "killed",
		runlogv1.ExitReason_EXIT_REASON_PREEMPTED: "preempted",
	}
	statusNames = map[runlogv1.RunStatus]string{
		runlogv1.RunStatus_RUN_STATUS_UNSPECIFIED: "unspecified",
		runlogv1.RunStatus_RUN_STATUS_RUNNING:     "running",
		runlogv1.RunStatus_RUN_STATUS_FINISHED:    "finished",
		runlogv1.RunStatus_RUN_STATUS_FAILED:      "failed",
		runlogv1.RunStatus_RUN_STATUS_CRASHED:     "crashed",
		runlogv1.RunStatus_RUN_STATUS_KILLED:      "killed",
		runlogv1.RunStatus_RUN_STATUS_PREEMPTED:   "preempted",
	}
)

// StatusName returns the lower-case name of a run status ("finished").
func StatusName(s runlogv1.RunStatus) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// appendEnum writes a known enum value as its name and an unknown one as its
// number, so that values from a newer build survive.
func appendEnum[E ~int32](b []byte, names map[E]string, v E) []byte {
	if n, ok := names[v]; ok {
		return appendString(b, n)
	}
	return strconv.AppendInt(b, int64(v), 10)
}

// AppendJSON appends r as one line of the JSON lines audit format, without
// the newline.
func AppendJSON(b []byte, r *runlogv1.Record) []byte {
	k := KindOf(r)
	b = appendHeader(b, r.GetSeq(), r.GetId(), r.GetTimeUnixNano(), []byte(r.GetClientId()), r.GetClientSeq(), r.GetSynthesized(), k)
	if k != KindNone {
		b = appendPayload(b, r)
	}
	return append(b, '}')
}

// appendID writes the id member: a ULID string for a 16-byte id, base64 in
// id_base64 for anything else.
func appendID(b []byte, id []byte) []byte {
	if len(id) == 16 {
		b = append(b, `,"id":"`...)
		var s [26]byte
		ulid.ULID(id).MarshalTextTo(s[:])
		b = append(b, s[:]...)
		return append(b, '"')
	}
	b = append(b, `,"id_base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, id)
	return append(b, '"')
}

func appendPayload(b []byte, r *runlogv1.Record) []byte {
	var o obj
	switch p := r.GetPayload().(type) {
	case *runlogv1.Record_Run:
		b = appendInfo(b, p.Run)
		return b
	case *runlogv1.Record_Config:
		b = o.begin(b)
		b = o.items(b, "set", p.Config.GetSet())
		b = o.strings(b, "remove", p.Config.GetRemove())
	case *runlogv1.Record_History:
		b = o.begin(b)
		b = o.int(b, "step", p.History.GetStep())
		b = o.items(b, "items", p.History.GetItems())
	case *runlogv1.Record_Summary:
		b = o.begin(b)
		b = o.items(b, "set", p.Summary.GetSet())
		b = o.strings(b, "remove", p.Summary.GetRemove())
	case *runlogv1.Record_Output:
		b = o.begin(b)
		if s := p.Output.GetStream(); s != 0 {
			b = appendEnum(o.key(b, "stream"), streamNames, s)
		}
		b = o.str(b, "text", p.Output.GetText())
	case *runlogv1.Record_File:
		f := p.File
		b = o.begin(b)
		b = o.str(b, "path", f.GetPath())
		if f.GetSize() != 0 {
			b = o.int(b, "size", f.GetSize())
		}
		if len(f.GetSha256()) > 0 {
			b = o.key(b, "sha256")
			b = append(b, '"')
			b = hex.AppendEncode(b, f.GetSha256())
			b = append(b, '"')
		}
		b = o.str(b, "mime_type", f.GetMimeType())
	case *runlogv1.Record_Stats:
		b = o.begin(b)
		b = o.items(b, "items", p.Stats.GetItems())
	case *runlogv1.Record_Metric:
		m := p.Metric
		b = o.begin(b)
		b = o.str(b, "name", m.GetName())
		b = o.str(b, "step_metric", m.GetStepMetric())
		if m.GetSummary() != 0 {
			b = appendEnum(o.key(b, "summary"), summaryNames, m.GetSummary())
		}
		if m.GetGoal() != 0 {
			b = appendEnum(o.key(b, "goal"), goalNames, m.GetGoal())
		}
		if m.GetHidden() {
			b = append(o.key(b, "hidden"), "true"...)
		}
	case *runlogv1.Record_Alert:
		a := p.Alert
		b = o.begin(b)
		b = o.str(b, "title", a.GetTitle())
		b = o.str(b, "text", a.GetText())
		if a.GetLevel() != 0 {
			b = appendEnum(o.key(b, "level"), levelNames, a.GetLevel())
		}
	case *runlogv1.Record_Rewind:
		b = o.begin(b)
		b = o.int(b, "step", p.Rewind.GetStep())
	case *runlogv1.Record_Exit:
		b = appendExit(b, p.Exit)
		return b
	default:
		b = o.begin(b)
	}
	return append(b, '}')
}

func appendInfo(b []byte, in *runlogv1.RunInfo) []byte {
	var o obj
	b = o.begin(b)
	b = o.str(b, "project", in.GetProject())
	b = o.str(b, "name", in.GetName())
	b = o.str(b, "group", in.GetGroup())
	b = o.strings(b, "tags", in.GetTags())
	b = o.str(b, "notes", in.GetNotes())
	b = o.str(b, "host", in.GetHost())
	b = o.str(b, "program", in.GetProgram())
	if t := in.GetStartTimeUnixNano(); t != 0 {
		b = o.int(b, "start_time_unix_nano", t)
	}
	b = o.str(b, "job_type", in.GetJobType())
	b = o.strings(b, "args", in.GetArgs())
	b = o.str(b, "git_remote", in.GetGitRemote())
	b = o.str(b, "git_commit", in.GetGitCommit())
	b = o.str(b, "entity", in.GetEntity())
	return append(b, '}')
}

func appendExit(b []byte, e *runlogv1.Exit) []byte {
	var o obj
	b = o.begin(b)
	b = o.int(b, "code", int64(e.GetCode()))
	if e.GetReason() != 0 {
		b = appendEnum(o.key(b, "reason"), reasonNames, e.GetReason())
	}
	b = o.str(b, "message", e.GetMessage())
	return append(b, '}')
}

// obj writes the members of one JSON object, minding the commas.
type obj struct{ n int }

func (o *obj) begin(b []byte) []byte { o.n = 0; return append(b, '{') }

func (o *obj) key(b []byte, k string) []byte {
	if o.n > 0 {
		b = append(b, ',')
	}
	o.n++
	b = append(b, '"')
	b = append(b, k...)
	return append(b, `":`...)
}

// str writes a string member unless it is empty.
func (o *obj) str(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(o.key(b, k), v)
}

func (o *obj) int(b []byte, k string, v int64) []byte {
	return strconv.AppendInt(o.key(b, k), v, 10)
}

func (o *obj) strings(b []byte, k string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(o.key(b, k), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

func (o *obj) items(b []byte, k string, items []*runlogv1.Item) []byte {
	if len(items) == 0 {
		return b
	}
	return AppendItems(o.key(b, k), items)
}

// AppendItems appends items as a JSON array of typed values.
func AppendItems(b []byte, items []*runlogv1.Item) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendItem(b, it)
	}
	return append(b, ']')
}

// AppendItem appends {"key": k, T: v}: T is double, int, bool, string, json
// (valid single-line JSON, embedded as is) or json_base64 (any other bytes
// of a json value). A value without a type has no T member. Doubles that
// JSON numbers cannot hold are the strings "NaN", "Infinity" and
// "-Infinity".
func AppendItem(b []byte, it *runlogv1.Item) []byte {
	b = append(b, `{"key":`...)
	b = appendString(b, it.GetKey())
	b = appendValueMember(b, it.GetValue())
	return append(b, '}')
}

// appendValueMember appends ,"T":v for a value, nothing for none.
func appendValueMember(b []byte, value *runlogv1.Value) []byte {
	switch v := value.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		b = append(b, `,"double":`...)
		b = appendDouble(b, v.DoubleValue)
	case *runlogv1.Value_IntValue:
		b = append(b, `,"int":`...)
		b = strconv.AppendInt(b, v.IntValue, 10)
	case *runlogv1.Value_BoolValue:
		b = append(b, `,"bool":`...)
		b = strconv.AppendBool(b, v.BoolValue)
	case *runlogv1.Value_StringValue:
		b = append(b, `,"string":`...)
		b = appendString(b, v.StringValue)
	case *runlogv1.Value_JsonValue:
		b = appendJSONValue(b, v.JsonValue)
	}
	return b
}

func appendJSONValue(b []byte, raw []byte) []byte {
	if embeddable(raw) {
		b = append(b, `,"json":`...)
		return append(b, raw...)
	}
	b = append(b, `,"json_base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

// embeddable reports whether raw JSON can go into a JSON line byte for byte:
// it must be valid and hold no line break (which in valid JSON can only be
// whitespace between tokens).
func embeddable(raw []byte) bool {
	for _, c := range raw {
		if c == '\n' || c == '\r' {
			return false
		}
	}
	return json.Valid(raw)
}

func appendDouble(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Infinity"`...)
	}
	// The shortest representation that parses back to the same bits.
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendTime writes a Unix nanosecond time as an RFC 3339 UTC string with as
// many fractional digits as it needs.
func appendTime(b []byte, ns int64) []byte {
	b = append(b, '"')
	b = time.Unix(0, ns).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 (which a decoded
// proto3 string cannot hold) becomes U+FFFD so the line stays valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
