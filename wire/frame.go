package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// FrameOverhead is the bytes a stored record takes beyond its encoding.
const FrameOverhead = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends a stored record: the CRC-32C (Castagnoli) of rec, 4
// bytes big-endian, then rec.
func AppendFrame(b, rec []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(rec, castagnoli))
	return append(b, rec...)
}

// BeginFrame appends room for a frame's checksum to b, for a record that is
// encoded in place after it; SealFrame then fills it in.
func BeginFrame(b []byte) []byte {
	return append(b, 0, 0, 0, 0)
}

// SealFrame writes the checksum of frame[FrameOverhead:] into the room
// BeginFrame left at the start of frame.
func SealFrame(frame []byte) {
	binary.BigEndian.PutUint32(frame, crc32.Checksum(frame[FrameOverhead:], castagnoli))
}

// ChecksumError is a stored record whose checksum does not match its bytes,
// or that is too short to hold one. It matches ErrChecksum.
type ChecksumError struct {
	Len       int // the stored value's length
	Got, Want uint32
}

func (e *ChecksumError) Error() string {
	if e.Len < FrameOverhead {
		return fmt.Sprintf("value of %d bytes is shorter than its checksum", e.Len)
	}
	return fmt.Sprintf("checksum %08x, want %08x", e.Got, e.Want)
}

func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// Unframe checks a stored record's checksum and returns the record's
// encoding, sharing v. A mismatch is a *ChecksumError.
func Unframe(v []byte) ([]byte, error) {
	if len(v) < FrameOverhead {
		return nil, &ChecksumError{Len: len(v)}
	}
	want := binary.BigEndian.Uint32(v)
	if got := crc32.Checksum(v[FrameOverhead:], castagnoli); got != want {
		return nil, &ChecksumError{Len: len(v), Got: got, Want: want}
	}
	return v[FrameOverhead:], nil
}
