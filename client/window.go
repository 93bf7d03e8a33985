package client

// entry is one published record that the service has not acknowledged yet.
type entry struct {
	data []byte // the encoded record, a slice of an arena chunk
	at   int64  // when it was published, nanoseconds since the client started
}

// window holds a run's un-acked records in client_seq order: the oldest has
// client_seq base, the newest base+n-1. It is a ring that grows by doubling
// up to the capacity the limit needs, so an idle run costs little. Not safe
// for concurrent use; the run's mutex guards it.
type window struct {
	ring  []entry // len is a power of two
	head  int     // index of the oldest entry
	n     int     // entries held
	base  uint64  // client_seq of the oldest entry
	bytes int     // sum of len(data) over the entries

	// chunk is the arena records are encoded into. Slices of it are handed to
	// the sender; a full chunk is dropped, never reused, so bytes already
	// handed out are never written again, and the garbage collector frees a
	// chunk once the last entry pointing into it has been acknowledged.
	chunk []byte
}

const (
	minRing   = 256
	chunkSize = 256 << 10
)

func newWindow(next uint64) window {
	return window{base: next}
}

// next returns the client_seq the next pushed record gets.
func (w *window) next() uint64 { return w.base + uint64(w.n) }

// alloc returns n bytes of arena memory for one record. Appending to the
// result past n would reallocate rather than overwrite a neighbour.
func (w *window) alloc(n int) []byte {
	if n > chunkSize/4 {
		return make([]byte, 0, n)
	}
	if cap(w.chunk)-len(w.chunk) < n {
		w.chunk = make([]byte, 0, chunkSize)
	}
	off := len(w.chunk)
	w.chunk = w.chunk[:off+n]
	return w.chunk[off : off : off+n]
}

// push appends a record and returns its client_seq.
func (w *window) push(data []byte, at int64) uint64 {
	if w.n == len(w.ring) {
		w.grow()
	}
	w.ring[(w.head+w.n)&(len(w.ring)-1)] = entry{data: data, at: at}
	w.n++
	w.bytes += len(data)
	return w.base + uint64(w.n) - 1
}

func (w *window) grow() {
	size := 2 * len(w.ring)
	if size < minRing {
		size = minRing
	}
	ring := make([]entry, size)
	for i := 0; i < w.n; i++ {
		ring[i] = w.ring[(w.head+i)&(len(w.ring)-1)]
	}
	w.ring, w.head = ring, 0
}

// at returns the entry with client_seq seq, which must be held.
func (w *window) at(seq uint64) *entry {
	return &w.ring[(w.head+int(seq-w.base))&(len(w.ring)-1)]
}

// ack drops every entry with client_seq <= seq and calls fn, when not nil,
// with each dropped entry. It returns how many entries it dropped.
func (w *window) ack(seq uint64, fn func(*entry)) int {
	if seq < w.base {
		return 0
	}
	k := int(seq - w.base + 1)
	if k > w.n {
		k = w.n
	}
	for i := 0; i < k; i++ {
		e := &w.ring[w.head]
		if fn != nil {
			fn(e)
		}
		w.bytes -= len(e.data)
		*e = entry{}
		w.head = (w.head + 1) & (len(w.ring) - 1)
	}
	w.n -= k
	w.base += uint64(k)
	return k
}

// bytesFrom returns the encoded size of the entries from client_seq seq on.
func (w *window) bytesFrom(seq uint64) int {
	if seq < w.base {
		seq = w.base
	}
	total := 0
	for s := seq; s < w.next(); s++ {
		total += len(w.at(s).data)
	}
	return total
}
