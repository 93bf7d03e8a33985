package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/runlog/runlog/store/pgtest"
	"github.com/runlog/runlog/store/storetest"
)

// dropTimes removes the fields that say when a hub stored something, which
// differ between two hubs that stored the same runs.
func dropTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.Contains(k, "updated") {
				delete(x, k)
				continue
			}
			x[k] = dropTimes(e)
		}
	case []any:
		for i := range x {
			x[i] = dropTimes(x[i])
		}
	}
	return v
}

// TestRunsAndShowAgreeAcrossBackends syncs the same runs into a hub on
// bbolt and a hub on PostgreSQL and compares what runlog runs --hub and
// runlog show print.
func TestRunsAndShowAgreeAcrossBackends(t *testing.T) {
	cl := pgtest.New(t)
	url, err := cl.CreateDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hubs := []*hubProc{startHub(t), startPGHub(t, url)}
	root := t.TempDir()
	makeRun(t, root, "shown", storetest.Run{Project: "vision", Rows: 3000, Keys: 4, Exit: exitFinished})
	makeRun(t, root, "other", storetest.Run{Project: "nlp", Rows: 5, Keys: 1})
	makeRun(t, root, "third", storetest.Run{Project: "vision", Rows: 1})
	for _, h := range hubs {
		if code, _, stderr := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "--all"); code != 0 {
			t.Fatalf("sync to %s: %d\n%s", h.URL, code, stderr)
		}
	}
	queries := [][]string{
		{"runs", "--json"},
		{"runs", "--json", "--project", "vision"},
		{"show", "shown", "--json"},
		{"show", "shown", "--json", "--history", "all", "--samples", "0"},
		{"show", "shown", "--json", "--history", "metric/1,metric/3", "--samples", "7"},
		{"show", "other", "--json", "--history", "all"},
	}
	for _, q := range queries {
		var outs []any
		for _, h := range hubs {
			code, stdout, stderr := runCmd(t, append(append([]string{}, q...), "--hub", h.URL)...)
			if code != 0 {
				t.Fatalf("%v on %s: %d\n%s", q, h.URL, code, stderr)
			}
			var v any
			if err := json.Unmarshal([]byte(stdout), &v); err != nil {
				t.Fatalf("%v on %s: %v\n%s", q, h.URL, err, stdout)
			}
			outs = append(outs, dropTimes(v))
		}
		if !reflect.DeepEqual(outs[0], outs[1]) {
			t.Errorf("%v: bbolt and PostgreSQL hubs differ:\n%v\n%v", q, outs[0], outs[1])
		}
	}
	// The text forms too, for the run itself.
	var texts []string
	for _, h := range hubs {
		_, stdout, _ := runCmd(t, "show", "shown", "--hub", h.URL, "--history", "metric/0", "--samples", "5")
		var keep []string
		for _, line := range strings.Split(stdout, "\n") {
			if !strings.HasPrefix(line, "synced ") { // when this hub stored it
				keep = append(keep, line)
			}
		}
		texts = append(texts, strings.Join(keep, "\n"))
	}
	if texts[0] != texts[1] {
		t.Errorf("runlog show differs:\n%s\n%s", texts[0], texts[1])
	}
}
