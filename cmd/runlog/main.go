// Command runlog is the runlog service, hub and tools in one binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
)

// command is one subcommand. run receives the arguments after the
// subcommand's name and returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{
	"service":   {"run the local service that training processes log to", cmdService},
	"hub":       {"run the upstream hub that services sync runs into", cmdHub},
	"sync":      {"push offline or lagging runs to a hub", cmdSync},
	"replay":    {"read a run's log back: audit, verify, export, state", cmdReplay},
	"runs":      {"list runs in a root or on a hub", cmdRuns},
	"show":      {"show one run on a hub", cmdShow},
	"status":    {"show what the local service is doing: runs, queues, sync lag, disk", cmdStatus},
	"bench":     {"measure durable logging throughput and ack latency", cmdBench},
	"demo":      {"log an example run through the service", cmdDemo},
	"wandb-env": {"print the WANDB_SERVICE line that points the wandb SDK at the service", cmdWandbEnv},
	"exec":      {"run a command whose wandb SDK logs to the service", cmdExec},
	"import":    {"import wandb runs (.wandb files, offline run directories)", cmdImport},
	"export":    {"export a run as a wandb offline run directory", cmdExport},
	"ui":        {"serve the web UI over the runs of a local root", cmdUI},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "runlog: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, "runlog: crash-safe experiment tracking\n\nUsage: runlog COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'runlog COMMAND --help' for a command's flags.\n")
}

// parseInterspersed parses args with fs, flags before, between and after
// the positional arguments, which it returns in order. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
