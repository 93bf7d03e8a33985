package replay

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// Filter selects records. The zero value selects every record.
type Filter struct {
	From, To     uint64    // seq range, inclusive; 0 leaves that end open
	Since, Until time.Time // time range, inclusive; zero leaves that end open
	Kinds        []Kind    // payload kinds; empty means all
	Client       string    // client id; empty means all
}

// ParseTime parses a bound of a Filter's time range as a user writes it:
// RFC 3339 (2026-11-27T16:42:13Z, fractions and offsets allowed), the same
// without an offset, or a date (2026-11-27); the last two are in UTC. The
// empty string is the zero time, an open end.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-27T16:42:13Z) or a date (2026-11-27)", s)
}

// Match reports whether r passes the filter.
func (f *Filter) Match(r *runlogv1.Record) bool {
	if f.From != 0 && r.GetSeq() < f.From || f.To != 0 && r.GetSeq() > f.To {
		return false
	}
	if !f.Since.IsZero() && r.GetTimeUnixNano() < f.Since.UnixNano() {
		return false
	}
	if !f.Until.IsZero() && r.GetTimeUnixNano() > f.Until.UnixNano() {
		return false
	}
	if f.Client != "" && r.GetClientId() != f.Client {
		return false
	}
	return f.matchKind(KindOf(r))
}

func (f *Filter) matchKind(k Kind) bool {
	if len(f.Kinds) == 0 {
		return true
	}
	for _, want := range f.Kinds {
		if k == want {
			return true
		}
	}
	return false
}

// Records calls fn with each record of src that passes f, in log order. The
// record passed to fn is reused for the next one: fn must not keep it (use
// proto.Clone). A record that does not decode stops the read with a
// *wal.CorruptError naming its seq; the records before it have been passed
// to fn. An error from fn stops the read and is returned.
func Records(src Source, f Filter, fn func(*runlogv1.Record) error) error {
	var r runlogv1.Record
	err := src.Scan(f.From, func(seq uint64, data []byte) error {
		if f.To != 0 && seq > f.To {
			return errStop
		}
		if len(f.Kinds) > 0 {
			// Skip other kinds without decoding them.
			k, _, err := payloadOf(data)
			if err != nil {
				return &wal.CorruptError{Path: pathOf(src), Seq: seq, Err: err}
			}
			if !f.matchKind(k) {
				return nil
			}
		}
		if err := proto.Unmarshal(data, &r); err != nil {
			return &wal.CorruptError{Path: pathOf(src), Seq: seq, Err: err}
		}
		if !f.Match(&r) {
			return nil
		}
		return fn(&r)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read records: %w", err)
	}
	return nil
}

func pathOf(src Source) string {
	if p, ok := src.(interface{ Path() string }); ok {
		return p.Path()
	}
	return ""
}
