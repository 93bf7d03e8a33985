package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Field numbers of the messages in proto/runlog/v1/record.proto that the
// fast paths read or write without the generated code. They are facts of
// that file; TestFieldNumbers checks each against the generated descriptor.
const (
	// runlog.v1.Record: the header, stamped by the service (1 to 3) or set
	// by the client (4, 5) or by the service for records it writes (6).
	RecordSeq         protowire.Number = 1
	RecordID          protowire.Number = 2
	RecordTime        protowire.Number = 3
	RecordClientID    protowire.Number = 4
	RecordClientSeq   protowire.Number = 5
	RecordSynthesized protowire.Number = 6

	// runlog.v1.Record: the payload oneof, one field per Kind, in Kind
	// order. A new payload kind takes the next number, PayloadLast moves to
	// it and the Kind list below gets its name.
	RecordRun     protowire.Number = 10
	RecordConfig  protowire.Number = 11
	RecordHistory protowire.Number = 12
	RecordSummary protowire.Number = 13
	RecordOutput  protowire.Number = 14
	RecordFile    protowire.Number = 15
	RecordStats   protowire.Number = 16
	RecordMetric  protowire.Number = 17
	RecordAlert   protowire.Number = 18
	RecordRewind  protowire.Number = 19
	RecordExit    protowire.Number = 20

	HeaderFirst  = RecordSeq
	HeaderLast   = RecordSynthesized
	PayloadFirst = RecordRun
	PayloadLast  = RecordExit

	// runlog.v1.HistoryRow
	HistoryStep  protowire.Number = 1
	HistoryItems protowire.Number = 2

	// runlog.v1.ConfigUpdate and runlog.v1.SummaryUpdate
	UpdateSet    protowire.Number = 1
	UpdateRemove protowire.Number = 2

	// runlog.v1.SystemStats
	StatsItems protowire.Number = 1

	// runlog.v1.FileRef
	FilePath protowire.Number = 1

	// runlog.v1.MetricDefinition
	MetricName protowire.Number = 1

	// runlog.v1.Rewind
	RewindStep protowire.Number = 1

	// runlog.v1.Item
	ItemKey   protowire.Number = 1
	ItemValue protowire.Number = 2

	// runlog.v1.Value: the kind oneof
	ValueDouble protowire.Number = 1
	ValueInt    protowire.Number = 2
	ValueBool   protowire.Number = 3
	ValueString protowire.Number = 4
	ValueJSON   protowire.Number = 5
)

// Kind is the payload type of a record: which field of the payload oneof it
// sets. Kinds follow the field numbers: KindRun is PayloadFirst.
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
	NumKinds
)

// kindNames are the payload fields' names in record.proto.
var kindNames = [NumKinds]string{
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
	if k < NumKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Field returns the Record field number of the kind's payload, 0 for
// KindNone.
func (k Kind) Field() protowire.Number {
	if k == KindNone || k >= NumKinds {
		return 0
	}
	return PayloadFirst + protowire.Number(k-KindRun)
}

// KindOfField returns the kind whose payload Record field num holds,
// KindNone for a field that is not a payload.
func KindOfField(num protowire.Number) Kind {
	if num >= PayloadFirst && num <= PayloadLast {
		return KindRun + Kind(num-PayloadFirst)
	}
	return KindNone
}

// KindOf returns the kind of a decoded record's payload.
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
