package main

import (
	"fmt"
	"os"
)

func cmdReplay(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog replay: not implemented yet")
	return 2
}
