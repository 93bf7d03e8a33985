package local

import (
	"context"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
)

// Verified is the outcome of checking one run of a root.
type Verified struct {
	ID string
	// Result is the check's report; nil when Err is set.
	Result *runlogv1.VerifyResponse
	// ThroughService is true when the service that holds the run checked it.
	ThroughService bool
	// Err is why the run could not be checked at all (it could not be
	// opened or read); problems in a log that could be read are in Result.
	Err error
}

// VerifyAll checks every run under d, in id order, each as Run.Verify does
// (through the service that holds it, else from its file, with tolerance
// for records whose time goes back), and calls fn with each outcome as it
// comes. A run that cannot be checked does not stop the others; an error
// from fn or from listing the root does, and is returned.
func VerifyAll(ctx context.Context, d root.Dir, tolerance time.Duration, fn func(Verified) error) error {
	ids, err := d.RunIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(verifyOne(ctx, d, id, tolerance)); err != nil {
			return err
		}
	}
	return nil
}

func verifyOne(ctx context.Context, d root.Dir, id string, tolerance time.Duration) Verified {
	v := Verified{ID: id}
	run, err := Open(ctx, RunRef(d, id), Options{})
	if err != nil {
		v.Err = err
		return v
	}
	defer run.Close()
	v.ThroughService = run.ThroughService()
	if v.Result, v.Err = run.Verify(ctx, tolerance); v.Err != nil {
		v.Result = nil
	}
	return v
}
