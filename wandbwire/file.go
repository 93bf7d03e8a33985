package wandbwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	// BlockSize is the LevelDB log block size.
	BlockSize   = 32 << 10
	chunkHeader = 7

	chunkFull   = 1
	chunkFirst  = 2
	chunkMiddle = 3
	chunkLast   = 4

	fileMagic   = 0xBEE1
	fileVersion = 0
	// MaxRecordBytes bounds one reassembled record when reading.
	MaxRecordBytes = 256 << 20
)

// fileHeader is the 7-byte header of a .wandb file.
var fileHeader = [chunkHeader]byte{':', 'W', '&', 'B', fileMagic & 0xff, fileMagic >> 8, fileVersion}

// ErrNotWandb means the file does not start with the .wandb header.
var ErrNotWandb = errors.New("wandbwire: not a .wandb file")

// CorruptError says where reading a .wandb file stopped: Offset is the byte
// offset of the chunk that could not be read, Record the 0-based index of the
// record it belonged to (the number of records read intact before it).
type CorruptError struct {
	Offset int64
	Record int
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wandb log damaged at byte %d (record %d): %v", e.Offset, e.Record, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Writer writes records in the .wandb format. It is not safe for concurrent
// use. Nothing reaches w until Flush, or until its buffer fills.
type Writer struct {
	w   *bufio.Writer
	off int64 // bytes written so far, header included
}

// NewWriter writes the file header to w and returns a writer for records.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.Write(fileHeader[:]); err != nil {
		return nil, fmt.Errorf("write wandb header: %w", err)
	}
	return &Writer{w: bw, off: chunkHeader}, nil
}

// Write appends one record's bytes, split across blocks as needed.
func (w *Writer) Write(rec []byte) error {
	first := true
	for {
		left := BlockSize - int(w.off%BlockSize)
		if left < chunkHeader {
			var pad [chunkHeader]byte
			if _, err := w.w.Write(pad[:left]); err != nil {
				return fmt.Errorf("write wandb block padding: %w", err)
			}
			w.off += int64(left)
			left = BlockSize
		}
		n := min(len(rec), left-chunkHeader)
		last := n == len(rec)
		var typ byte
		switch {
		case first && last:
			typ = chunkFull
		case first:
			typ = chunkFirst
		case last:
			typ = chunkLast
		default:
			typ = chunkMiddle
		}
		var h [chunkHeader]byte
		binary.LittleEndian.PutUint32(h[:4], chunkCRC(typ, rec[:n]))
		binary.LittleEndian.PutUint16(h[4:6], uint16(n))
		h[6] = typ
		if _, err := w.w.Write(h[:]); err != nil {
			return fmt.Errorf("write wandb chunk: %w", err)
		}
		if _, err := w.w.Write(rec[:n]); err != nil {
			return fmt.Errorf("write wandb chunk: %w", err)
		}
		w.off += int64(chunkHeader + n)
		rec = rec[n:]
		first = false
		if last {
			return nil
		}
	}
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("flush wandb log: %w", err)
	}
	return nil
}

func chunkCRC(typ byte, p []byte) uint32 {
	c := crc32.Update(0, crc32.IEEETable, []byte{typ})
	return crc32.Update(c, crc32.IEEETable, p)
}

// Reader reads records from a .wandb file. It is not safe for concurrent
// use.
type Reader struct {
	r       *bufio.Reader
	off     int64 // offset of the next unread byte
	records int   // records returned so far
	rec     []byte
	chunk   []byte
}

// NewReader checks the file header and returns a reader positioned at the
// first record.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var h [chunkHeader]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, fmt.Errorf("read wandb header: %w", ErrNotWandb)
	}
	if h != fileHeader {
		return nil, fmt.Errorf("header % x: %w", h[:], ErrNotWandb)
	}
	return &Reader{r: br, off: chunkHeader}, nil
}

// Offset is the byte offset just past the last record returned.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next record's bytes, valid until the next call. It
// returns io.EOF at a clean end (a file may end in block padding) and a
// *CorruptError at a damaged or truncated chunk.
func (r *Reader) Next() ([]byte, error) {
	r.rec = r.rec[:0]
	inRecord := false
	recStart := r.off
	for {
		left := BlockSize - int(r.off%BlockSize)
		if left < chunkHeader {
			if _, err := r.r.Discard(left); err != nil {
				return r.end(inRecord, recStart, err)
			}
			r.off += int64(left)
			continue
		}
		var h [chunkHeader]byte
		n, err := io.ReadFull(r.r, h[:])
		if err != nil {
			if n == 0 && err == io.EOF && !inRecord {
				return nil, io.EOF
			}
			return nil, r.corrupt(recStart, inRecord, fmt.Errorf("truncated chunk header: %w", io.ErrUnexpectedEOF))
		}
		crc := binary.LittleEndian.Uint32(h[:4])
		length := int(binary.LittleEndian.Uint16(h[4:6]))
		typ := h[6]
		if typ == 0 && length == 0 && crc == 0 {
			// Zeros: the rest of the block is padding (a writer that
			// pre-extends or pads its last block).
			if _, err := r.r.Discard(left - chunkHeader); err != nil {
				return r.end(inRecord, recStart, err)
			}
			r.off += int64(left)
			continue
		}
		if chunkHeader+length > left {
			return nil, r.corrupt(r.off, inRecord, fmt.Errorf("chunk of %d bytes crosses its block", length))
		}
		if cap(r.chunk) < length {
			r.chunk = make([]byte, length)
		}
		p := r.chunk[:length]
		if _, err := io.ReadFull(r.r, p); err != nil {
			return nil, r.corrupt(r.off, inRecord, fmt.Errorf("truncated chunk of %d bytes: %w", length, io.ErrUnexpectedEOF))
		}
		if got := chunkCRC(typ, p); got != crc {
			return nil, r.corrupt(r.off, inRecord, fmt.Errorf("chunk checksum %08x, want %08x", got, crc))
		}
		switch {
		case typ == chunkFull && !inRecord:
			r.off += int64(chunkHeader + length)
			r.rec = append(r.rec, p...)
			r.records++
			return r.rec, nil
		case typ == chunkFirst && !inRecord:
			recStart = r.off
			inRecord = true
		case typ == chunkMiddle && inRecord:
		case typ == chunkLast && inRecord:
			r.off += int64(chunkHeader + length)
			r.rec = append(r.rec, p...)
			r.records++
			return r.rec, nil
		default:
			return nil, r.corrupt(r.off, inRecord, fmt.Errorf("chunk type %d out of order", typ))
		}
		if len(r.rec)+length > MaxRecordBytes {
			return nil, r.corrupt(recStart, inRecord, fmt.Errorf("record larger than %d bytes", MaxRecordBytes))
		}
		r.rec = append(r.rec, p...)
		r.off += int64(chunkHeader + length)
	}
}

func (r *Reader) end(inRecord bool, recStart int64, err error) ([]byte, error) {
	if err == io.EOF && !inRecord {
		return nil, io.EOF
	}
	return nil, r.corrupt(recStart, inRecord, fmt.Errorf("truncated: %w", io.ErrUnexpectedEOF))
}

// corrupt reports a problem at offset; a record cut inside is reported at
// its first chunk.
func (r *Reader) corrupt(off int64, _ bool, err error) error {
	return &CorruptError{Offset: off, Record: r.records, Err: err}
}
