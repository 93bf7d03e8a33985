package main

import (
	"fmt"
	"os"
)

func cmdShow(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog show: not implemented yet")
	return 2
}
