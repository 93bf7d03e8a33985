package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
)

const statusUsage = `Usage: runlog status [--root DIR] [--json]

Shows what the local service on ROOT is doing: its pid and uptime, the open
runs with their rate (records per second over --interval) and writer queue,
each upstream's lag and last error, and the free space of ROOT's disk.
Exit status 1 when no service runs on ROOT.

Flags:
`

func cmdStatus(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	interval := fs.Duration("interval", time.Second, "measure the runs' rates over this `DURATION`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	dir, err := root.Resolve(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog status: %v\n", err)
		return 2
	}
	if err := runStatus(os.Stdout, dir, *interval, *asJSON); err != nil {
		fmt.Fprintf(os.Stderr, "runlog status: %v\n", err)
		return 1
	}
	return 0
}

// runStatus asks the service twice, interval apart, and prints the second
// answer with the rates between the two.
func runStatus(w io.Writer, root root.Dir, interval time.Duration, asJSON bool) error {
	sock := root.Socket()
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("no service on %s (%w)", root, err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect %s: %w", sock, err)
	}
	defer conn.Close()
	rpc := runlogv1.NewRunlogClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), interval+10*time.Second)
	defer cancel()
	first, err := rpc.Status(ctx, &runlogv1.StatusRequest{})
	if err != nil {
		return fmt.Errorf("status of the service on %s: %w", root, err)
	}
	t0 := time.Now()
	time.Sleep(interval)
	st, err := rpc.Status(ctx, &runlogv1.StatusRequest{})
	if err != nil {
		return fmt.Errorf("status of the service on %s: %w", root, err)
	}
	dt := time.Since(t0).Seconds()
	before := map[string]uint64{}
	for _, r := range first.GetRuns() {
		before[r.GetRunId()] = r.GetLastSeq()
	}
	rate := func(r *runlogv1.OpenRunStatus) float64 {
		b, ok := before[r.GetRunId()]
		if !ok || r.GetLastSeq() < b || dt <= 0 {
			return 0
		}
		return float64(r.GetLastSeq()-b) / dt
	}
	uptime := time.Since(time.Unix(0, st.GetStartTimeUnixNano())).Round(time.Second)
	if asJSON {
		type sender struct {
			Upstream   string `json:"upstream"`
			LagRecords uint64 `json:"lag_records"`
			LastError  string `json:"last_error,omitempty"`
		}
		type runJSON struct {
			ID            string   `json:"id"`
			LastSeq       uint64   `json:"last_seq"`
			RecordsPerSec float64  `json:"records_per_s"`
			QueueRecords  uint64   `json:"queue_records"`
			QueueBytes    uint64   `json:"queue_bytes"`
			Clients       uint32   `json:"clients"`
			StatsInterval string   `json:"stats_interval,omitempty"`
			Senders       []sender `json:"senders,omitempty"`
		}
		out := struct {
			PID             int64     `json:"pid"`
			UptimeSeconds   float64   `json:"uptime_s"`
			Root            string    `json:"root"`
			DiskFreeBytes   uint64    `json:"disk_free_bytes"`
			DiskTotalBytes  uint64    `json:"disk_total_bytes"`
			RecordsAppended uint64    `json:"records_appended"`
			Commits         uint64    `json:"commits"`
			Runs            []runJSON `json:"runs"`
		}{st.GetPid(), uptime.Seconds(), st.GetRoot(), st.GetDiskFreeBytes(), st.GetDiskTotalBytes(),
			st.GetRecordsAppended(), st.GetCommits(), []runJSON{}}
		for _, r := range st.GetRuns() {
			rj := runJSON{ID: r.GetRunId(), LastSeq: r.GetLastSeq(), RecordsPerSec: rate(r), QueueRecords: r.GetQueueRecords(),
				QueueBytes: r.GetQueueBytes(), Clients: r.GetClients()}
			if ms := r.GetStatsIntervalMs(); ms > 0 {
				rj.StatsInterval = (time.Duration(ms) * time.Millisecond).String()
			}
			for _, s := range r.GetSenders() {
				rj.Senders = append(rj.Senders, sender{s.GetUpstream(), s.GetLagRecords(), s.GetLastError()})
			}
			out.Runs = append(out.Runs, rj)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "service pid %d, up %s, root %s\n", st.GetPid(), uptime, st.GetRoot())
	fmt.Fprintf(w, "disk: %s free of %s\n", formatBytes(int64(st.GetDiskFreeBytes())), formatBytes(int64(st.GetDiskTotalBytes())))
	fmt.Fprintf(w, "records appended: %d in %d commits\n", st.GetRecordsAppended(), st.GetCommits())
	fmt.Fprintf(w, "open runs: %d\n", len(st.GetRuns()))
	if len(st.GetRuns()) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nRUN\tSEQ\tREC/S\tQUEUE\tCLIENTS\tUPSTREAM\tLAG\tLAST ERROR")
	for _, r := range st.GetRuns() {
		line := fmt.Sprintf("%s\t%d\t%.0f\t%d\t%d", r.GetRunId(), r.GetLastSeq(), rate(r), r.GetQueueRecords(), r.GetClients())
		if len(r.GetSenders()) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t\n", line)
		}
		for _, s := range r.GetSenders() {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", line, s.GetUpstream(), s.GetLagRecords(), s.GetLastError())
		}
	}
	return tw.Flush()
}
