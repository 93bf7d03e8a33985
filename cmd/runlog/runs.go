package main

import (
	"fmt"
	"os"
)

func cmdRuns(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog runs: not implemented yet")
	return 2
}
