package wal

import (
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// FuzzScanHeader checks that the header-only decoder used by Verify never
// panics and agrees with a full decode on every input the full decoder
// accepts.
func FuzzScanHeader(f *testing.F) {
	seed, _ := proto.Marshal(&runlogv1.Record{
		Seq: 7, Id: make([]byte, 16), TimeUnixNano: 1234, ClientId: "c", ClientSeq: 3,
		Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 1}},
	})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := scanHeader(b)
		var r runlogv1.Record
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		if err != nil {
			t.Fatalf("scanHeader failed on a valid record: %v", err)
		}
		if h.seq != r.Seq || h.time != r.TimeUnixNano || string(h.id) != string(r.Id) {
			t.Fatalf("header %+v disagrees with record %v", h, &r)
		}
		if h.exit != (r.GetExit() != nil) {
			t.Fatalf("exit flag %v, record exit %v", h.exit, r.GetExit() != nil)
		}
	})
}
