package replay

import (
	"fmt"
	"strings"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

// Kind is the payload type of a record, as named in filters, in the text and
// JSON output and in counts. The kinds and their names are the wire
// format's (package wire).
type Kind = wire.Kind

// Record kinds. KindNone is a record without a payload (only a damaged or
// hand-made log has one).
const (
	KindNone    = wire.KindNone
	KindRun     = wire.KindRun
	KindConfig  = wire.KindConfig
	KindHistory = wire.KindHistory
	KindSummary = wire.KindSummary
	KindOutput  = wire.KindOutput
	KindFile    = wire.KindFile
	KindStats   = wire.KindStats
	KindMetric  = wire.KindMetric
	KindAlert   = wire.KindAlert
	KindRewind  = wire.KindRewind
	KindExit    = wire.KindExit
	numKinds    = wire.NumKinds
)

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
		if k.String() == s {
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
func KindOf(r *runlogv1.Record) Kind { return wire.KindOf(r) }
