package main

import (
	"fmt"
	"os"
)

func cmdService(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog service: not implemented yet")
	return 2
}
