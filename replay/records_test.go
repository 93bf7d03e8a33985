package replay_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/replay/replaytest"
	"github.com/runlog/runlog/wal"
)

func openExample(t *testing.T) *wal.Log {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wal.bolt")
	replaytest.WriteExample(t, path)
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func seqs(t *testing.T, src replay.Source, f replay.Filter) []uint64 {
	t.Helper()
	var out []uint64
	if err := replay.Records(src, f, func(r *runlogv1.Record) error { out = append(out, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordsFilters(t *testing.T) {
	l := openExample(t)
	all := seqs(t, l, replay.Filter{})
	if len(all) != int(l.LastSeq()) || all[0] != 1 {
		t.Fatalf("unfiltered read %d records of %d", len(all), l.LastSeq())
	}
	recs, _ := l.Read(1, 100, 0)
	var batchOf = map[uint64]time.Time{}
	for _, r := range recs {
		batchOf[r.Seq] = time.Unix(0, r.TimeUnixNano)
	}
	cases := []struct {
		name string
		f    replay.Filter
		want func(r *runlogv1.Record) bool
	}{
		{"from-to", replay.Filter{From: 5, To: 9}, func(r *runlogv1.Record) bool { return r.Seq >= 5 && r.Seq <= 9 }},
		{"kinds", replay.Filter{Kinds: []replay.Kind{replay.KindConfig, replay.KindRewind}}, func(r *runlogv1.Record) bool {
			return r.GetConfig() != nil || r.GetRewind() != nil
		}},
		{"client", replay.Filter{Client: "host-a-2"}, func(r *runlogv1.Record) bool { return r.ClientId == "host-a-2" }},
		{"since", replay.Filter{Since: batchOf[13]}, func(r *runlogv1.Record) bool { return !batchOf[r.Seq].Before(batchOf[13]) }},
		{"until", replay.Filter{Until: batchOf[13]}, func(r *runlogv1.Record) bool { return !batchOf[r.Seq].After(batchOf[13]) }},
		{"all of them", replay.Filter{From: 2, To: 20, Kinds: []replay.Kind{replay.KindHistory}, Client: "host-a-1", Since: batchOf[1]}, func(r *runlogv1.Record) bool {
			return r.Seq >= 2 && r.Seq <= 20 && r.GetHistory() != nil && r.ClientId == "host-a-1"
		}},
	}
	for _, c := range cases {
		var want []uint64
		for _, r := range recs {
			if c.want(r) {
				want = append(want, r.Seq)
			}
		}
		if len(want) == 0 || len(want) == len(recs) {
			t.Fatalf("%s: the example run does not exercise this filter (%d of %d match)", c.name, len(want), len(recs))
		}
		if got := seqs(t, l, c.f); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", c.name, got, want)
		}
	}
}

func TestRecordsStopsAtDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.bolt")
	n := replaytest.WriteExample(t, path)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 9}
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)-1] ^= 1
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []uint64
	err = replay.Records(l, replay.Filter{}, func(r *runlogv1.Record) error { got = append(got, r.Seq); return nil })
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Seq != 9 {
		t.Fatalf("err = %v, want a CorruptError at seq 9", err)
	}
	if len(got) != 8 || n < 9 {
		t.Fatalf("read %d records before the damage, want 8", len(got))
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                          {},
		"2026-11-27":                time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		"2026-11-27T16:42:13":       time.Date(2026, 11, 27, 16, 42, 13, 0, time.UTC),
		"2026-11-27T16:42:13.5Z":    time.Date(2026, 11, 27, 16, 42, 13, 5e8, time.UTC),
		"2026-11-27T18:42:13+02:00": time.Date(2026, 11, 27, 16, 42, 13, 0, time.UTC),
	} {
		got, err := replay.ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "2026-13-01", "27/11/2026"} {
		if got, err := replay.ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v; want an error", in, got)
		}
	}
}
