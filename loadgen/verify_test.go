package loadgen

import (
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal/waltest"
)

func TestHistoryStep(t *testing.T) {
	for _, step := range []int64{0, 1, 300, 1 << 40} {
		rec := waltest.History(step, 1, 10)[0]
		b, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := historyStep(b)
		if err != nil || !ok || got != step {
			t.Errorf("step %d: got %d %v %v", step, got, ok, err)
		}
	}
	b, _ := proto.Marshal(&runlogv1.Record{Seq: 3, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 5}}})
	if _, ok, err := historyStep(b); ok || err != nil {
		t.Errorf("a rewind read as history: %v %v", ok, err)
	}
	if _, _, err := historyStep([]byte{0xff}); err == nil {
		t.Error("garbage decoded")
	}
}
