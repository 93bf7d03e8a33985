package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/root"
)

func cmdDemo(args []string) int { return runDemo(args, os.Stdout, os.Stderr) }

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runlog demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog demo [--root DIR] [--steps N]

Logs an example run through the Go client: a short fake training loop with
its config, history rows, console output and summary, then finishes it and
prints the run id. The client starts a service in DIR (with this executable)
if none runs there.

Flags:
`)
		fs.PrintDefaults()
	}
	rootFlag := fs.String("root", "", "runlog root (default $RUNLOG_DIR, else ~/.runlog)")
	steps := fs.Int("steps", 300, "training steps to log")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *steps < 1 {
		fmt.Fprintln(stderr, "runlog demo: --steps must be positive; no arguments are taken")
		return 2
	}
	dir, err := root.Resolve(*rootFlag)
	if err != nil {
		fmt.Fprintf(stderr, "runlog demo: %v\n", err)
		return 1
	}
	id, err := demo(context.Background(), dir, *steps, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "runlog demo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, id)
	return 0
}

// demo logs one example run and returns its id.
func demo(ctx context.Context, dir root.Dir, steps int, out io.Writer) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts := client.Options{Root: string(dir), Address: "unix://" + dir.Socket()}
	if exe, err := os.Executable(); err == nil {
		opts.Binary = exe
	}
	c, err := client.Connect(ctx, opts)
	if err != nil {
		return "", err
	}
	defer c.Close()

	lr, batch := 3e-4, 64
	run, err := c.Init(ctx, client.RunOptions{
		Project: "demo",
		Name:    "mlp-fake-mnist",
		Tags:    []string{"demo", "cpu"},
		Notes:   "a fake training loop logged by runlog demo",
		Config: map[string]any{
			"lr":         lr,
			"batch_size": batch,
			"optimizer":  "adam",
			"layers":     []int{784, 256, 128, 10},
			"seed":       7,
		},
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "demo: logging run %s (%d steps)\n", run.ID(), steps)

	rng := rand.New(rand.NewPCG(7, 7))
	stepsPerEpoch := max(steps/5, 1)
	best := 0.0
	for step := 0; step < steps; step++ {
		// A loss that decays with noise, an accuracy that saturates.
		progress := float64(step) / float64(steps)
		loss := 2.3*math.Exp(-4*progress) + 0.05 + 0.03*rng.NormFloat64()
		acc := 0.98 - 0.88*math.Exp(-5*progress) + 0.01*rng.NormFloat64()
		row := map[string]any{
			"train/loss": loss,
			"train/acc":  acc,
			"lr":         lr * (1 - 0.5*progress),
			"epoch":      step / stepsPerEpoch,
		}
		if (step+1)%stepsPerEpoch == 0 {
			valAcc := acc - 0.02 + 0.005*rng.NormFloat64()
			row["val/loss"] = loss * 1.1
			row["val/acc"] = valAcc
			best = max(best, valAcc)
			if err := run.Output(client.Stdout, fmt.Sprintf("epoch %d: loss %.4f val_acc %.4f\n", step/stepsPerEpoch, loss, valAcc)); err != nil {
				return "", err
			}
		}
		if err := run.Log(int64(step), row); err != nil {
			return "", err
		}
	}
	if err := run.Summary(map[string]any{"best_val_acc": best, "steps": steps}); err != nil {
		return "", err
	}
	if err := run.Output(client.Stderr, "training done\n"); err != nil {
		return "", err
	}
	if err := run.Finish(ctx, 0); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "demo: run %s finished; every record is durable in %s\n", run.ID(), run.Path())
	return run.ID(), nil
}
