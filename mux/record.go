package mux

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Records arrive encoded and are written encoded (wal.AppendEncoded): the
// service checks them on the wire instead of decoding them, which keeps the
// per-record cost well under a microsecond and the queue small. The check is
// at least as strict as the protobuf decoder, so every record the service
// writes decodes: valid wire format, the declared wire type for every known
// field, valid UTF-8 in every string, at most one payload.

// Field numbers of runlog.v1.Record the service reads or strips.
const (
	fieldSeq          = 1
	fieldClientID     = 4
	fieldClientSeq    = 5
	fieldSynthesized  = 6
	fieldPayloadFirst = 10
	fieldRun          = 10
	fieldConfig       = 11
	fieldHistory      = 12
	fieldSummary      = 13
	fieldFile         = 15
	fieldStats        = 16
	fieldMetric       = 17
	fieldRewind       = 19
	fieldExit         = 20
	fieldPayloadLast  = 20
)

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
	msg := b
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return &wireError{reason: fmt.Sprintf("is malformed: %v", protowire.ParseError(n))}
		}
		at := len(msg) - len(b)
		b = b[n:]
		var f *fieldSchema
		if int(num) < len(s.fields) && s.fields[num].name != "" {
			f = &s.fields[num]
		}
		if f == nil {
			// Unknown fields are kept as they are, as a decoder would.
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return &wireError{reason: fmt.Sprintf("has a malformed field %d: %v", num, protowire.ParseError(m))}
			}
			b = b[m:]
			continue
		}
		m, err := checkField(b, typ, f)
		if err != nil {
			if f.list {
				return err.at(fmt.Sprintf("%s[%d]", f.name, occurrences(msg[:at], num)))
			}
			return err.at(f.name)
		}
		b = b[m:]
	}
	return nil
}

// occurrences counts the fields numbered num in the well-formed b, to name
// a repeated field's element in an error.
func occurrences(b []byte, num protowire.Number) int {
	k := 0
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if n == num {
			k++
		}
		b = b[l+protowire.ConsumeFieldValue(n, typ, b[l:]):]
	}
	return k
}

// checkField checks one field value of wire type typ and returns its length.
func checkField(b []byte, typ protowire.Type, f *fieldSchema) (int, *wireError) {
	want := wireType(f.kind)
	if typ != want {
		if !(f.list && typ == protowire.BytesType && want != protowire.BytesType) {
			return 0, &wireError{reason: fmt.Sprintf("has wire type %d, want %d", typ, want)}
		}
		// A packed repeated scalar.
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return 0, &wireError{reason: fmt.Sprintf("is malformed: %v", protowire.ParseError(m))}
		}
		for len(v) > 0 {
			k := protowire.ConsumeFieldValue(1, want, v)
			if k < 0 {
				return 0, &wireError{reason: fmt.Sprintf("is malformed: %v", protowire.ParseError(k))}
			}
			if err := checkEnumValue(v[:k], f); err != nil {
				return 0, err
			}
			v = v[k:]
		}
		return m, nil
	}
	switch typ {
	case protowire.BytesType:
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return 0, &wireError{reason: fmt.Sprintf("is malformed: %v", protowire.ParseError(m))}
		}
		switch {
		case f.kind == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return 0, &wireError{reason: fmt.Sprintf("%q is not valid UTF-8", v)}
			}
		case f.msg != nil:
			if err := checkMessage(v, f.msg); err != nil {
				return 0, err
			}
		}
		return m, nil
	default:
		m := protowire.ConsumeFieldValue(1, typ, b)
		if m < 0 {
			return 0, &wireError{reason: fmt.Sprintf("is malformed: %v", protowire.ParseError(m))}
		}
		if err := checkEnumValue(b[:m], f); err != nil {
			return 0, err
		}
		return m, nil
	}
}

// checkEnumValue refuses an enum value (the varint in b) that f's enum does
// not define: the decoder would keep it, but no reader knows what it means.
func checkEnumValue(b []byte, f *fieldSchema) *wireError {
	if f.enum == nil {
		return nil
	}
	v, _ := protowire.ConsumeVarint(b)
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
	payload   protowire.Number
	step      int64  // for history rows and rewinds
	body      []byte // the record without header fields, for wal.Encoded
}

// checkRecord checks one encoded record from a client. It returns the
// record's client_seq even when the record is refused, if it could be read.
func (s *Service) checkRecord(raw []byte) (checked, error) {
	var c checked
	if len(raw) > s.maxRecord {
		c.clientSeq = peekClientSeq(raw)
		return c, &TooLargeError{Size: len(raw), Limit: s.maxRecord}
	}
	// Find the header fields to strip and the payload. Encoders write fields
	// in number order, so the header fields (1 to 6) normally form a prefix
	// and the body is the rest of raw, without a copy.
	var (
		payload []byte
		prefix  int  // raw[:prefix] holds only header fields
		mixed   bool // a header field follows another field: copy to strip
		other   bool // a field that is not a header field was seen
	)
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return c, invalid("record is not a valid runlog.v1.Record: %v", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return c, invalid("record is not a valid runlog.v1.Record: field %d: %v", num, protowire.ParseError(m))
		}
		val := b[n : n+m]
		b = b[n+m:]
		header := num >= fieldSeq && num <= fieldSynthesized
		switch {
		case header && other:
			mixed = true
		case header:
			prefix = len(raw) - len(b)
		default:
			other = true
		}
		switch {
		case num == fieldClientSeq:
			if typ != protowire.VarintType {
				return c, invalid("record client_seq has wire type %d, want a varint", typ)
			}
			c.clientSeq, _ = protowire.ConsumeVarint(val)
		case num >= fieldPayloadFirst && num <= fieldPayloadLast:
			if c.payload != 0 {
				return c, invalid("record has two payloads (%s and %s); send one record each",
					payloadName(c.payload), payloadName(num))
			}
			if typ != protowire.BytesType {
				return c, invalid("record %s has wire type %d, want a message", payloadName(num), typ)
			}
			c.payload = num
			payload, _ = protowire.ConsumeBytes(val)
		}
	}
	if err := checkMessage(raw, s.schema); err != nil {
		return c, invalid("%s", describeWireError(err))
	}
	if c.clientSeq == 0 {
		return c, invalid("record has no client_seq; number each client's records 1, 2, 3, ... in publish order")
	}
	if c.payload == 0 {
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

// peekClientSeq reads client_seq from the top level of raw, 0 if it cannot.
func peekClientSeq(raw []byte) uint64 {
	var seq uint64
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == fieldClientSeq && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0
			}
			seq, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0
		}
		b = b[m:]
	}
	return seq
}

// stripHeader returns raw without fields 1 to 6 (seq, id, time, client_id,
// client_seq, synthesized): the service sets them. raw is well-formed.
func stripHeader(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if num < fieldSeq || num > fieldSynthesized {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out
}

func payloadName(num protowire.Number) string {
	fd := (*runlogv1.Record)(nil).ProtoReflect().Descriptor().Fields().ByNumber(num)
	if fd == nil {
		return fmt.Sprintf("field %d", num)
	}
	return string(fd.Name())
}

// checkPayload applies the rules the wire format cannot express: keys are
// non-empty, items have values, steps are not negative, exits go through
// Finish. p is a well-formed encoding of the payload message.
func checkPayload(num protowire.Number, p []byte, c *checked) error {
	var name string
	switch num {
	case fieldHistory:
		name = "history"
	case fieldConfig:
		name = "config"
	case fieldSummary:
		name = "summary"
	case fieldStats:
		name = "stats"
	}
	switch num {
	case fieldHistory:
		step, err := eachField(p, func(f protowire.Number, v []byte, i int) error {
			if f == 2 {
				return checkItem(name, v, i)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if step < 0 {
			return invalid("history step %d is negative; steps start at 0", step)
		}
		c.step = step
	case fieldConfig, fieldSummary:
		_, err := eachField(p, func(f protowire.Number, v []byte, i int) error {
			switch f {
			case 1:
				return checkItem(name, v, i)
			case 2:
				if len(v) == 0 {
					return invalid("%s remove key is empty (entry %d); keys must be non-empty UTF-8", name, i)
				}
			}
			return nil
		})
		return err
	case fieldStats:
		_, err := eachField(p, func(f protowire.Number, v []byte, i int) error {
			if f == 1 {
				return checkItem(name, v, i)
			}
			return nil
		})
		return err
	case fieldRewind:
		step, _ := eachField(p, nil)
		if step < 0 {
			return invalid("rewind step %d is negative; steps start at 0", step)
		}
		c.step = step
	case fieldMetric, fieldFile:
		seen := false
		_, err := eachField(p, func(f protowire.Number, v []byte, _ int) error {
			if f == 1 && len(v) > 0 {
				seen = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !seen {
			what := "metric name"
			if num == fieldFile {
				what = "file path"
			}
			return invalid("%s is empty", what)
		}
	case fieldExit:
		return invalid("exit records are not published; call Finish with the exit")
	}
	return nil
}

// eachField calls fn with every length-delimited field of the well-formed
// message p and its index among the fields of that number. It returns the
// last value of varint field 1 (a step, where the message has one).
func eachField(p []byte, fn func(num protowire.Number, v []byte, i int) error) (int64, error) {
	var (
		first  int64
		counts [4]int
	)
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		p = p[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(p)
			if num == 1 {
				first = int64(v)
			}
			p = p[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(p)
			if fn != nil {
				i := 0
				if int(num) < len(counts) {
					i = counts[num]
					counts[num]++
				}
				if err := fn(num, v, i); err != nil {
					return 0, err
				}
			}
			p = p[m:]
		default:
			p = p[protowire.ConsumeFieldValue(num, typ, p):]
		}
	}
	return first, nil
}

// checkItem checks an encoded Item: a non-empty key and a value.
func checkItem(payload string, p []byte, i int) error {
	var key []byte
	value := false
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		p = p[n:]
		m := protowire.ConsumeFieldValue(num, typ, p)
		if typ == protowire.BytesType {
			switch num {
			case 1:
				key, _ = protowire.ConsumeBytes(p)
			case 2:
				value = true
			}
		}
		p = p[m:]
	}
	if len(key) == 0 {
		return invalid("%s key \"\" is empty (item %d); keys must be non-empty UTF-8", payload, i)
	}
	if !value {
		return invalid("%s key %q has no value (item %d)", payload, key, i)
	}
	return nil
}
