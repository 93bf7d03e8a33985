package local

import (
	"context"
	"errors"
	"time"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// List describes the runs of root d, sorted by id: through the service
// when one answers there (it holds the logs of open runs), else from the
// files. A run another process holds is listed with an error rather than
// failing the listing.
func List(ctx context.Context, d root.Dir) ([]*runlogv1.RunSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{
		Root:    string(d),
		Address: "unix://" + d.Socket(), // this root's service, whatever RUNLOG_SERVICE says
		NoStart: true,
	})
	if err == nil {
		defer c.Close()
		return c.ListRuns(ctx)
	}
	if !errors.Is(err, client.ErrNoService) {
		return nil, err
	}
	return ListFiles(d)
}

// ListFiles describes the runs of root d from their files, each opened
// read-only for a moment, sorted by id.
func ListFiles(d root.Dir) ([]*runlogv1.RunSummary, error) {
	ids, err := d.RunIDs()
	if err != nil {
		return nil, err
	}
	sums := make([]*runlogv1.RunSummary, 0, len(ids))
	for _, id := range ids {
		sums = append(sums, summarize(d, id))
	}
	return sums, nil
}

// summarize describes one run from its file.
func summarize(d root.Dir, id string) *runlogv1.RunSummary {
	if err := d.CheckRun(id); err != nil {
		return replay.UnreadableSummary(id, err)
	}
	l, err := wal.Open(d.Log(id), wal.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		return replay.UnreadableSummary(id, err)
	}
	defer l.Close()
	return replay.Summary(l, id, nil)
}
