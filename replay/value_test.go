package replay_test

import (
	"encoding/json"
	"math"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
)

func TestValueRendering(t *testing.T) {
	dbl := func(f float64) *runlogv1.Value {
		return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: f}}
	}
	for _, c := range []struct {
		v     *runlogv1.Value
		typed string
		json  string
	}{
		{dbl(0.001), `0.001 (double)`, `0.001`},
		{dbl(math.NaN()), `"NaN" (double)`, `"NaN"`},
		{dbl(math.Inf(-1)), `"-Infinity" (double)`, `"-Inf"`},
		{&runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: -7}}, `-7 (int)`, `-7`},
		{&runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}, `true (bool)`, `true`},
		{&runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "adam"}}, `"adam" (string)`, `"adam"`},
		{&runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(`[784,256]`)}}, `[784,256] (json)`, `[784,256]`},
		{&runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(`{`)}}, `"ew==" (json_base64)`, `"{"`},
		{nil, `(no value)`, `null`},
	} {
		if got := string(replay.AppendTypedValue(nil, c.v)); got != c.typed {
			t.Errorf("AppendTypedValue(%v) = %s, want %s", c.v, got, c.typed)
		}
		b, err := json.Marshal(replay.Value(c.v))
		if err != nil || string(b) != c.json {
			t.Errorf("Value(%v) encodes as %s (%v), want %s", c.v, b, err, c.json)
		}
	}
	for r, want := range map[runlogv1.ExitReason]string{
		runlogv1.ExitReason_EXIT_REASON_UNSPECIFIED: "unspecified",
		runlogv1.ExitReason_EXIT_REASON_PREEMPTED:   "preempted",
		runlogv1.ExitReason(99):                     "99",
	} {
		if got := replay.ExitReasonName(r); got != want {
			t.Errorf("ExitReasonName(%d) = %q, want %q", r, got, want)
		}
	}
}
