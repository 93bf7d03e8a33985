package replay

import (
	"fmt"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// MaxListedProblems bounds the problems VerifyResponse lists, so that a badly
// damaged log cannot make an unbounded message. The last listed problem then
// says how many were left out.
const MaxListedProblems = 1000

// ProblemTruncated is the kind of the problem that stands for the ones
// VerifyResponse left out.
const ProblemTruncated = "truncated"

// VerifyResponse checks l with wal.Log.Verify and answers as the service's
// Verify RPC does, so that a run reads the same verified locally or through
// the service.
func VerifyResponse(l *wal.Log, opts wal.VerifyOptions) (*runlogv1.VerifyResponse, error) {
	out := &runlogv1.VerifyResponse{}
	extra := 0
	res, err := l.Verify(opts, func(p wal.Problem) {
		if len(out.Problems) < MaxListedProblems {
			out.Problems = append(out.Problems, &runlogv1.Problem{Seq: p.Seq, Kind: p.Kind, Message: p.Message})
		} else {
			extra++
		}
	})
	if err != nil {
		return nil, err
	}
	if extra > 0 {
		out.Problems = append(out.Problems, &runlogv1.Problem{
			Kind:    ProblemTruncated,
			Message: fmt.Sprintf("%d more problems not listed", extra),
		})
	}
	out.Records = res.Records
	out.FirstBadSeq = res.FirstBad
	out.LastGoodSeq = res.LastGood
	return out, nil
}
