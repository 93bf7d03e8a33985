package replay

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// AppendStateJSON appends s as one JSON object (see docs/replay.md): the
// RunState fields in snake_case plus the counts the fold keeps. Empty
// members (no info, no exit, no times) are left out; config and summary are
// always arrays of typed items.
func AppendStateJSON(b []byte, s *State) []byte {
	var o obj
	b = o.begin(b)
	b = appendString(o.key(b, "run_id"), s.runID)
	b = appendString(o.key(b, "status"), StatusName(s.Status()))
	b = strconv.AppendUint(o.key(b, "last_seq"), s.lastSeq, 10)
	b = strconv.AppendUint(o.key(b, "records"), s.records, 10)
	if s.firstTime != 0 {
		b = appendTime(o.key(b, "start_time"), s.firstTime)
		b = appendTime(o.key(b, "last_time"), s.lastTime)
	}
	if s.info != nil {
		b = appendInfo(o.key(b, "info"), s.info)
	}
	b = AppendItems(o.key(b, "config"), s.Config())
	b = AppendItems(o.key(b, "summary"), s.Summary())
	b = strconv.AppendUint(o.key(b, "history_rows"), s.HistoryRows(), 10)
	b = strconv.AppendBool(o.key(b, "history_rows_exact"), s.HistoryRowsExact())
	b = strconv.AppendInt(o.key(b, "last_step"), s.lastStep, 10)
	b = strconv.AppendUint(o.key(b, "output_bytes"), s.outBytes, 10)
	var c obj
	b = c.begin(o.key(b, "counts"))
	for _, k := range Kinds() {
		if n := s.counts[k]; n > 0 {
			b = strconv.AppendUint(c.key(b, k.String()), n, 10)
		}
	}
	b = append(b, '}')
	if s.exit != nil {
		b = appendExit(o.key(b, "exit"), s.exit)
	}
	if items, seq, t := s.LastStats(); seq != 0 {
		var st obj
		b = st.begin(o.key(b, "stats"))
		b = strconv.AppendUint(st.key(b, "samples"), s.StatsSamples(), 10)
		b = strconv.AppendUint(st.key(b, "last_seq"), seq, 10)
		b = appendTime(st.key(b, "last_time"), t)
		b = AppendItems(st.key(b, "last"), items)
		b = append(b, '}')
	}
	return append(b, '}')
}

// WriteHistoryCSV writes the live history as CSV: a header line with "step"
// and the keys, then one line per row. Without opts.Keys the columns are
// every key the history has, sorted, found by an extra read. Values are
// written as Go formats them (doubles shortest round-trip, NaN as "nan" and
// infinities as "inf" and "-inf" so pandas reads them as floats, json as its
// text); a key missing from a row is an empty field.
func WriteHistoryCSV(w io.Writer, src Source, opts HistoryOptions) error {
	keys := opts.Keys
	if len(keys) == 0 {
		seen := make(map[string]bool)
		err := History(src, opts, func(r Row) error {
			for _, it := range r.Items {
				seen[it.GetKey()] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		opts.Keys = keys
	}
	col := make(map[string]int, len(keys))
	for i, k := range keys {
		if _, dup := col[k]; !dup {
			col[k] = i + 1
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	rec := make([]string, len(keys)+1)
	rec[0] = "step"
	copy(rec[1:], keys)
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	err := History(src, opts, func(r Row) error {
		clear(rec)
		rec[0] = strconv.FormatInt(r.Step, 10)
		for _, it := range r.Items {
			if i, ok := col[it.GetKey()]; ok {
				rec[i] = csvValue(it.GetValue())
			}
		}
		return cw.Write(rec)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func csvValue(v *runlogv1.Value) string {
	switch k := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		switch {
		case math.IsNaN(k.DoubleValue):
			return "nan"
		case math.IsInf(k.DoubleValue, 1):
			return "inf"
		case math.IsInf(k.DoubleValue, -1):
			return "-inf"
		}
		return strconv.FormatFloat(k.DoubleValue, 'g', -1, 64)
	case *runlogv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10)
	case *runlogv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *runlogv1.Value_StringValue:
		return k.StringValue
	case *runlogv1.Value_JsonValue:
		return string(k.JsonValue)
	}
	return ""
}
