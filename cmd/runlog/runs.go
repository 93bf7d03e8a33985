package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/runlog/runlog/local"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
)

func cmdRuns(args []string) int { return runRuns(args, os.Stdout, os.Stderr) }

// runRow is one run as `runlog runs` shows it. Commands that know more about
// a run (sync state per upstream, a hub's view) add fields here and columns
// to runColumns.
type runRow struct {
	ID        string `json:"run_id"`
	Project   string `json:"project"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Records   uint64 `json:"records"`
	LastStep  int64  `json:"last_step"` // -1: no history
	SizeBytes int64  `json:"size_bytes"`
	// Open is true when the service has the run open (only known through
	// the service).
	Open       bool              `json:"open"`
	Cursors    map[string]uint64 `json:"cursors,omitempty"`
	SyncErrors map[string]string `json:"sync_errors,omitempty"`
	// Synced and Lag are, per upstream URL, the sequence the upstream has
	// acknowledged and how many records it lacks (see addSyncState).
	Synced map[string]uint64 `json:"synced,omitempty"`
	Lag    map[string]uint64 `json:"lag,omitempty"`
	// Error says why the run could not be read; the other fields may then
	// be empty.
	Error string `json:"error,omitempty"`
	// FirstBadSeq is, for a damaged log (State "damaged"), the first record
	// that cannot be read; Records counts the valid ones before it.
	FirstBadSeq uint64 `json:"first_bad_seq,omitempty"`
}

// runColumn is one column of the runs table.
type runColumn struct {
	head string
	cell func(runRow) string
}

var runColumns = []runColumn{
	{"RUN", func(r runRow) string { return r.ID }},
	{"PROJECT", func(r runRow) string { return r.Project }},
	{"NAME", func(r runRow) string { return r.Name }},
	{"STATE", func(r runRow) string {
		if r.Error != "" {
			return "error: " + r.Error
		}
		return r.State
	}},
	{"RECORDS", func(r runRow) string { return strconv.FormatUint(r.Records, 10) }},
	{"LAST STEP", func(r runRow) string {
		if r.LastStep < 0 {
			return "-"
		}
		return strconv.FormatInt(r.LastStep, 10)
	}},
	{"SIZE", func(r runRow) string { return formatBytes(r.SizeBytes) }},
}

func runRuns(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runlog runs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog runs [--root DIR] [--json]
       runlog runs --hub URL [--project P] [--token-file F] [--json]

Lists the runs under a root: id, project, name, state, records, last step and
log size, and for runs that sync upstream the sequence each upstream has
acknowledged, the lag and the last sync error. When a service answers on the
root it is asked (it holds the logs of open runs); otherwise the logs are read
directly. With --hub, lists the runs a hub holds instead.

Flags:
`)
		fs.PrintDefaults()
	}
	rootFlag := fs.String("root", "", "runlog root (default $RUNLOG_DIR, else ~/.runlog)")
	asJSON := fs.Bool("json", false, "print a JSON list of runs instead of a table")
	var hf hubFlags
	hf.register(fs, "list the runs a hub holds: grpc://HOST:PORT or grpcs://HOST:PORT")
	project := fs.String("project", "", "with --hub: only the runs of this project")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "runlog runs: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if hf.url != "" {
		return runsOnHub(hf, *project, *asJSON, stdout, stderr)
	}
	dir, err := root.Resolve(*rootFlag)
	if err != nil {
		fmt.Fprintf(stderr, "runlog runs: %v\n", err)
		return 1
	}
	sums, err := local.List(context.Background(), dir)
	if err != nil {
		fmt.Fprintf(stderr, "runlog runs: %v\n", err)
		return 1
	}
	var rows []runRow
	for _, s := range sums {
		rows = append(rows, rowFromSummary(s))
	}
	addSyncState(rows)
	if *asJSON {
		if rows == nil {
			rows = []runRow{} // a list, even when empty
		}
		return writeIndentedJSON(stdout, stderr, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no runs in %s\n", dir)
		return 0
	}
	printRunTable(stdout, rows, append(runColumns[:len(runColumns):len(runColumns)], syncColumns(rows)...))
	return 0
}

func rowFromSummary(s *runlogv1.RunSummary) runRow {
	state := replay.StatusName(s.GetStatus())
	switch {
	case s.GetFirstBadSeq() != 0:
		state = "damaged"
	case s.GetError() != "" && s.GetStatus() == runlogv1.RunStatus_RUN_STATUS_UNSPECIFIED:
		state = "" // unread, not unknown
	}
	return runRow{
		ID:          s.GetRunId(),
		Project:     s.GetProject(),
		Name:        s.GetName(),
		State:       state,
		Records:     s.GetLastSeq(),
		LastStep:    s.GetLastStep(),
		SizeBytes:   s.GetSizeBytes(),
		Open:        s.GetOpen(),
		Cursors:     s.GetCursors(),
		SyncErrors:  s.GetSyncErrors(),
		Error:       s.GetError(),
		FirstBadSeq: s.GetFirstBadSeq(),
	}
}

func printRunTable(w io.Writer, rows []runRow, cols []runColumn) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	cells := make([]string, len(cols))
	for _, r := range rows {
		for i, c := range cols {
			cells[i] = c.cell(r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func writeIndentedJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "runlog: write json: %v\n", err)
		return 1
	}
	return 0
}

// formatBytes renders a size with a binary unit: 512 B, 1.5 KiB, 20.0 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
