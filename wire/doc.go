// Package wire owns the wire format of runlog.v1.Record as the hot paths
// read it without unmarshalling: the field numbers, the one scanner that
// splits a message into fields, the readers built on it, and the framing of
// a stored record. It imports only the standard library, protowire and the
// generated code.
//
// # Format
//
// A record is the protobuf encoding of runlog.v1.Record
// (proto/runlog/v1/record.proto). Its top level is the header, fields 1 to
// 6 (seq, id, time_unix_nano, client_id, client_seq, synthesized), and the
// payload oneof, fields 10 (run) to 20 (exit), one per Kind in Kind order.
// Encoders write fields in number order: the header first, then the one
// payload; a history row's step before its items; an item's key before its
// value.
//
// A stored record, in a run's log (package wal) and in the hub's store, is
// framed:
//
//	[4]byte  CRC-32C (Castagnoli) of the record, big-endian
//	[]byte   the record
//
// # Invariants
//
//   - Every field number the fast paths use is a constant in fields.go,
//     checked against the generated descriptor by a test. Adding a payload
//     kind means a field in record.proto and a line in that file's Kind list.
//   - Scanner is the only code that splits a message into fields; the other
//     readers, here and in their callers, are built on it.
//   - The readers agree with proto.Unmarshal, the reference. ParseHeader and
//     Step read what the decoder reads: the last occurrence of a scalar
//     wins, a field whose wire type is not the declared one is an unknown
//     field (field 20 sent as a varint is not an exit), and they fail only
//     on input the decoder refuses. Checking that client_id is UTF-8 is
//     left to Header.CheckClientID, for the callers that must fail exactly
//     where the decoder fails. The layout readers (SplitRow,
//     SplitItem, ParseValue, ItemsOK, SplitUpdate) take only the layouts
//     encoders write and anything else is refused, never misread: their
//     callers then decode in full. The Fuzz targets check each against
//     proto.Unmarshal.
//   - Nothing here allocates on a well-formed input; returned slices share
//     the input.
//
// # Caveats
//
// ParseHeader does not look inside the payload: a record whose header
// parses may still fail to decode. Merged payloads (the same payload field
// twice, which no encoder writes) are reported through Header.Payloads and
// left to the decoder.
package wire
