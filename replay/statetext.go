package replay

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// WriteStateText writes s for a person, one "name value" line per fact:
// the run, its status and exit, info, record counts and times, kinds,
// history, output, then every config and summary value in full, typed as in
// the JSON format (AppendTypedValue).
func WriteStateText(out io.Writer, s *State) error {
	w := bufio.NewWriter(out)
	p := s.Proto()
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", name, fmt.Sprintf(format, args...))
	}
	line("run", "%s", p.RunId)
	st := StatusName(p.Status)
	if e := p.Exit; e != nil {
		st += fmt.Sprintf(" (exit code %d", e.Code)
		if e.Message != "" {
			st += ", " + strconv.Quote(e.Message)
		}
		st += ")"
	}
	line("status", "%s", st)
	if in := p.Info; in != nil {
		for _, f := range []struct{ k, v string }{
			{"project", in.Project}, {"name", in.Name}, {"group", in.Group}, {"entity", in.Entity},
			{"job_type", in.JobType}, {"host", in.Host}, {"program", in.Program},
			{"args", strings.Join(in.Args, " ")}, {"tags", strings.Join(in.Tags, ",")},
			{"git", strings.TrimSpace(in.GitRemote + " " + in.GitCommit)}, {"notes", in.Notes},
		} {
			if f.v != "" {
				line(f.k, "%s", f.v)
			}
		}
	}
	if p.Records == 0 {
		line("records", "0")
		return w.Flush()
	}
	line("records", "%d, seq 1..%d", p.Records, p.LastSeq)
	line("time", "%s .. %s", textTime(p.StartTimeUnixNano), textTime(p.LastTimeUnixNano))
	var kinds []string
	for _, k := range Kinds() {
		if n := s.Count(k); n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	line("kinds", "%s", strings.Join(kinds, ", "))
	if p.LastStep >= 0 || p.HistoryRows > 0 {
		line("history", "%d rows, last step %d", p.HistoryRows, p.LastStep)
	} else {
		line("history", "none")
	}
	if n := s.Count(KindOutput); n > 0 {
		line("output", "%d records, %d bytes", n, s.OutputBytes())
	}
	items := func(name string, items []*runlogv1.Item) {
		line(name, "%d keys", len(items))
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = it.Key
		}
		width := 0
		for _, k := range keys {
			width = max(width, len(k))
		}
		width = min(width, 30)
		for _, it := range items {
			// Values in full, typed as in the JSON format.
			fmt.Fprintf(w, "  %-*s  %s\n", width, it.Key, AppendTypedValue(nil, it.Value))
		}
	}
	items("config", p.Config)
	items("summary", p.Summary)
	if st, seq, t := s.LastStats(); seq != 0 {
		line("stats", "%d samples, last seq %d at %s", s.StatsSamples(), seq, textTime(t))
		for _, it := range st {
			fmt.Fprintf(w, "  %-30s  %s\n", it.Key, AppendTypedValue(nil, it.Value))
		}
	}
	return w.Flush()
}

func textTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(TextTimeFormat)
}

// AppendRowJSON appends a live history row as the JSON object of runlog
// replay --history --json: {"seq":..,"step":..,"items":[typed items]}.
func AppendRowJSON(b []byte, r Row) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, r.Step, 10)
	b = append(b, `,"items":`...)
	b = AppendItems(b, r.Items)
	return append(b, '}')
}
