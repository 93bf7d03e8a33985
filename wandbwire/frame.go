package wandbwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

const (
	frameMagic  = 'W'
	frameHeader = 5
	// MaxFrameBytes bounds one frame read from a socket.
	MaxFrameBytes = 64 << 20
)

// Errors of the frame reader.
var (
	// ErrBadMagic means a frame did not start with 'W'.
	ErrBadMagic = errors.New("wandbwire: frame does not start with 'W'")
	// ErrFrameTooLarge means a frame announced more than MaxFrameBytes.
	ErrFrameTooLarge = errors.New("wandbwire: frame too large")
)

// ReadFrame reads one frame's payload into buf (grown as needed) and returns
// it. io.EOF means the peer closed between frames; a frame cut short is
// io.ErrUnexpectedEOF.
func ReadFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return buf[:0], err
	}
	if h[0] != frameMagic {
		return buf[:0], fmt.Errorf("read frame: %w (got 0x%02x)", ErrBadMagic, h[0])
	}
	n := binary.LittleEndian.Uint32(h[1:])
	if n > MaxFrameBytes {
		return buf[:0], fmt.Errorf("read frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf[:0], fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	return buf, nil
}

// AppendFrame appends m as one frame to dst.
func AppendFrame(dst []byte, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, frameMagic, 0, 0, 0, 0)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], fmt.Errorf("encode frame: %w", err)
	}
	binary.LittleEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-frameHeader))
	return dst, nil
}
