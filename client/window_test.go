package client

import (
	"fmt"
	"testing"
)

func TestWindowRing(t *testing.T) {
	w := newWindow(11) // a resumed handle: client_seq 1..10 were acked before
	put := func(n int) {
		for i := 0; i < n; i++ {
			seq := w.next()
			d := fmt.Appendf(w.alloc(8), "%08d", seq)
			if got := w.push(d, int64(seq)); got != seq {
				t.Fatalf("push returned seq %d, want %d", got, seq)
			}
		}
	}
	check := func(from, to uint64) {
		t.Helper()
		if w.base != from || w.next() != to+1 {
			t.Fatalf("window holds %d..%d, want %d..%d", w.base, w.next()-1, from, to)
		}
		for s := from; s <= to; s++ {
			e := w.at(s)
			if want := fmt.Sprintf("%08d", s); string(e.data) != want || e.at != int64(s) {
				t.Fatalf("entry %d = %q at %d", s, e.data, e.at)
			}
		}
		if w.bytes != int(to+1-from)*8 {
			t.Fatalf("bytes = %d, want %d", w.bytes, int(to+1-from)*8)
		}
		if got := w.bytesFrom(from); got != w.bytes {
			t.Fatalf("bytesFrom(base) = %d, want %d", got, w.bytes)
		}
	}

	put(200)
	check(11, 210)
	var seen []int64
	if n := w.ack(60, func(e *entry) { seen = append(seen, e.at) }); n != 50 {
		t.Fatalf("ack dropped %d, want 50", n)
	}
	if len(seen) != 50 || seen[0] != 11 || seen[49] != 60 {
		t.Fatalf("ack visited %d entries from %v", len(seen), seen[:1])
	}
	check(61, 210)
	// Wrap around the ring, then grow it while wrapped.
	put(100)
	check(61, 310)
	put(1000)
	check(61, 1310)
	if n := w.ack(60, nil); n != 0 {
		t.Fatalf("re-ack of an old seq dropped %d", n)
	}
	if n := w.ack(5000, nil); n != 1250 {
		t.Fatalf("ack past the end dropped %d, want 1250", n)
	}
	if w.n != 0 || w.bytes != 0 || w.next() != 1311 {
		t.Fatalf("after acking all: n=%d bytes=%d next=%d", w.n, w.bytes, w.next())
	}
	put(3)
	check(1311, 1313)
}

func TestWindowAllocDoesNotOverlap(t *testing.T) {
	var w window
	a := w.alloc(4)
	b := w.alloc(4)
	a = append(a, "aaaa"...)
	b = append(b, "bbbb"...)
	// Appending past the reservation must not reach the neighbour.
	a = append(a, 'x')
	if string(b) != "bbbb" || string(a) != "aaaax" {
		t.Fatalf("a=%q b=%q", a, b)
	}
	big := w.alloc(chunkSize)
	if cap(big) != chunkSize {
		t.Fatalf("big record got cap %d", cap(big))
	}
}
