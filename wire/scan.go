package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Errors of the scanner. A malformed field is reported as a *FieldError
// wrapping protowire's error or ErrFieldNumber.
var (
	// ErrFieldNumber is a tag whose field number is outside 1 to
	// protowire.MaxValidNumber: the decoder refuses it.
	ErrFieldNumber = errors.New("wire: field number out of range")
	// ErrChecksum is a stored record whose CRC-32C does not match its bytes.
	ErrChecksum = errors.New("wire: checksum mismatch")
)

// FieldError is a malformed field: Num is 0 when the tag itself is bad.
type FieldError struct {
	Num protowire.Number
	Err error
}

func (e *FieldError) Error() string {
	if e.Num == 0 {
		return fmt.Sprintf("bad tag: %v", e.Err)
	}
	return fmt.Sprintf("field %d: %v", e.Num, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Field is one field of an encoded message.
type Field struct {
	Num  protowire.Number
	Type protowire.Type
	// U is the value of a varint, fixed32 or fixed64 field; it is left as
	// it was for other wire types.
	U uint64
	// B is the value of a length-delimited field, or the contents of a
	// group, sharing the scanned bytes; it is left as it was for other wire
	// types.
	B []byte
}

// Scanner walks the fields of one encoded message, in the order they are
// written, as the protobuf decoder reads them. It is the only code that
// splits a message into fields; everything else in the package and its
// callers is built on it.
//
//	s := wire.NewScanner(b)
//	for s.Next() {
//		f := s.Field()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
//
// The scanner reads tags and values only; what a field means, and whether
// its wire type is the declared one, is its caller's concern. A field whose
// wire type differs from the declared one is an unknown field to the
// decoder, and callers treat it so.
type Scanner struct {
	rest []byte
	err  error
	f    Field
}

// NewScanner returns a scanner over the fields of b.
func NewScanner(b []byte) Scanner {
	return Scanner{rest: b}
}

// Next reads the next field. It returns false at the end of the message or
// at a malformed field; Err tells which.
func (s *Scanner) Next() bool {
	b := s.rest
	if len(b) < 2 || b[0] >= 0x80 || b[0] < 1<<3 {
		return s.next()
	}
	// A one-byte tag (fields 1 to 15: every field the fast paths read),
	// read here with constant offsets; anything else takes next.
	s.f.Num, s.f.Type = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
	switch s.f.Type {
	case protowire.VarintType:
		if b[1] < 0x80 {
			s.f.U, s.rest = uint64(b[1]), b[2:]
			return true
		}
		v, m := protowire.ConsumeVarint(b[1:])
		if m < 0 {
			return s.fail(s.f.Num, protowire.ParseError(m))
		}
		s.f.U, s.rest = v, b[1+m:]
		return true
	case protowire.BytesType:
		if l := int(b[1]); l < 0x80 && l <= len(b)-2 {
			s.f.B, s.rest = b[2:2+l:2+l], b[2+l:]
			return true
		}
		// A two-byte length: a payload such as a history row.
		if len(b) > 2 && b[2] < 0x80 {
			if l := int(b[1]&0x7f) | int(b[2])<<7; l <= len(b)-3 {
				s.f.B, s.rest = b[3:3+l:3+l], b[3+l:]
				return true
			}
		}
	}
	return s.next()
}

// next is Next for the fields its fast path does not take.
func (s *Scanner) next() bool {
	b := s.rest
	if len(b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return s.fail(0, protowire.ParseError(n))
	}
	if num > protowire.MaxValidNumber {
		return s.fail(0, ErrFieldNumber)
	}
	b = b[n:]
	s.f.Num, s.f.Type = num, typ
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return s.fail(num, protowire.ParseError(m))
		}
		s.f.U, s.rest = v, b[m:]
	case protowire.BytesType:
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return s.fail(num, protowire.ParseError(m))
		}
		s.f.B, s.rest = v, b[m:]
	case protowire.Fixed64Type:
		v, m := protowire.ConsumeFixed64(b)
		if m < 0 {
			return s.fail(num, protowire.ParseError(m))
		}
		s.f.U, s.rest = v, b[m:]
	case protowire.Fixed32Type:
		v, m := protowire.ConsumeFixed32(b)
		if m < 0 {
			return s.fail(num, protowire.ParseError(m))
		}
		s.f.U, s.rest = uint64(v), b[m:]
	case protowire.StartGroupType:
		v, m := protowire.ConsumeGroup(num, b)
		if m < 0 {
			return s.fail(num, protowire.ParseError(m))
		}
		s.f.B, s.rest = v, b[m:]
	default:
		// An end-group tag outside a group, or a reserved wire type.
		return s.fail(num, protowire.ParseError(protowire.ConsumeFieldValue(num, typ, b)))
	}
	return true
}

func (s *Scanner) fail(num protowire.Number, err error) bool {
	s.err = &FieldError{Num: num, Err: err}
	s.rest = nil
	return false
}

// Field returns the field read by the last successful Next.
func (s *Scanner) Field() Field { return s.f }

// Num returns the number of the field read by the last Next.
func (s *Scanner) Num() protowire.Number { return s.f.Num }

// Type returns the wire type of the field read by the last Next.
func (s *Scanner) Type() protowire.Type { return s.f.Type }

// Uint returns the value of the varint or fixed field read by the last Next.
func (s *Scanner) Uint() uint64 { return s.f.U }

// Bytes returns the value of the length-delimited field read by the last
// Next, sharing the scanned bytes.
func (s *Scanner) Bytes() []byte { return s.f.B }

// Rest returns the bytes not yet read: the fields after the last one Next
// returned. After a failed Next it is empty.
func (s *Scanner) Rest() []byte { return s.rest }

// Err returns the error that stopped the scan, nil at the end of a
// well-formed message.
func (s *Scanner) Err() error { return s.err }

// Is reports whether the field read by the last Next is field num of wire
// type typ: a field of the declared type, which the decoder reads as that
// field, and not as an unknown one.
func (s *Scanner) Is(num protowire.Number, typ protowire.Type) bool {
	return s.f.Num == num && s.f.Type == typ
}

// Packed calls fn with each value of b, a packed run of scalars of wire
// type typ (varint, fixed32 or fixed64) as a packed repeated field holds. It
// fails on a malformed run, or with fn's error.
func Packed(b []byte, typ protowire.Type, fn func(v uint64) error) error {
	for len(b) > 0 {
		var (
			v uint64
			n int
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		default:
			return fmt.Errorf("wire type %d is not packable", typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := fn(v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
