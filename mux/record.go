package mux

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

// Records arrive encoded and are written encoded (wal.AppendEncoded): the
// service checks them on the wire instead of decoding them, which keeps the
// per-record cost well under a microsecond and the queue small. The check is
// at least as strict as the protobuf decoder, so every record the service
// writes decodes: valid wire format, the declared wire type for every known
// field, valid UTF-8 in every string, at most one payload.

// msgSchema describes one message type for the wire check.
type msgSchema struct {
	name   string
	fields []fieldSchema // indexed by field number; name "" for unknown
}

type fieldSchema struct {
	name string
	kind protoreflect.Kind
	list bool
	msg  *msgSchema
	enum protoreflect.EnumDescriptor // for enum fields: values outside it are refused
}

// newSchema builds the check table for runlog.v1.Record from its descriptor.
func newSchema() *msgSchema {
	built := make(map[protoreflect.FullName]*msgSchema)
	var build func(md protoreflect.MessageDescriptor) *msgSchema
	build = func(md protoreflect.MessageDescriptor) *msgSchema {
		if s, ok := built[md.FullName()]; ok {
			return s
		}
		s := &msgSchema{name: string(md.Name())}
		built[md.FullName()] = s
		fds := md.Fields()
		max := 0
		for i := range fds.Len() {
			if n := int(fds.Get(i).Number()); n > max {
				max = n
			}
		}
		s.fields = make([]fieldSchema, max+1)
		for i := range fds.Len() {
			fd := fds.Get(i)
			f := fieldSchema{name: string(fd.Name()), kind: fd.Kind(), list: fd.IsList()}
			if fd.IsMap() {
				f.list = true
			}
			if fd.Message() != nil {
				f.msg = build(fd.Message())
			}
			if fd.Kind() == protoreflect.EnumKind {
				f.enum = fd.Enum()
			}
			s.fields[fd.Number()] = f
		}
		return s
	}
	return build((*runlogv1.Record)(nil).ProtoReflect().Descriptor())
}

// wireError is a problem found by checkMessage, with the path to the field.
type wireError struct {
	path   []string // innermost first
	reason string
}

func (e *wireError) Error() string {
	segs := make([]string, len(e.path))
	for i, s := range e.path {
		segs[len(e.path)-1-i] = s
	}
	return strings.Join(segs, ".") + " " + e.reason
}

func (e *wireError) at(seg string) *wireError {
	e.path = append(e.path, seg)
	return e
}

// checkMessage checks that b is a valid encoding of the message s describes.
func checkMessage(b []byte, s *msgSchema) *wireError {
	sc := wire.NewScanner(b)
	at := 0 // where the field being read starts
	for {
		at = len(b) - len(sc.Rest())
		if !sc.Next() {
			break
		}
		num := sc.Num()
		var f *fieldSchema
		if int(num) < len(s.fields) && s.fields[num].name != "" {
			f = &s.fields[num]
		}
		if f == nil {
			// Unknown fields are kept as they are, as a decoder would.
			continue
		}
		if err := checkField(sc.Field(), f); err != nil {
			return err.at(fieldName(f, b[:at], num))
		}
	}
	if err := sc.Err(); err != nil {
		return malformed(err, s, b[:at])
	}
	return nil
}

// malformed describes the error that stopped the scan of a message of
// schema s after the fields in before.
func malformed(err error, s *msgSchema, before []byte) *wireError {
	var fe *wire.FieldError
	switch {
	case !errors.As(err, &fe) || fe.Num == 0:
		return &wireError{reason: fmt.Sprintf("is malformed: %v", err)}
	case int(fe.Num) < len(s.fields) && s.fields[fe.Num].name != "":
		f := &s.fields[fe.Num]
		return (&wireError{reason: fmt.Sprintf("is malformed: %v", fe.Err)}).at(fieldName(f, before, fe.Num))
	default:
		return &wireError{reason: fmt.Sprintf("has a malformed field %d: %v", fe.Num, fe.Err)}
	}
}

// fieldName names field f, numbered num, in an error: a repeated field's
// element by its index, the count of fields numbered num in before.
func fieldName(f *fieldSchema, before []byte, num protowire.Number) string {
	if !f.list {
		return f.name
	}
	k := 0
	for s := wire.NewScanner(before); s.Next(); {
		if s.Num() == num {
			k++
		}
	}
	return fmt.Sprintf("%s[%d]", f.name, k)
}

// checkField checks the value of one field against its schema.
func checkField(v wire.Field, f *fieldSchema) *wireError {
	want := wireType(f.kind)
	if v.Type != want {
		if !(f.list && v.Type == protowire.BytesType && want != protowire.BytesType) {
			return &wireError{reason: fmt.Sprintf("has wire type %d, want %d", v.Type, want)}
		}
		// A packed repeated scalar.
		var bad *wireError
		err := wire.Packed(v.B, want, func(x uint64) error {
			if bad = checkEnumValue(x, f); bad != nil {
				return errBadEnum
			}
			return nil
		})
		switch {
		case bad != nil:
			return bad
		case err != nil:
			return &wireError{reason: fmt.Sprintf("is malformed: %v", err)}
		}
		return nil
	}
	if v.Type != protowire.BytesType {
		return checkEnumValue(v.U, f)
	}
	switch {
	case f.kind == protoreflect.StringKind:
		if !utf8.Valid(v.B) {
			return &wireError{reason: fmt.Sprintf("%q is not valid UTF-8", v.B)}
		}
	case f.msg != nil:
		return checkMessage(v.B, f.msg)
	}
	return nil
}

// errBadEnum stops a packed run at a value checkEnumValue refuses.
var errBadEnum = errors.New("mux: enum value out of range")

// checkEnumValue refuses an enum value that f's enum does not define: the
// decoder would keep it, but no reader knows what it means.
func checkEnumValue(v uint64, f *fieldSchema) *wireError {
	if f.enum == nil {
		return nil
	}
	if f.enum.Values().ByNumber(protoreflect.EnumNumber(int32(v))) == nil {
		return &wireError{reason: fmt.Sprintf("%d is not a %s value; use one of %s", int32(v), f.enum.FullName(), enumNames(f.enum))}
	}
	return nil
}

func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	default:
		return protowire.VarintType
	}
}

// checked is a record that passed checkRecord.
type checked struct {
	clientSeq uint64
	payload   wire.Kind // the payload's kind
	step      int64     // for history rows and rewinds
	body      []byte    // the record without header fields, for wal.Encoded
}

// checkRecord checks one encoded record from a client. It returns the
// record's client_seq even when the record is refused, if it could be read.
func (s *Service) checkRecord(raw []byte) (checked, error) {
	var c checked
	if len(raw) > s.maxRecord {
		if h, err := wire.ParseHeader(raw); err == nil {
			c.clientSeq = h.ClientSeq
		}
		return c, &TooLargeError{Size: len(raw), Limit: s.maxRecord}
	}
	// Find the header fields to strip and the payload. Encoders write fields
	// in number order, so the header fields normally form a prefix and the
	// body is the rest of raw, without a copy.
	var (
		payload []byte
		prefix  int  // raw[:prefix] holds only header fields
		mixed   bool // a header field follows another field: copy to strip
		other   bool // a field that is not a header field was seen
	)
	sc := wire.NewScanner(raw)
	for sc.Next() {
		num, typ := sc.Num(), sc.Type()
		header := wire.IsHeader(num)
		switch {
		case header && other:
			mixed = true
		case header:
			prefix = len(raw) - len(sc.Rest())
		default:
			other = true
		}
		switch k := wire.KindOfField(num); {
		case num == wire.RecordClientSeq:
			if typ != protowire.VarintType {
				return c, invalid("record client_seq has wire type %d, want a varint", typ)
			}
			c.clientSeq = sc.Uint()
		case k != wire.KindNone:
			if c.payload != wire.KindNone {
				return c, invalid("record has two payloads (%s and %s); send one record each", c.payload, k)
			}
			if typ != protowire.BytesType {
				return c, invalid("record %s has wire type %d, want a message", k, typ)
			}
			c.payload = k
			payload = sc.Bytes()
		}
	}
	if err := sc.Err(); err != nil {
		return c, invalid("record is not a valid runlog.v1.Record: %v", err)
	}
	if err := checkMessage(raw, s.schema); err != nil {
		return c, invalid("%s", describeWireError(err))
	}
	if c.clientSeq == 0 {
		return c, invalid("record has no client_seq; number each client's records 1, 2, 3, ... in publish order")
	}
	if c.payload == wire.KindNone {
		return c, invalid("record has no payload; set one of run, config, history, summary, output, file, stats, metric, alert, rewind")
	}
	if err := checkPayload(c.payload, payload, &c); err != nil {
		return c, err
	}
	c.body = raw[prefix:]
	if mixed {
		c.body = stripHeader(raw)
	}
	return c, nil
}

// describeWireError names the field the way a user would.
func describeWireError(e *wireError) string {
	// Keys get their own wording: "history key "\xff" is not valid UTF-8".
	if len(e.path) >= 3 && e.path[0] == "key" {
		item := e.path[1]
		if i := strings.IndexByte(item, '['); i > 0 {
			return fmt.Sprintf("%s key %s (item %s)", e.path[len(e.path)-1], e.reason, strings.Trim(item[i:], "[]"))
		}
	}
	return "record field " + e.Error()
}

// stripHeader returns raw without the header fields (seq to synthesized):
// the service sets them. raw is well-formed.
func stripHeader(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	sc := wire.NewScanner(raw)
	for {
		field := sc.Rest()
		if !sc.Next() {
			return out
		}
		if !wire.IsHeader(sc.Num()) {
			out = append(out, field[:len(field)-len(sc.Rest())]...)
		}
	}
}

// checkPayload applies the rules the wire format cannot express: keys are
// non-empty, items have values, steps are not negative, exits go through
// Finish. p is a well-formed encoding of the payload message of kind k.
func checkPayload(k wire.Kind, p []byte, c *checked) error {
	switch k {
	case wire.KindHistory:
		step, _ := wire.Step(p)
		if err := checkItems(k, p, wire.HistoryItems); err != nil {
			return err
		}
		if step < 0 {
			return invalid("history step %d is negative; steps start at 0", step)
		}
		c.step = step
	case wire.KindConfig, wire.KindSummary:
		if err := checkItems(k, p, wire.UpdateSet); err != nil {
			return err
		}
		i := 0
		for sc := wire.NewScanner(p); sc.Next(); {
			if sc.Is(wire.UpdateRemove, protowire.BytesType) {
				if len(sc.Bytes()) == 0 {
					return invalid("%s remove key is empty (entry %d); keys must be non-empty UTF-8", k, i)
				}
				i++
			}
		}
	case wire.KindStats:
		return checkItems(k, p, wire.StatsItems)
	case wire.KindRewind:
		step, _ := wire.Step(p)
		if step < 0 {
			return invalid("rewind step %d is negative; steps start at 0", step)
		}
		c.step = step
	case wire.KindMetric, wire.KindFile:
		// The name and the path are field 1 of their messages.
		name := wire.MetricName
		what := "metric name"
		if k == wire.KindFile {
			name, what = wire.FilePath, "file path"
		}
		seen := false
		for sc := wire.NewScanner(p); sc.Next(); {
			if sc.Is(name, protowire.BytesType) && len(sc.Bytes()) > 0 {
				seen = true
			}
		}
		if !seen {
			return invalid("%s is empty", what)
		}
	case wire.KindExit:
		return invalid("exit records are not published; call Finish with the exit")
	}
	return nil
}

// checkItems checks each encoded Item in the fields numbered field of the
// well-formed payload p: a non-empty key and a value.
func checkItems(k wire.Kind, p []byte, field protowire.Number) error {
	i := 0
	for sc := wire.NewScanner(p); sc.Next(); {
		if !sc.Is(field, protowire.BytesType) {
			continue
		}
		var key []byte
		value := false
		for it := wire.NewScanner(sc.Bytes()); it.Next(); {
			switch {
			case it.Is(wire.ItemKey, protowire.BytesType):
				key = it.Bytes()
			case it.Is(wire.ItemValue, protowire.BytesType):
				value = true
			}
		}
		if len(key) == 0 {
			return invalid("%s key \"\" is empty (item %d); keys must be non-empty UTF-8", k, i)
		}
		if !value {
			return invalid("%s key %q has no value (item %d)", k, key, i)
		}
		i++
	}
	return nil
}
