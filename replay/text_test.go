package replay

import (
	"strings"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

func TestTextLines(t *testing.T) {
	recs := jsonRecords()
	want := map[uint64]string{
		1:  `1  2026-11-18T11:06:40.123Z  host-1-ab  run      project=p name="n\"q\"" tags=a,b`,
		2:  `2  1970-01-01T00:00:00.000Z  -  config   set d=0.1 neg0=-0 big=1e+300 (+12 keys) remove old k/ey`,
		3:  `3  1970-01-01T00:00:00.000Z  -  history  step=0`,
		5:  `5  1970-01-01T00:00:00.000Z  -  summary  remove x (synthesized)`,
		6:  `6  1970-01-01T00:00:00.000Z  -  output   stderr "Traceback\n  line 1\n"`,
		8:  `8  1970-01-01T00:00:00.000Z  -  file     model.pt size=1099511627776 sha256=abababababab`,
		9:  `9  1970-01-01T00:00:00.000Z  -  stats    cpu=12.5 gpu.0.mem=8589934592`,
		10: `10  1970-01-01T00:00:00.000Z  -  metric   acc step_metric=epoch summary=max goal=maximize hidden`,
		11: `11  1970-01-01T00:00:00.000Z  -  alert    error "t": "x"`,
		13: `13  1970-01-01T00:00:00.000Z  -  exit     killed code=-9 "SIGKILL"`,
		14: `14  1970-01-01T00:00:00.000Z  -  none`,
	}
	for _, r := range recs {
		got := string(AppendText(nil, r))
		if strings.ContainsAny(got, "\n\r") {
			t.Fatalf("seq %d: line break in %q", r.Seq, got)
		}
		if w, ok := want[r.Seq]; ok && got != w {
			t.Errorf("seq %d:\n got %s\nwant %s", r.Seq, got, w)
		}
	}
	// Long values are cut; a client id with a space stays one column.
	long := &runlogv1.Record{Seq: 1, ClientId: "a b", Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{
		Text: strings.Repeat("é", 100),
	}}}
	got := string(AppendText(nil, long))
	if want := `1  1970-01-01T00:00:00.000Z  "a b"  output   "` + strings.Repeat("é", 60) + `"...`; got != want {
		t.Errorf("long output:\n got %s\nwant %s", got, want)
	}
	one := &runlogv1.Record{Seq: 2, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 1, Items: []*runlogv1.Item{
		item("a", dbl(1)), item("b", dbl(2)), item("c", dbl(3)), item("d", dbl(4)),
	}}}}
	if got := string(AppendText(nil, one)); !strings.HasSuffix(got, "step=1 a=1 b=2 c=3 (+1 key)") {
		t.Errorf("four items: %s", got)
	}
}
