package replay

import (
	"fmt"
	"strings"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Kind is the payload type of a record, as named in filters, in the text and
// JSON output and in counts.
type Kind uint8

// Record kinds. KindNone is a record without a payload (only a damaged or
// hand-made log has one).
const (
	KindNone Kind = iota
	KindRun
	KindConfig
	KindHistory
	KindSummary
	KindOutput
	KindFile
	KindStats
	KindMetric
	KindAlert
	KindRewind
	KindExit
	numKinds
)

var kindNames = [numKinds]string{
	KindNone:    "none",
	KindRun:     "run",
	KindConfig:  "config",
	KindHistory: "history",
	KindSummary: "summary",
	KindOutput:  "output",
	KindFile:    "file",
	KindStats:   "stats",
	KindMetric:  "metric",
	KindAlert:   "alert",
	KindRewind:  "rewind",
	KindExit:    "exit",
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Kinds returns every kind that carries a payload, in field order.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := KindRun; k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

// ParseKind returns the kind named s ("history", "config", ...).
func ParseKind(s string) (Kind, error) {
	for k := KindRun; k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	names := make([]string, 0, numKinds-1)
	for _, k := range Kinds() {
		names = append(names, k.String())
	}
	return KindNone, fmt.Errorf("unknown record kind %q (want one of %s)", s, strings.Join(names, ", "))
}

// KindOf returns the kind of r's payload.
func KindOf(r *runlogv1.Record) Kind {
	switch r.GetPayload().(type) {
	case *runlogv1.Record_Run:
		return KindRun
	case *runlogv1.Record_Config:
		return KindConfig
	case *runlogv1.Record_History:
		return KindHistory
	case *runlogv1.Record_Summary:
		return KindSummary
	case *runlogv1.Record_Output:
		return KindOutput
	case *runlogv1.Record_File:
		return KindFile
	case *runlogv1.Record_Stats:
		return KindStats
	case *runlogv1.Record_Metric:
		return KindMetric
	case *runlogv1.Record_Alert:
		return KindAlert
	case *runlogv1.Record_Rewind:
		return KindRewind
	case *runlogv1.Record_Exit:
		return KindExit
	}
	return KindNone
}

// kindOfField maps a Record field number to the kind of payload it holds.
func kindOfField(num int32) Kind {
	if num >= 10 && num <= 20 {
		return Kind(num - 10 + int32(KindRun))
	}
	return KindNone
}
