package main

import (
	"fmt"
	"os"
)

func cmdBench(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog bench: not implemented yet")
	return 2
}
