package store_test

import (
	"encoding/hex"
	"testing"

	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
)

// TestDigestFormat pins the digest format that store/doc.go documents and
// that a sender may compute on its own: SHA-256 over the records in order,
// each preceded by its length as a 4-byte big-endian number. The vectors
// were computed outside Go:
//
//	printf '\x00\x00\x00\x01a\x00\x00\x00\x02bc' | sha256sum
//	printf '' | sha256sum
func TestDigestFormat(t *testing.T) {
	cases := []struct {
		name    string
		records [][]byte
		want    string
	}{
		{"no records", nil, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"a, bc", [][]byte{[]byte("a"), []byte("bc")}, "b534ce16ac9c8b36823f39a395ce8e0e3c7ad9605b82b5444f18cadacd217a5d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := store.NewDigest()
			for _, r := range tc.records {
				d.Add(r)
			}
			if got := hex.EncodeToString(d.Sum()); got != tc.want {
				t.Errorf("store.Digest = %s, want %s", got, tc.want)
			}
			// The tests' own digest, which every store and sync test
			// compares the store's with, follows the same format.
			if got := hex.EncodeToString(storetest.Digest(tc.records)); got != tc.want {
				t.Errorf("storetest.Digest = %s, want %s", got, tc.want)
			}
		})
	}
}
