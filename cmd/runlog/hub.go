package main

import (
	"fmt"
	"os"
)

func cmdHub(args []string) int {
	fmt.Fprintln(os.Stderr, "runlog hub: not implemented yet")
	return 2
}
