package wandbwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
)

func writeRecords(t *testing.T, sizes []int) ([]byte, [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for i, n := range sizes {
		rec := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		recs = append(recs, rec)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), recs
}

func readAll(data []byte) ([][]byte, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, append([]byte(nil), rec...))
	}
}

func TestRoundTrip(t *testing.T) {
	// Sizes chosen to end exactly at a block edge, leave less than a
	// header at a block's tail, and span several blocks.
	sizes := []int{0, 1, BlockSize - 2*chunkHeader - 1, 3, 100, 5 * BlockSize, BlockSize - chunkHeader, 1}
	for i := 0; i < 2000; i++ {
		sizes = append(sizes, 10+i%300)
	}
	data, recs := writeRecords(t, sizes)
	if !bytes.Equal(data[:7], []byte{':', 'W', '&', 'B', 0xe1, 0xbe, 0}) {
		t.Fatalf("header % x", data[:7])
	}
	got, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

func TestDamage(t *testing.T) {
	sizes := []int{100, 100, 3 * BlockSize, 100, 100}
	data, _ := writeRecords(t, sizes)
	offs := []int64{7}
	for _, n := range sizes[:len(sizes)-1] {
		_ = n
	}
	// Offsets of the records' first chunks, from a clean read.
	r, _ := NewReader(bytes.NewReader(data))
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		offs = append(offs, r.Offset())
	}
	for _, tc := range []struct {
		name    string
		mutate  func([]byte) []byte
		records int
	}{
		{"truncated in last record", func(b []byte) []byte { return b[:len(b)-10] }, 4},
		{"truncated in chunk header", func(b []byte) []byte { return b[:offs[4]+3] }, 4},
		{"truncated inside multi-block record", func(b []byte) []byte { return b[:offs[2]+BlockSize] }, 2},
		{"flipped payload byte", func(b []byte) []byte { b[offs[1]+20] ^= 1; return b }, 1},
		{"flipped middle chunk", func(b []byte) []byte { b[offs[2]+BlockSize+100] ^= 1; return b }, 2},
		{"bad type", func(b []byte) []byte { b[offs[3]+6] = 9; return b }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.mutate(append([]byte(nil), data...)))
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CorruptError", err)
			}
			if len(got) != tc.records || ce.Record != tc.records {
				t.Fatalf("read %d records, error names record %d; want %d (%v)", len(got), ce.Record, tc.records, err)
			}
			if ce.Offset < offs[tc.records] || ce.Offset >= offs[tc.records+1] {
				t.Fatalf("offset %d outside record %d [%d, %d)", ce.Offset, tc.records, offs[tc.records], offs[tc.records+1])
			}
		})
	}
}

func TestFrames(t *testing.T) {
	var b []byte
	var err error
	for i := 0; i < 3; i++ {
		req := &wandbv1.ServerRequest{RequestId: fmt.Sprint("id", i)}
		if b, err = AppendFrame(b, req); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(bytes.NewReader(b))
	var buf []byte
	for i := 0; i < 3; i++ {
		if buf, err = ReadFrame(br, buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadFrame(br, buf); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
	short := bufio.NewReader(bytes.NewReader(b[:len(b)-1]))
	for i := 0; i < 2; i++ {
		if _, err := ReadFrame(short, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadFrame(short, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v, want ErrUnexpectedEOF", err)
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader([]byte("X\x00\x00\x00\x00"))), nil); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("bad magic: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	data, _ := func() ([]byte, [][]byte) {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf)
		w.Write([]byte("hello"))
		w.Write(bytes.Repeat([]byte("x"), BlockSize))
		w.Flush()
		return buf.Bytes(), nil
	}()
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		readAll(b)
	})
}
