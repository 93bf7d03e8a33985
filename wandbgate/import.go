package wandbgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
	"github.com/runlog/runlog/wandbwire"
)

// ImportResult says what an import wrote.
type ImportResult struct {
	RunID   string
	Records int // wandb records read intact
	Written int // runlog records published
	// Stopped is set when the file was damaged or truncated: the valid
	// prefix before it was imported and the run closed as crashed.
	Stopped *wandbwire.CorruptError
}

// WandbFile finds the .wandb file of path: path itself, or the one
// run-*.wandb inside an offline run directory.
func WandbFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	m, _ := filepath.Glob(filepath.Join(path, "run-*.wandb"))
	if len(m) != 1 {
		return "", fmt.Errorf("import %s: want one run-*.wandb in the directory, found %d", path, len(m))
	}
	return m[0], nil
}

// Import writes the wandb run in the .wandb file at path as a runlog run
// through c, with the wandb run's id. A damaged or truncated file imports
// its valid prefix; the result names where it stopped.
func Import(ctx context.Context, c *client.Client, path string) (ImportResult, error) {
	var res ImportResult
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	r, err := wandbwire.NewReader(f)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", path, err)
	}
	t := NewTranslator()
	var run *client.Run
	emit := func(rec *runlogv1.Record) error {
		res.Written++
		return run.Publish(ctx, rec)
	}
	var rec wandbv1.Record
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce *wandbwire.CorruptError
			if !errors.As(err, &ce) {
				return res, fmt.Errorf("import %s: %w", path, err)
			}
			res.Stopped = ce
			break
		}
		rec.Reset()
		if err := proto.Unmarshal(b, &rec); err != nil {
			res.Stopped = &wandbwire.CorruptError{Offset: r.Offset(), Record: res.Records, Err: fmt.Errorf("decode record: %w", err)}
			break
		}
		res.Records++
		if run == nil {
			rr := rec.GetRun()
			if rr == nil {
				continue // the header, and nothing else, comes first
			}
			info := RunInfo(rr)
			res.RunID = rr.GetRunId()
			if run, err = c.Init(ctx, client.RunOptions{
				ID: rr.GetRunId(), Mode: client.Offline, Project: info.GetProject(), Name: info.GetName(),
				Group: info.GetGroup(), Tags: info.GetTags(), Notes: info.GetNotes(), JobType: info.GetJobType(),
			}); err != nil {
				return res, fmt.Errorf("import %s: %w", path, err)
			}
		}
		if err := t.Record(&rec, emit); err != nil {
			return res, fmt.Errorf("import %s: record %d: %w", path, res.Records-1, err)
		}
		if t.Exit() != nil {
			break
		}
	}
	if run == nil {
		if res.Stopped != nil {
			return res, fmt.Errorf("import %s: no run record before the damage: %w", path, res.Stopped)
		}
		return res, fmt.Errorf("import %s: no run record", path)
	}
	e := t.Exit()
	if e == nil {
		msg := "the .wandb file ends without an exit record"
		if res.Stopped != nil {
			msg = "import stopped: " + res.Stopped.Error()
		}
		e = &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: msg}
	}
	if err := run.FinishWith(ctx, int(e.GetCode()), e.GetReason(), e.GetMessage()); err != nil {
		return res, fmt.Errorf("import %s: finish run %s: %w", path, run.ID(), err)
	}
	return res, nil
}
