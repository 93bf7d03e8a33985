package replay

import (
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Limits that keep text lines short.
const (
	textItems   = 3  // items shown per record; the rest are counted
	textString  = 40 // runes of a string value shown
	textConsole = 60 // runes of console output shown
)

// TextTimeFormat is the time column of the text format: UTC, milliseconds.
const TextTimeFormat = "2006-01-02T15:04:05.000Z"

// AppendText appends r as one line of the human format, without the newline:
//
//	seq  time  client  kind  payload
//
// The payload is abridged (the first few items, short strings); the JSON
// format is the lossless one.
func AppendText(b []byte, r *runlogv1.Record) []byte {
	b = strconv.AppendUint(b, r.GetSeq(), 10)
	b = append(b, "  "...)
	b = time.Unix(0, r.GetTimeUnixNano()).UTC().AppendFormat(b, TextTimeFormat)
	b = append(b, "  "...)
	if c := r.GetClientId(); c != "" {
		b = appendPlain(b, c, textString)
	} else {
		b = append(b, '-')
	}
	b = append(b, "  "...)
	k := KindOf(r)
	b = append(b, k.String()...)
	if k != KindNone {
		// Pad to the longest kind so that payloads line up.
		for n := len(k.String()); n < len("history"); n++ {
			b = append(b, ' ')
		}
		b = append(b, "  "...)
	}
	switch p := r.GetPayload().(type) {
	case *runlogv1.Record_Run:
		in := p.Run
		n := len(b)
		b = field(b, "project", in.GetProject())
		b = field(b, "name", in.GetName())
		b = field(b, "group", in.GetGroup())
		b = field(b, "host", in.GetHost())
		b = field(b, "program", in.GetProgram())
		b = field(b, "job_type", in.GetJobType())
		if len(in.GetTags()) > 0 {
			b = sep(b, n)
			b = append(b, "tags="...)
			for i, t := range in.GetTags() {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendPlain(b, t, textString)
			}
		}
	case *runlogv1.Record_Config:
		b = appendUpdate(b, p.Config.GetSet(), p.Config.GetRemove())
	case *runlogv1.Record_Summary:
		b = appendUpdate(b, p.Summary.GetSet(), p.Summary.GetRemove())
	case *runlogv1.Record_History:
		b = append(b, "step="...)
		b = strconv.AppendInt(b, p.History.GetStep(), 10)
		b = appendTextItems(b, p.History.GetItems(), true)
	case *runlogv1.Record_Stats:
		b = appendTextItems(b, p.Stats.GetItems(), false)
	case *runlogv1.Record_Output:
		if name, ok := streamNames[p.Output.GetStream()]; ok {
			b = append(b, name...)
			b = append(b, ' ')
		}
		b = appendQuoted(b, p.Output.GetText(), textConsole)
	case *runlogv1.Record_File:
		f := p.File
		b = appendPlain(b, f.GetPath(), textString)
		b = append(b, " size="...)
		b = strconv.AppendInt(b, f.GetSize(), 10)
		if h := f.GetSha256(); len(h) > 0 {
			b = append(b, " sha256="...)
			b = hex.AppendEncode(b, h[:min(len(h), 6)])
		}
	case *runlogv1.Record_Metric:
		m := p.Metric
		b = appendPlain(b, m.GetName(), textString)
		if s := m.GetStepMetric(); s != "" {
			b = append(b, " step_metric="...)
			b = appendPlain(b, s, textString)
		}
		if n, ok := summaryNames[m.GetSummary()]; ok {
			b = append(b, " summary="...)
			b = append(b, n...)
		}
		if n, ok := goalNames[m.GetGoal()]; ok {
			b = append(b, " goal="...)
			b = append(b, n...)
		}
		if m.GetHidden() {
			b = append(b, " hidden"...)
		}
	case *runlogv1.Record_Alert:
		a := p.Alert
		if n, ok := levelNames[a.GetLevel()]; ok {
			b = append(b, n...)
			b = append(b, ' ')
		}
		b = appendQuoted(b, a.GetTitle(), textString)
		if t := a.GetText(); t != "" {
			b = append(b, ": "...)
			b = appendQuoted(b, t, textString)
		}
	case *runlogv1.Record_Rewind:
		b = append(b, "step="...)
		b = strconv.AppendInt(b, p.Rewind.GetStep(), 10)
	case *runlogv1.Record_Exit:
		e := p.Exit
		if n, ok := reasonNames[e.GetReason()]; ok {
			b = append(b, n...)
			b = append(b, ' ')
		}
		b = append(b, "code="...)
		b = strconv.AppendInt(b, int64(e.GetCode()), 10)
		if m := e.GetMessage(); m != "" {
			b = append(b, ' ')
			b = appendQuoted(b, m, textString)
		}
	}
	if r.GetSynthesized() {
		b = append(b, " (synthesized)"...)
	}
	return b
}

// sep adds a space unless the payload (which started at start) is empty.
func sep(b []byte, start int) []byte {
	if len(b) > start {
		b = append(b, ' ')
	}
	return b
}

func field(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	if len(b) > 0 && b[len(b)-1] != ' ' {
		b = append(b, ' ')
	}
	b = append(b, name...)
	b = append(b, '=')
	return appendPlain(b, v, textString)
}

func appendUpdate(b []byte, set []*runlogv1.Item, remove []string) []byte {
	n := len(b)
	if len(set) > 0 {
		b = append(b, "set"...)
		b = appendTextItems(b, set, true)
	}
	if len(remove) > 0 {
		b = sep(b, n)
		b = append(b, "remove"...)
		for i, k := range remove {
			if i == textItems {
				b = appendMore(b, len(remove)-i)
				break
			}
			b = append(b, ' ')
			b = appendPlain(b, k, textString)
		}
	}
	return b
}

// appendTextItems writes " k=v" for the first few items and counts the
// rest. lead says whether something precedes the first item.
func appendTextItems(b []byte, items []*runlogv1.Item, lead bool) []byte {
	for i, it := range items {
		if i == textItems {
			b = appendMore(b, len(items)-i)
			break
		}
		if i > 0 || lead {
			b = append(b, ' ')
		}
		b = appendPlain(b, it.GetKey(), textString)
		b = append(b, '=')
		b = appendTextValue(b, it.GetValue())
	}
	return b
}

// appendMore writes " (+n keys)" for the items a line leaves out.
func appendMore(b []byte, n int) []byte {
	b = append(b, " (+"...)
	b = strconv.AppendInt(b, int64(n), 10)
	if n == 1 {
		return append(b, " key)"...)
	}
	return append(b, " keys)"...)
}

func appendTextValue(b []byte, v *runlogv1.Value) []byte {
	switch k := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		return strconv.AppendFloat(b, k.DoubleValue, 'g', 6, 64)
	case *runlogv1.Value_IntValue:
		return strconv.AppendInt(b, k.IntValue, 10)
	case *runlogv1.Value_BoolValue:
		return strconv.AppendBool(b, k.BoolValue)
	case *runlogv1.Value_StringValue:
		return appendQuoted(b, k.StringValue, textString)
	case *runlogv1.Value_JsonValue:
		return appendPlain(b, string(k.JsonValue), textString)
	}
	return append(b, "null"...)
}

// appendQuoted writes s Go-quoted, cut to max runes with "...".
func appendQuoted(b []byte, s string, max int) []byte {
	cut, short := truncate(s, max)
	b = strconv.AppendQuote(b, cut)
	if short {
		b = append(b, "..."...)
	}
	return b
}

// appendPlain writes s as is when it is printable and has no spaces, quoted
// otherwise, so that a line always splits into its columns.
func appendPlain(b []byte, s string, max int) []byte {
	cut, short := truncate(s, max)
	for _, r := range cut {
		if r <= ' ' || r == '"' || r == 0x7f || r == utf8.RuneError {
			return appendQuoted(b, s, max)
		}
	}
	b = append(b, cut...)
	if short {
		b = append(b, "..."...)
	}
	return b
}

func truncate(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i], true
		}
		n++
	}
	return s, false
}
