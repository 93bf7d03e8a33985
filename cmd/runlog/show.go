package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/hub"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/sender"
)

func cmdShow(args []string) int { return runShow(args, os.Stdout, os.Stderr) }

// hubFlags are the flags of the commands that query a hub.
type hubFlags struct {
	url, tokenFile, caFile string
}

func (h *hubFlags) register(fs *flag.FlagSet, urlUsage string) {
	fs.StringVar(&h.url, "hub", "", urlUsage)
	fs.StringVar(&h.tokenFile, "token-file", "", "file holding the hub's bearer token")
	fs.StringVar(&h.caFile, "ca-file", "", "PEM certificates to trust for grpcs:// besides the system's")
}

// dial connects to the hub the flags name.
func (h *hubFlags) dial() (*sender.Hub, error) {
	token, err := hub.ReadTokenFile(h.tokenFile)
	if err != nil {
		return nil, err
	}
	return sender.DialHub(h.url, sender.HubOptions{Token: token, CAFile: h.caFile, MaxBackoff: time.Second})
}

// hubError words a failed hub call for the command line.
func hubError(url string, err error) string {
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("hub %s: %s: %s", url, st.Code(), st.Message())
	}
	return fmt.Sprintf("hub %s: %v", url, err)
}

// hubRunJSON is a run as `runlog show --json` and `runlog runs --hub --json`
// print it.
type hubRunJSON struct {
	RunID       string `json:"run_id"`
	Project     string `json:"project"`
	Name        string `json:"name"`
	State       string `json:"state"`
	Records     uint64 `json:"records"`
	HighWater   uint64 `json:"high_water"`
	LastStep    int64  `json:"last_step"` // -1: no history
	HistoryRows uint64 `json:"history_rows"`
	StartTime   string `json:"start_time,omitempty"`
	LastTime    string `json:"last_time,omitempty"`
	Updated     string `json:"updated,omitempty"`
	Digest      string `json:"digest"`
	// The fields below are only in runlog show.
	Info    *runlogv1.RunInfo `json:"info,omitempty"`
	Config  map[string]any    `json:"config,omitempty"`
	Summary map[string]any    `json:"summary,omitempty"`
	Exit    *showExit         `json:"exit,omitempty"`
	History []map[string]any  `json:"history,omitempty"`
}

type showExit struct {
	Code    int32  `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

func hubRunFields(r *runlogv1.HubRun) hubRunJSON {
	return hubRunJSON{
		RunID:       r.GetRunId(),
		Project:     r.GetProject(),
		Name:        r.GetName(),
		State:       replay.StatusName(r.GetStatus()),
		Records:     r.GetHighWater(),
		HighWater:   r.GetHighWater(),
		LastStep:    r.GetLastStep(),
		HistoryRows: r.GetHistoryRows(),
		StartTime:   showTime(r.GetStartTimeUnixNano()),
		LastTime:    showTime(r.GetLastTimeUnixNano()),
		Updated:     showTime(r.GetUpdatedUnixNano()),
		Digest:      "sha256:" + hex.EncodeToString(r.GetDigest()),
	}
}

func showTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func runShow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runlog show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog show RUN --hub URL [--json] [--history KEYS [--samples N]]

Shows one run as a hub holds it: run info, state, config, summary, how many
records the hub holds (1..high_water), the last step and the content digest.
--history adds the run's history of the given keys (comma-separated; "all"
for every key), sampled evenly, rewinds honoured.

Flags:
`)
		fs.PrintDefaults()
	}
	var hf hubFlags
	hf.register(fs, "the hub: grpc://HOST:PORT or grpcs://HOST:PORT")
	asJSON := fs.Bool("json", false, "print one JSON object")
	history := fs.String("history", "", "history keys to show, comma-separated, or \"all\"")
	samples := fs.Uint("samples", 20, "with --history: at most this many rows, evenly spaced (0: every row)")
	// RUN may come before, between or after the flags.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "runlog show: one RUN at a time; unexpected argument %q\n", pos[1])
		return 2
	}
	var runID string
	if len(pos) == 1 {
		runID = pos[0]
	}
	if runID == "" || hf.url == "" {
		fmt.Fprintln(stderr, "runlog show: RUN and --hub URL are required")
		fs.Usage()
		return 2
	}
	h, err := hf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "runlog show: %v\n", err)
		return 2
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := h.Client().GetRun(ctx, &runlogv1.GetRunRequest{RunId: runID})
	if err != nil {
		fmt.Fprintf(stderr, "runlog show: %s\n", hubError(h.URL(), err))
		return 1
	}
	out := hubRunFields(resp.GetRun())
	st := resp.GetState()
	out.Info = st.GetInfo()
	out.Config = replay.ItemMap(st.GetConfig())
	out.Summary = replay.ItemMap(st.GetSummary())
	if e := st.GetExit(); e != nil {
		out.Exit = &showExit{Code: e.GetCode(), Reason: replay.ExitReasonName(e.GetReason()), Message: e.GetMessage()}
	}
	if *history != "" {
		req := &runlogv1.HubHistoryRequest{RunId: runID, MaxSamples: uint32(*samples)}
		if *history != "all" {
			for _, k := range strings.Split(*history, ",") {
				if k = strings.TrimSpace(k); k != "" {
					req.Keys = append(req.Keys, k)
				}
			}
		}
		samples, err := h.History(ctx, req)
		if err != nil {
			fmt.Fprintf(stderr, "runlog show: %s\n", hubError(h.URL(), err))
			return 1
		}
		out.History = showHistoryRows(samples)
	}
	if *asJSON {
		return writeIndentedJSON(stdout, stderr, out)
	}
	showPrint(stdout, out, showHistoryKeys(*history))
	return 0
}

// showHistoryKeys returns the history keys asked for, for the table header;
// nil for all.
func showHistoryKeys(history string) []string {
	if history == "" || history == "all" {
		return nil
	}
	return strings.Split(history, ",")
}

// showHistoryRows turns the hub's history samples into rows keyed by item
// key, with the step under "_step".
func showHistoryRows(samples []*runlogv1.HistorySample) []map[string]any {
	rows := make([]map[string]any, 0, len(samples))
	for _, s := range samples {
		row := replay.ItemMap(s.GetItems())
		if row == nil {
			row = map[string]any{}
		}
		row["_step"] = s.GetStep()
		rows = append(rows, row)
	}
	return rows
}

// showValueText renders a value for the text output: floats to 6
// significant digits (--json keeps them exact).
func showValueText(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', 6, 64)
	case string:
		return x
	case json.RawMessage:
		return string(x)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

func showPrint(w io.Writer, r hubRunJSON, keys []string) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	line("run", r.RunID)
	line("project", r.Project)
	line("name", r.Name)
	state := r.State
	if r.Exit != nil {
		state += fmt.Sprintf(" (exit %s, code %d", r.Exit.Reason, r.Exit.Code)
		if r.Exit.Message != "" {
			msg := r.Exit.Message
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i] + " ..."
			}
			state += ": " + msg
		}
		state += ")"
	}
	line("state", state)
	line("records", fmt.Sprintf("%d (the hub holds seq 1..%d)", r.Records, r.HighWater))
	if r.LastStep >= 0 {
		line("history", fmt.Sprintf("%d rows, last step %d", r.HistoryRows, r.LastStep))
	} else {
		line("history", "none")
	}
	if r.Info != nil {
		line("host", r.Info.GetHost())
		line("group", r.Info.GetGroup())
		if len(r.Info.GetTags()) > 0 {
			line("tags", strings.Join(r.Info.GetTags(), ", "))
		}
		line("program", r.Info.GetProgram())
	}
	line("started", r.StartTime)
	line("last record", r.LastTime)
	line("synced", r.Updated)
	line("digest", r.Digest)
	tw.Flush()
	showPrintItems(bw, "config", r.Config)
	showPrintItems(bw, "summary", r.Summary)
	if r.History != nil {
		showPrintHistory(bw, r.History, keys)
	}
}

func showPrintItems(w io.Writer, title string, m map[string]any) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range showSortedKeys(m) {
		fmt.Fprintf(tw, "  %s\t%s\n", k, showValueText(m[k]))
	}
	tw.Flush()
}

func showPrintHistory(w io.Writer, rows []map[string]any, keys []string) {
	fmt.Fprintf(w, "\nhistory (%d rows)\n", len(rows))
	if len(rows) == 0 {
		return
	}
	if keys == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			for k := range r {
				if k != "_step" && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
		keys = showSortedKeys(seen)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "step\t%s\t\n", strings.Join(keys, "\t"))
	for _, r := range rows {
		cells := make([]string, len(keys))
		for i, k := range keys {
			if v, ok := r[k]; ok {
				cells[i] = showValueText(v)
			} else {
				cells[i] = "-"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t\n", r["_step"], strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func showSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// runsOnHub is `runlog runs --hub URL`: the runs a hub holds.
func runsOnHub(hf hubFlags, project string, asJSON bool, stdout, stderr io.Writer) int {
	h, err := hf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "runlog runs: %v\n", err)
		return 2
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := h.Client().ListRuns(ctx, &runlogv1.HubListRunsRequest{Project: project})
	if err != nil {
		fmt.Fprintf(stderr, "runlog runs: %s\n", hubError(h.URL(), err))
		return 1
	}
	rows := make([]hubRunJSON, 0, len(resp.GetRuns()))
	for _, r := range resp.GetRuns() {
		rows = append(rows, hubRunFields(r))
	}
	if asJSON {
		return writeIndentedJSON(stdout, stderr, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no runs on %s\n", h.URL())
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPROJECT\tNAME\tSTATE\tRECORDS\tLAST STEP\tSYNCED")
	for _, r := range rows {
		step := "-"
		if r.LastStep >= 0 {
			step = strconv.FormatInt(r.LastStep, 10)
		}
		synced := r.Updated
		if t, err := time.Parse(time.RFC3339Nano, r.Updated); err == nil {
			synced = t.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.RunID, r.Project, r.Name, r.State, r.Records, step, synced)
	}
	tw.Flush()
	return 0
}
