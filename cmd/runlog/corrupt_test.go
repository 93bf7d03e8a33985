package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store/storetest"
)

// corruption damages the log file at path, whose size is size.
type corruption struct {
	name   string
	damage func(t *testing.T, path string, size int64)
}

func truncateTo(n func(size int64) int64) func(*testing.T, string, int64) {
	return func(t *testing.T, path string, size int64) {
		if err := os.Truncate(path, n(size)); err != nil {
			t.Fatal(err)
		}
	}
}

func patch(t *testing.T, path string, off int64, fn func([]byte)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	fn(buf[:n])
	if _, err := f.WriteAt(buf[:n], off); err != nil {
		t.Fatal(err)
	}
}

// usedSize is the end of the last page of data holds that is not all zero:
// bbolt grows its file ahead of use, and a flip in that space hits nothing.
func usedSize(data []byte) int64 {
	end := len(data) / 4096 * 4096
	for end > 8192 {
		page := data[end-4096 : end]
		if slices.ContainsFunc(page, func(b byte) bool { return b != 0 }) {
			break
		}
		end -= 4096
	}
	return int64(end)
}

func corruptions(flips int, used int64) []corruption {
	cs := []corruption{
		{"truncate to 4KiB", truncateTo(func(int64) int64 { return 4096 })},
		{"truncate to 8KiB", truncateTo(func(int64) int64 { return 8192 })},
		{"truncate to half", truncateTo(func(s int64) int64 { return s / 2 })},
		{"truncate to half+1234", truncateTo(func(s int64) int64 { return s/2 + 1234 })},
		{"truncate by one byte", truncateTo(func(s int64) int64 { return s - 1 })},
		{"zeroed page", func(t *testing.T, path string, size int64) {
			page := (used / 4096) / 2
			patch(t, path, page*4096, func(b []byte) { clear(b) })
		}},
	}
	for seed := range flips {
		cs = append(cs, corruption{fmt.Sprintf("bit flip seed %d", seed), func(t *testing.T, path string, size int64) {
			rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
			// Skip the meta pages: a flip there only falls back to the
			// other meta, which the flips below cover anyway.
			off := 8192 + rng.Int64N(used-8192)
			bit := byte(1) << rng.IntN(8)
			patch(t, path, off, func(b []byte) { b[0] ^= bit })
			t.Logf("flipped bit %#x at offset %d", bit, off)
		}})
	}
	return cs
}

var (
	verifyFirstBad = regexp.MustCompile(`first bad seq (\d+)`)
	atSeq          = regexp.MustCompile(`at seq (\d+)`)
)

// TestCorruptionTable damages one run's log in every way of the table and
// checks that nothing dies: the service starts and other runs log; replay
// --verify, runs, sync and the service's Read all name the same first bad
// seq; sync sends exactly the valid prefix.
func TestCorruptionTable(t *testing.T) {
	flips := 50
	if n, err := strconv.Atoi(os.Getenv("RUNLOG_CORRUPT_FLIPS")); err == nil && n > 0 {
		flips = n
	}
	template := t.TempDir()
	makeRun(t, template, "good", storetest.Run{Project: "p", Rows: 50, Keys: 4})
	badPath := makeRun(t, template, "bad", storetest.Run{Project: "p", Rows: 2000, Keys: 4, Exit: exitFinished})
	tmpl, err := os.ReadFile(badPath)
	if err != nil {
		t.Fatal(err)
	}
	goodTmpl, err := os.ReadFile(runPath(template, "good"))
	if err != nil {
		t.Fatal(err)
	}
	_, total := logDigest(t, badPath)
	hub := startHub(t)
	hc := hub.client(t)

	damaged := 0
	defer func() { t.Logf("%d of %d corruptions damaged records", damaged, flips+6) }()
	for i, tc := range corruptions(flips, usedSize(tmpl)) {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "r")
			bad := fmt.Sprintf("bad-%03d", i)
			for id, data := range map[string][]byte{"good": goodTmpl, bad: tmpl} {
				if err := os.MkdirAll(filepath.Dir(runPath(root, id)), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(runPath(root, id), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tc.damage(t, runPath(root, bad), int64(len(tmpl)))

			// replay --verify decides; every other reader must agree.
			out, errOut, _ := runReplay(t, "--verify", "--root", root, bad)
			var firstBad uint64 // 0: every record reads
			if m := verifyFirstBad.FindStringSubmatch(out); m != nil {
				firstBad, _ = strconv.ParseUint(m[1], 10, 64)
			}
			if firstBad == 0 && !regexp.MustCompile(`checked \d+ records`).MatchString(out) {
				// Unreadable as a whole: nothing before any damage.
				firstBad = 1
			}
			t.Logf("verify: first bad %d\n%s%s", firstBad, out, errOut)
			if firstBad != 0 {
				damaged++
			}
			valid := total
			if firstBad != 0 {
				valid = firstBad - 1
			}

			// runs, from the files.
			code, stdout, stderr := runCmd(t, "runs", "--root", root, "--json")
			if code != 0 {
				t.Fatalf("runs exited %d: %s", code, stderr)
			}
			var rows []runRow
			if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
				t.Fatalf("runs --json: %v\n%s", err, stdout)
			}
			for _, r := range rows {
				if r.ID == bad && r.Error == "" && r.FirstBadSeq != firstBad {
					t.Errorf("runs says first bad seq %d, verify %d", r.FirstBadSeq, firstBad)
				}
				if r.ID == bad && r.FirstBadSeq != 0 && r.FirstBadSeq != firstBad {
					t.Errorf("runs says first bad seq %d, verify %d", r.FirstBadSeq, firstBad)
				}
			}

			// sync --all carries on past the damage and sends its valid
			// prefix, exactly.
			_, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", hub.URL, "--all")
			for _, r := range rep.Runs {
				switch {
				case r.RunID == "good" && r.Result != "synced" && r.Result != "up_to_date":
					t.Errorf("good run: %s %s", r.Result, r.Error)
				case r.RunID == bad:
					got := hubRun(t, hc, bad).GetRun().GetHighWater()
					if got != valid {
						t.Errorf("hub holds %d records of the damaged run, its valid prefix is %d (sync: %+v)", got, valid, r)
					}
					if firstBad != 0 && r.Result != "damaged" && r.Result != "failed" {
						t.Errorf("sync says %s for a run damaged at %d", r.Result, firstBad)
					}
					if r.Result == "damaged" && r.DamagedSeq != firstBad {
						t.Errorf("sync says damaged at %d, verify %d", r.DamagedSeq, firstBad)
					}
				}
			}
			if t.Failed() {
				t.Logf("sync stderr: %s", stderr)
			}

			// The service starts, lists both runs, logs to another run,
			// and its Read stops at the same seq.
			svc := startService(t, root)
			_, c := dialService(t, svc.port.Unix)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.ListRuns(ctx, &runlogv1.ListRunsRequest{}); err != nil {
				t.Fatalf("list runs: %v", err)
			}
			if _, err := c.Init(ctx, &runlogv1.InitRequest{RunId: "other", ClientId: "x", ClientPid: int64(os.Getpid())}); err != nil {
				t.Fatalf("init another run beside the damaged one: %v", err)
			}
			stream, err := c.Publish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stream.Send(&runlogv1.PublishRequest{RunId: "other", ClientId: "x", Batch: 1, Records: [][]byte{cutRecord("x", 1)}})
			if resp, err := stream.Recv(); err != nil || resp.AckedClientSeq != 1 {
				t.Fatalf("publish beside the damaged run: %v %v", resp, err)
			}
			rs, err := c.Read(ctx, &runlogv1.ReadRequest{RunId: bad})
			var read uint64
			for err == nil {
				var resp *runlogv1.ReadResponse
				resp, err = rs.Recv()
				read += uint64(len(resp.GetRecords()))
			}
			if errors.Is(err, io.EOF) {
				if firstBad != 0 {
					t.Errorf("service read %d records and no error; verify says damaged at %d", read, firstBad)
				}
			} else {
				m := atSeq.FindStringSubmatch(err.Error())
				if m == nil || m[1] != strconv.FormatUint(firstBad, 10) {
					t.Errorf("service read %d records then %v; verify says first bad %d", read, err, firstBad)
				}
			}
			if read > valid {
				t.Errorf("service read %d records, the valid prefix is %d", read, valid)
			}
			svc.kill()
		})
	}
}
