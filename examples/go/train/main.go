// Command train is the smallest useful program with the Go client: it logs
// a fake training run to the local runlog service (started if none runs)
// and exits once every record is durable.
//
//	go run ./examples/go/train            # logs to $RUNLOG_DIR or ~/.runlog
//	RUNLOG_BIN=bin/runlog go run ./examples/go/train
package main

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/runlog/runlog/client"
)

func main() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	run, err := c.Init(ctx, client.RunOptions{
		Project: "examples",
		Name:    "go-train",
		Config:  map[string]any{"lr": 1e-3, "epochs": 3},
	})
	if err != nil {
		log.Fatal(err)
	}
	for step := int64(0); step < 300; step++ {
		loss := math.Exp(-float64(step) / 100)
		if err := run.Log(step, map[string]any{"train/loss": loss, "train/acc": 1 - loss}); err != nil {
			log.Fatal(err)
		}
	}
	if err := run.Summary(map[string]any{"final_loss": math.Exp(-3)}); err != nil {
		log.Fatal(err)
	}
	// Finish returns once every record above is in the run's log on disk.
	if err := run.Finish(ctx, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.ID())
}
