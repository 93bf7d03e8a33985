package main

import (
	"fmt"
	"os"
)

func cmdDemo(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog demo: not implemented yet")
	return 2
}
