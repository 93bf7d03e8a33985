package main

import (
	"fmt"
	"os"
)

func cmdSync(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog sync: not implemented yet")
	return 2
}
