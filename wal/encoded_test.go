package wal_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// body encodes r without the header fields, as a service forwards a
// client's record.
func body(t testing.TB, r *runlogv1.Record) []byte {
	t.Helper()
	c := proto.Clone(r).(*runlogv1.Record)
	c.Seq, c.Id, c.TimeUnixNano, c.ClientId, c.ClientSeq = 0, nil, 0, "", 0
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendEncodedMatchesAppend(t *testing.T) {
	l := waltest.Open(t)
	src := waltest.History(0, 20, 4)
	src = append(src,
		&runlogv1.Record{ClientId: "test", ClientSeq: 21, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 7}}},
		&runlogv1.Record{ClientId: "other", ClientSeq: 3, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"lr"}}}},
	)
	encs := make([]wal.Encoded, len(src))
	for i, r := range src {
		encs[i] = wal.Encoded{ClientID: r.ClientId, ClientSeq: r.ClientSeq, Body: body(t, r)}
	}
	first, err := l.AppendEncoded(encs[:10])
	if err != nil || first != 1 {
		t.Fatalf("AppendEncoded = %d, %v; want 1, nil", first, err)
	}
	first, err = l.AppendEncoded(encs[10:])
	if err != nil || first != 11 {
		t.Fatalf("AppendEncoded = %d, %v; want 11, nil", first, err)
	}
	got, err := l.Read(1, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(src) {
		t.Fatalf("read %d records, want %d", len(got), len(src))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || len(r.Id) != 16 || r.TimeUnixNano == 0 {
			t.Fatalf("record %d: header seq=%d id=%x time=%d", i, r.Seq, r.Id, r.TimeUnixNano)
		}
		want := proto.Clone(src[i]).(*runlogv1.Record)
		want.Seq, want.Id, want.TimeUnixNano = r.Seq, r.Id, r.TimeUnixNano
		if !proto.Equal(r, want) {
			t.Fatalf("record %d:\n got %v\nwant %v", i, r, want)
		}
	}
	if s := l.LastStep(); s != 7 {
		t.Fatalf("LastStep = %d, want 7 (the rewind)", s)
	}
	if cs := l.ClientSeq("test"); cs != 21 {
		t.Fatalf("ClientSeq(test) = %d, want 21", cs)
	}
	if cs := l.ClientSeq("other"); cs != 3 {
		t.Fatalf("ClientSeq(other) = %d, want 3", cs)
	}

	exit := body(t, &runlogv1.Record{Synthesized: true, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED}}})
	if _, err := l.AppendEncoded([]wal.Encoded{{Body: exit}}); err != nil {
		t.Fatal(err)
	}
	if !l.Finished() {
		t.Fatal("log not finished after an encoded exit record")
	}
	if _, err := l.AppendEncoded(encs[:1]); !errors.Is(err, wal.ErrFinished) {
		t.Fatalf("append after exit: %v, want ErrFinished", err)
	}
	last, err := l.Read(l.LastSeq(), 1, 0)
	if err != nil || len(last) != 1 || !last[0].Synthesized || last[0].GetExit() == nil {
		t.Fatalf("last record = %v, %v; want a synthesized exit", last, err)
	}
}

func TestAppendEncodedRefusesBadBodies(t *testing.T) {
	history := body(t, waltest.History(0, 1, 1)[0])
	withSeq, _ := proto.Marshal(&runlogv1.Record{Seq: 99, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{}}})
	cases := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"header field", withSeq},
		{"two payloads", append(append([]byte(nil), history...), history...)},
		{"truncated", history[:len(history)-1]},
		{"payload not bytes", []byte{12<<3 | 0, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := waltest.Open(t)
			ok := wal.Encoded{ClientID: "c", ClientSeq: 1, Body: history}
			_, err := l.AppendEncoded([]wal.Encoded{ok, {ClientID: "c", ClientSeq: 2, Body: c.body}})
			if !errors.Is(err, wal.ErrBadBatch) {
				t.Fatalf("err = %v, want ErrBadBatch", err)
			}
			if n := l.LastSeq(); n != 0 {
				t.Fatalf("LastSeq = %d after a refused batch, want 0", n)
			}
			if cs := l.ClientSeq("c"); cs != 0 {
				t.Fatalf("ClientSeq = %d after a refused batch, want 0", cs)
			}
		})
	}
}

func BenchmarkAppendEncoded(b *testing.B) {
	const batch = 1024
	l := waltest.Open(b)
	src := waltest.History(0, batch, 10)
	encs := make([]wal.Encoded, batch)
	for i, r := range src {
		encs[i] = wal.Encoded{ClientID: r.ClientId, ClientSeq: r.ClientSeq, Body: body(b, r)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := l.AppendEncoded(encs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
