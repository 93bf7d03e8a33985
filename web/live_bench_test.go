package web_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runlog/runlog/hub"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/web"
)

// BenchmarkLiveIngest measures the hub's ingest with a run page open on the
// run being synced, against the same sync with no page: a sender pushes a
// run of 200,000 10-key history rows from its wal into a hub on loopback
// (bbolt store, fsync on), while an SSE client follows /api/runs/{id}/live
// as the page does (and fetches the charts again when an update says
// reload). Each iteration syncs the run twice, with and without
// the page, in alternating order, so that the ratio pairs runs made under
// the same load:
//
//	records/s        ingest with the page open
//	records/s-alone  ingest without it
//	open/alone       their ratio (issue 11 asks for at least 0.9)
func BenchmarkLiveIngest(b *testing.B) {
	const rows = 200_000
	l, err := wal.Open(filepath.Join(b.TempDir(), "wal.bolt"), wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	storetest.Write(b, l, storetest.Run{Rows: rows, Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}})
	first := make([][]byte, 0, 1)
	if err := l.Scan(1, func(seq uint64, data []byte) error {
		first = append(first, append([]byte(nil), data...))
		return errStopScan
	}); err != nil && err != errStopScan {
		b.Fatal(err)
	}
	var open, alone time.Duration
	events := 0
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			page := (i+j)%2 == 0
			d, n := syncWithPage(b, l, fmt.Sprintf("run-%d-%d", i, j), first, page)
			if page {
				open += d
				events += n
			} else {
				alone += d
			}
		}
	}
	b.StopTimer()
	if events < b.N {
		b.Fatalf("the page got %d live updates in %d syncs", events, b.N)
	}
	recs := float64(b.N) * float64(l.LastSeq())
	b.ReportMetric(recs/open.Seconds(), "records/s")
	b.ReportMetric(recs/alone.Seconds(), "records/s-alone")
	b.ReportMetric(alone.Seconds()/open.Seconds(), "open/alone")
	b.ReportMetric(float64(events)/float64(b.N), "updates/sync")
}

var errStopScan = fmt.Errorf("stop")

// syncWithPage pushes l's run into a new hub as id and returns how long
// the sync took and, with page set, how many live updates the page got. The
// hub holds the run's first record before the page opens (the page of an
// unknown run is a 404), and the page is open before the sync starts.
func syncWithPage(b *testing.B, l *wal.Log, id string, first [][]byte, page bool) (time.Duration, int) {
	b.Helper()
	b.StopTimer()
	h := sendertest.StartHub(b, hub.Options{})
	ctx := context.Background()
	if _, err := h.Store.Append(ctx, id, first); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.NewHubSource(h.Store), web.Options{}))
	defer srv.Close()
	updates := make(chan int, 1)
	if page {
		resp, err := http.Get(srv.URL + "/api/runs/" + id + "/live?seq=1")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("live: %s", resp.Status)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			b.Fatalf("live: %v", err)
		}
		// The page reads until the run's final update ends the stream.
		go func() {
			n := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					updates <- n
					return
				}
				if !strings.HasPrefix(line, "data: ") {
					continue
				}
				n++
				// As the page does: an update that says reload fetches
				// the charts again.
				if strings.Contains(line, `"reload":true`) {
					get(b, srv.URL+"/api/runs/"+id+"/chart?points=600")
				}
			}
		}()
	} else {
		updates <- 0
	}
	up := h.Dial(sender.HubOptions{})
	s := sender.New(l, id, h.URL, up, sender.Options{Drain: true})
	b.StartTimer()
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	b.StopTimer()
	if hw := h.HighWater(id); hw != l.LastSeq() {
		b.Fatalf("hub holds %d of %d records", hw, l.LastSeq())
	}
	n := <-updates
	b.StartTimer()
	return d, n
}
