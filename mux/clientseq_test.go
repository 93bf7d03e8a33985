package mux_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// out is a console record with client_seq cs and text text.
type out struct {
	cs   uint64
	text string
}

// sent is one PublishRequest of a case: from which client stream, what, and
// what its answer must say.
type sent struct {
	stream  int // index of the stream (0 or 1) that sends it
	recs    []out
	refused map[uint64]string // client_seq -> text the rejection contains
	acked   uint64            // the answer's acked_client_seq
}

// TestClientSeqContract checks the publish contract for every client_seq
// pattern: each record is durable (in the log exactly once) or listed in the
// answer's rejections with a reason; an identical resend is acknowledged
// without a second copy; nothing is dropped while acknowledged.
func TestClientSeqContract(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	const max = math.MaxUint64
	cases := []struct {
		name  string
		sends []sent
		want  []out // the client's records in the log, in order
	}{
		{
			name: "backwards across batches",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}, {3, "c"}, {5, "e"}}, acked: 5},
				{recs: []out{{4, "d"}}, refused: map[uint64]string{4: "client_seq 4 is not above"}, acked: 5},
			},
			want: []out{{1, "a"}, {2, "b"}, {3, "c"}, {5, "e"}},
		},
		{
			name: "backwards within a batch",
			sends: []sent{
				{recs: []out{{8, "h"}, {7, "g"}, {6, "f"}}, refused: map[uint64]string{
					7: "client_seq 7 is not above", 6: "client_seq 6 is not above"}, acked: 8},
			},
			want: []out{{8, "h"}},
		},
		{
			name: "client_seq 2^64-1",
			sends: []sent{
				{recs: []out{{1, "a"}}, acked: 1},
				{recs: []out{{max, "z"}}, refused: map[uint64]string{max: "skips"}, acked: 1},
				{recs: []out{{2, "b"}, {3, "c"}}, acked: 3},
			},
			want: []out{{1, "a"}, {2, "b"}, {3, "c"}},
		},
		{
			name: "client_seq 2^64-1 in a record refused on arrival",
			sends: []sent{
				{recs: []out{{1, "a"}, {max, ""}}, refused: map[uint64]string{max: "no payload"}, acked: 1},
				{recs: []out{{2, "b"}}, acked: 2},
			},
			want: []out{{1, "a"}, {2, "b"}},
		},
		{
			name: "same client_seq twice in a batch, different content",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}, {2, "B"}}, refused: map[uint64]string{2: "already holds a different record"}, acked: 2},
			},
			want: []out{{1, "a"}, {2, "b"}},
		},
		{
			name: "same client_seq twice in a batch, same content",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}, {2, "b"}}, acked: 2},
			},
			want: []out{{1, "a"}, {2, "b"}},
		},
		{
			name: "resend with different content",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}, {3, "c"}}, acked: 3},
				{recs: []out{{2, "b"}, {3, "C"}, {4, "d"}}, refused: map[uint64]string{3: "already holds a different record"}, acked: 4},
			},
			want: []out{{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}},
		},
		{
			name: "identical resend",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}, {3, "c"}}, acked: 3},
				{recs: []out{{2, "b"}, {3, "c"}, {4, "d"}}, acked: 4},
			},
			want: []out{{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}},
		},
		{
			// A child forked after record 2 inherits the client id and the
			// counter: parent and child both send 3 and 4. The first to
			// arrive is written; the other's are refused, naming the cause.
			name: "forked child inherits the client id",
			sends: []sent{
				{recs: []out{{1, "a"}, {2, "b"}}, acked: 2},
				{stream: 0, recs: []out{{3, "parent"}, {4, "parent"}}, acked: 4},
				{stream: 1, recs: []out{{3, "child"}, {4, "child"}}, refused: map[uint64]string{
					3: "another process", 4: "another process"}, acked: 4},
				{stream: 0, recs: []out{{5, "parent"}}, acked: 5},
			},
			want: []out{{1, "a"}, {2, "b"}, {3, "parent"}, {4, "parent"}, {5, "parent"}},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("seq%d", i)
			ir := initRun(t, c, &runlogv1.InitRequest{RunId: id})
			streams := []stream{openStream(t, c), openStream(t, c)}
			for b, s := range tc.sends {
				req := &runlogv1.PublishRequest{RunId: id, ClientId: ir.ClientId, Batch: uint64(b)}
				for _, o := range s.recs {
					r := &runlogv1.Record{ClientSeq: o.cs}
					if o.text != "" {
						r.Payload = &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Text: o.text}}
					}
					req.Records = append(req.Records, muxtest.Encode(t, r))
				}
				resp := send(t, streams[s.stream], req)
				if resp.Error != nil {
					t.Fatalf("batch %d: %v", b, resp.Error)
				}
				got := map[uint64]string{}
				for _, rj := range resp.Rejections {
					if s.recs[rj.Index].cs != rj.ClientSeq {
						t.Errorf("batch %d: rejection of index %d names client_seq %d, want %d", b, rj.Index, rj.ClientSeq, s.recs[rj.Index].cs)
					}
					got[rj.ClientSeq] = rj.Error.GetMessage()
					want, ok := s.refused[rj.ClientSeq]
					switch {
					case !ok:
						t.Errorf("batch %d: record %d refused: %s %s", b, rj.ClientSeq, codes.Code(rj.Error.GetCode()), rj.Error.GetMessage())
					case !strings.Contains(rj.Error.GetMessage(), want):
						t.Errorf("batch %d: record %d refused with %q, want it to contain %q", b, rj.ClientSeq, rj.Error.GetMessage(), want)
					}
				}
				for cs := range s.refused {
					if _, ok := got[cs]; !ok {
						t.Errorf("batch %d: record %d not refused; answer %v", b, cs, resp)
					}
				}
				if resp.AckedClientSeq != s.acked {
					t.Errorf("batch %d: acked_client_seq %d, want %d", b, resp.AckedClientSeq, s.acked)
				}
			}
			var got []out
			for _, r := range readAll(t, c, id) {
				if r.GetOutput() != nil {
					got = append(got, out{r.ClientSeq, r.GetOutput().GetText()})
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("log holds %v, want %v", got, tc.want)
			}
		})
	}
}
