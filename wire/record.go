package wire

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrClientID is a record whose client_id is not valid UTF-8: the decoder
// refuses it.
var ErrClientID = errors.New("wire: client_id is not valid UTF-8")

// Header is the top level of an encoded runlog.v1.Record with its payload
// left encoded.
type Header struct {
	Seq         uint64
	ID          []byte
	Time        int64
	ClientID    []byte
	ClientSeq   uint64
	Synthesized bool
	// Kind and Payload are the last payload field's kind and encoded
	// message: the oneof member the decoder keeps.
	Kind    Kind
	Payload []byte
	// Payloads counts the payload fields. Encoders write one; with more,
	// the decoder merges those of the last one's kind, so only a full
	// decode gives the payload.
	Payloads int
}

// ParseHeader reads the top level of an encoded Record as proto.Unmarshal
// does: the last occurrence of a field wins, and a field whose wire type is
// not the declared one is an unknown field, skipped. It fails only on input
// that proto.Unmarshal refuses (a malformed field). It checks neither the
// payload nor that client_id is UTF-8, which the decoder also requires:
// CheckClientID does that for callers that must fail where the decoder
// fails. ID, ClientID and Payload share b.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	s := NewScanner(b)
	for s.Next() {
		switch s.f.Type {
		case protowire.VarintType:
			switch s.f.Num {
			case RecordSeq:
				h.Seq = s.f.U
			case RecordTime:
				h.Time = int64(s.f.U)
			case RecordClientSeq:
				h.ClientSeq = s.f.U
			case RecordSynthesized:
				h.Synthesized = s.f.U != 0
			}
		case protowire.BytesType:
			switch num := s.f.Num; {
			case num >= PayloadFirst && num <= PayloadLast:
				h.Kind, h.Payload = KindOfField(num), s.f.B
				h.Payloads++
			case num == RecordID:
				h.ID = s.f.B
			case num == RecordClientID:
				h.ClientID = s.f.B
			}
		}
	}
	return h, s.Err()
}

// CheckClientID returns ErrClientID when the header's client_id is not
// valid UTF-8: the decoder refuses such a record.
func (h *Header) CheckClientID() error {
	if !utf8.Valid(h.ClientID) {
		return ErrClientID
	}
	return nil
}

// Step reads the step of an encoded HistoryRow or Rewind (field 1 of both)
// as the decoder does: the last occurrence wins, 0 when there is none.
func Step(p []byte) (int64, error) {
	var step int64
	s := NewScanner(p)
	for s.Next() {
		if s.Is(HistoryStep, protowire.VarintType) {
			step = int64(s.f.U)
		}
	}
	return step, s.Err()
}

// IsHeader reports whether Record field num is a header field (seq to
// synthesized), which the service sets.
func IsHeader(num protowire.Number) bool {
	return num >= HeaderFirst && num <= HeaderLast
}

// AppendHeader appends the header fields the log stamps (seq, id, time)
// and the client's (client_id and client_seq, each when set) in field
// order, as proto.Marshal writes them. A Record's remaining fields follow.
func AppendHeader(b []byte, seq uint64, id []byte, time int64, clientID string, clientSeq uint64) []byte {
	b = protowire.AppendTag(b, RecordSeq, protowire.VarintType)
	b = protowire.AppendVarint(b, seq)
	b = protowire.AppendTag(b, RecordID, protowire.BytesType)
	b = protowire.AppendBytes(b, id)
	b = protowire.AppendTag(b, RecordTime, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(time))
	return AppendClient(b, clientID, clientSeq)
}

// AppendClient appends client_id and client_seq, each when set.
func AppendClient(b []byte, clientID string, clientSeq uint64) []byte {
	if clientID != "" {
		b = protowire.AppendTag(b, RecordClientID, protowire.BytesType)
		b = protowire.AppendString(b, clientID)
	}
	if clientSeq != 0 {
		b = protowire.AppendTag(b, RecordClientSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, clientSeq)
	}
	return b
}
