package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The page walk below reads the bbolt file with pread, never through a memory
// map, and bounds-checks everything it reads, so that damage is found before
// bbolt touches it. bbolt trusts its pages: a writable open walks every page
// in a goroutine of its own (the freelist is rebuilt at open), and a damaged
// page there, or a page past the end of a truncated file, kills the process
// with a panic nobody can recover or a SIGBUS. Open runs this walk first and
// opens for writing only a file that passed it.
//
// The format facts (bbolt 1.x, little-endian hosts): a page starts with a
// 16-byte header {id u64, flags u16, count u16, overflow u32}; pages 0 and 1
// are metas {magic, version, pageSize, flags u32; root {pgid, seq u64};
// freelist, pgid, txid, checksum u64} where checksum is FNV-64a of what
// precedes it; branch elements are {pos, ksize u32, pgid u64} and leaf
// elements {flags, pos, ksize, vsize u32}, pos counted from the element; a
// bucket value is {root pgid, seq u64} followed, when root is 0, by an inline
// leaf page.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	bucketLeafFlag   = 0x01
	bucketHeaderSize = 16
	maxTreeDepth     = 64
)

// fileDamage is what the page walk found.
type fileDamage struct {
	// FirstBad is the first record sequence that cannot be reached intact
	// (0: the records tree is whole).
	FirstBad uint64
	// Err describes the first damage found, in the records or elsewhere.
	Err error
	// NoMeta is set when neither meta page is valid: nothing can be read.
	NoMeta bool
	// Kind is the Problem kind Verify reports it as.
	Kind string
}

// pageFile reads the pages of a bbolt file.
type pageFile struct {
	r     io.ReaderAt
	size  int64
	psize int
	hw    uint64 // the meta's page high-water: pages 0..hw-1 exist
	seen  map[uint64]bool
}

// walkFile checks the file at path page by page. It returns a nil damage for
// a sound file (or one too new to have pages: bbolt writes the first four
// pages at creation) and an error only when the file cannot be read.
func walkFile(path string) (*fileDamage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, nil // a new file; bbolt initialises it
	}
	return walkPages(f, fi.Size()), nil
}

func walkPages(r io.ReaderAt, size int64) *fileDamage {
	pf := &pageFile{r: r, size: size, seen: map[uint64]bool{}}
	root, err := pf.meta()
	if pf.hw == 0 {
		return &fileDamage{FirstBad: 1, Err: err, NoMeta: true, Kind: ProblemBolt}
	}
	d := fileDamage{Err: err, Kind: ProblemBolt}
	expect := uint64(1)
	err = pf.walk(root, 0, func(name, v []byte, bucket bool) error {
		if !bucket {
			return fmt.Errorf("top-level key %q is not a bucket", name)
		}
		isRecords := string(name) == string(bucketRecords)
		err := pf.bucket(v, func(k, _ []byte, sub bool) error {
			if !isRecords {
				return nil
			}
			if sub {
				return fmt.Errorf("seq %d: a bucket among the records", expect)
			}
			if err := checkKey(k, expect); err != nil {
				d.Kind = ProblemGap
				if len(k) != 8 {
					d.Kind = ProblemSeq
				}
				return err
			}
			expect++
			return nil
		})
		if err != nil && isRecords {
			d.FirstBad = expect
		}
		if err != nil && d.Err == nil {
			d.Err = fmt.Errorf("bucket %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return &fileDamage{FirstBad: 1, Err: err, Kind: ProblemBolt}
	}
	if d.Err == nil {
		return nil
	}
	return &d
}

// checkKey checks that a records key is the 8-byte seq want. Every reader
// calls it, so that they all name the same first bad seq.
func checkKey(k []byte, want uint64) error {
	if len(k) != 8 {
		return fmt.Errorf("seq %d: key of %d bytes, want 8", want, len(k))
	}
	if got := binary.BigEndian.Uint64(k); got != want {
		return fmt.Errorf("seq %d: found key %d in its place", want, got)
	}
	return nil
}

// meta picks the newest valid meta page, checks the file is as long as it
// says, and returns the root bucket's page.
func (pf *pageFile) meta() (uint64, error) {
	var best []byte
	var errs []error
	for i := range 2 {
		// Meta 1 sits one page in; the page size is in the meta itself.
		off := int64(0)
		if i == 1 {
			if best != nil {
				off = int64(binary.LittleEndian.Uint32(best[8:]))
			} else {
				off = 4096
			}
		}
		m := make([]byte, 64)
		if _, err := pf.r.ReadAt(m, off+pageHeaderSize); err != nil {
			errs = append(errs, fmt.Errorf("meta %d: %w", i, err))
			continue
		}
		h := fnv.New64a()
		h.Write(m[:56])
		switch {
		case binary.LittleEndian.Uint32(m) != boltMagic:
			errs = append(errs, fmt.Errorf("meta %d: bad magic", i))
		case binary.LittleEndian.Uint32(m[4:]) != boltVersion:
			errs = append(errs, fmt.Errorf("meta %d: unknown version", i))
		case h.Sum64() != binary.LittleEndian.Uint64(m[56:]):
			errs = append(errs, fmt.Errorf("meta %d: bad checksum", i))
		default:
			if best == nil || binary.LittleEndian.Uint64(m[48:]) > binary.LittleEndian.Uint64(best[48:]) {
				best = m
			}
		}
	}
	if best == nil {
		return 0, fmt.Errorf("no valid meta page: %w", errors.Join(errs...))
	}
	pf.psize = int(binary.LittleEndian.Uint32(best[8:]))
	if pf.psize < 512 || pf.psize > 1<<20 || pf.psize&(pf.psize-1) != 0 {
		return 0, fmt.Errorf("meta: page size %d", pf.psize)
	}
	root := binary.LittleEndian.Uint64(best[16:])
	pf.hw = binary.LittleEndian.Uint64(best[40:])
	if have := uint64(pf.size / int64(pf.psize)); pf.hw > have {
		// Walk what is there: the records before the cut are still good.
		err := fmt.Errorf("file of %d bytes is shorter than the %d pages of %d bytes its meta names (truncated)", pf.size, pf.hw, pf.psize)
		pf.hw = have
		return root, err
	}
	return root, nil
}

// page reads page id with its overflow pages.
func (pf *pageFile) page(id uint64) ([]byte, error) {
	if id < 2 || id >= pf.hw {
		return nil, fmt.Errorf("page %d is outside the file's %d pages", id, pf.hw)
	}
	if pf.seen[id] {
		return nil, fmt.Errorf("page %d is referenced twice", id)
	}
	pf.seen[id] = true
	hdr := make([]byte, pageHeaderSize)
	if _, err := pf.r.ReadAt(hdr, int64(id)*int64(pf.psize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := binary.LittleEndian.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d: header says page %d", id, got)
	}
	over := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+over >= pf.hw {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the file's %d pages", id, over, pf.hw)
	}
	buf := make([]byte, (over+1)*uint64(pf.psize))
	if _, err := pf.r.ReadAt(buf, int64(id)*int64(pf.psize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// bucket walks the bucket whose value v is, inline or not.
func (pf *pageFile) bucket(v []byte, fn func(k, v []byte, bucket bool) error) error {
	if len(v) < bucketHeaderSize {
		return fmt.Errorf("bucket value of %d bytes", len(v))
	}
	root := binary.LittleEndian.Uint64(v)
	if root == 0 {
		return pf.elements(v[bucketHeaderSize:], 0, leafPageFlag, fn)
	}
	return pf.walk(root, 0, fn)
}

// walk visits the leaf elements under page id in key order.
func (pf *pageFile) walk(id uint64, depth int, fn func(k, v []byte, bucket bool) error) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d: tree deeper than %d", id, maxTreeDepth)
	}
	p, err := pf.page(id)
	if err != nil {
		return err
	}
	return pf.elements(p, depth, 0, fn)
}

// elements visits the elements of page p; want, when set, is the only page
// type allowed (inline buckets hold one leaf page).
func (pf *pageFile) elements(p []byte, depth int, want uint16, fn func(k, v []byte, bucket bool) error) error {
	if len(p) < pageHeaderSize {
		return fmt.Errorf("page of %d bytes", len(p))
	}
	id := binary.LittleEndian.Uint64(p)
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if want != 0 && flags != want {
		return fmt.Errorf("inline page has flags %#x", flags)
	}
	if pageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	field := func(i, off int) uint32 {
		return binary.LittleEndian.Uint32(p[pageHeaderSize+i*elementSize+off:])
	}
	slice := func(i int, pos, n uint32) ([]byte, error) {
		start := uint64(pageHeaderSize+i*elementSize) + uint64(pos)
		if end := start + uint64(n); end > uint64(len(p)) {
			return nil, fmt.Errorf("page %d: element %d runs past the page", id, i)
		}
		return p[start : start+uint64(n)], nil
	}
	switch flags {
	case branchPageFlag:
		for i := range count {
			if _, err := slice(i, field(i, 0), field(i, 4)); err != nil {
				return err
			}
			child := binary.LittleEndian.Uint64(p[pageHeaderSize+i*elementSize+8:])
			if err := pf.walk(child, depth+1, fn); err != nil {
				return err
			}
		}
		return nil
	case leafPageFlag:
		for i := range count {
			pos, ks, vs := field(i, 4), field(i, 8), field(i, 12)
			k, err := slice(i, pos, ks)
			if err != nil {
				return err
			}
			v, err := slice(i, pos+ks, vs)
			if err != nil {
				return err
			}
			if err := fn(k, v, field(i, 0)&bucketLeafFlag != 0); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("page %d: unexpected type (flags %#x)", id, flags)
	}
}
