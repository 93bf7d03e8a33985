package client

import (
	"log/slog"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Options configure Connect. The zero value is a working default: find the
// service through RUNLOG_SERVICE or the socket in $RUNLOG_DIR (else
// ~/.runlog), and start one there if none answers.
type Options struct {
	// Root is the service's directory. Empty means $RUNLOG_DIR, else
	// ~/.runlog.
	Root string
	// Address is tried before the root's socket. Empty means the
	// RUNLOG_SERVICE environment variable. Forms: unix:///abs/path.sock,
	// unix:/abs/path, tcp://127.0.0.1:PORT, 127.0.0.1:PORT.
	Address string
	// NoStart makes Connect fail with ErrNoService instead of starting a
	// service when none answers, and makes reconnects wait for one.
	NoStart bool
	// Binary is the runlog executable that starts a service. Empty means
	// $RUNLOG_BIN, else runlog on PATH, else the current executable when it
	// is named runlog.
	Binary string
	// ServiceArgs are more flags for a service the client starts (for
	// example --metrics-listen ADDR).
	ServiceArgs []string
	// StartTimeout bounds the wait for a started service's port file. Zero
	// means 30s.
	StartTimeout time.Duration
	// HealthTimeout bounds how long an address gets to answer the health
	// check. Zero means 2s.
	HealthTimeout time.Duration
	// ReconnectTimeout bounds the time spent reaching a service again after
	// the connection broke; after it every call fails with ErrGaveUp. Zero
	// means 60s.
	ReconnectTimeout time.Duration
	// CloseTimeout bounds how long Close waits for un-acked records. Zero
	// means 30s.
	CloseTimeout time.Duration

	// WindowRecords and WindowBytes bound each run's un-acknowledged
	// records. A publish that does not fit blocks until acks make room.
	// Zero means 65536 records and 64 MiB.
	WindowRecords int
	WindowBytes   int
	// BatchRecords and BatchBytes bound one Publish request. Zero means 4096
	// records and 1 MiB (a single larger record still goes alone). The
	// service holds a few batches of every run at once (received, queued,
	// encoded, in its log's dirty pages), so the batch size also sets its
	// memory.
	BatchRecords int
	BatchBytes   int
	// MaxInflight is how many batches of one run may await their ack. Zero
	// means 4: with 4096-record batches that is 16384 records, what the
	// service queues per run besides the commit in progress. More would not
	// go faster; it would make the service hold the shared stream until the
	// run's queue drains, stalling the other runs' batches behind it.
	MaxInflight int
	// Linger is how long a partial batch waits for more records while
	// another batch of the run is in flight. With nothing in flight records
	// leave at once. Zero means 1ms; negative means never wait.
	Linger time.Duration

	// OnAck, when set, is called by the receiving goroutine after each ack
	// with the time from the publishing call to the ack for every record it
	// covers. lat is reused after the call returns. Setting it adds a clock
	// read to every publish.
	OnAck func(runID string, lat []time.Duration)

	// Logger receives connection events (never one line per record). Nil
	// discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&o.StartTimeout, 30*time.Second)
	defDur(&o.HealthTimeout, 2*time.Second)
	defDur(&o.ReconnectTimeout, 60*time.Second)
	defDur(&o.CloseTimeout, 30*time.Second)
	def(&o.WindowRecords, 65536)
	def(&o.WindowBytes, 64<<20)
	def(&o.BatchRecords, 4096)
	def(&o.BatchBytes, 1<<20)
	def(&o.MaxInflight, 4)
	if o.Linger == 0 {
		o.Linger = time.Millisecond
	} else if o.Linger < 0 {
		o.Linger = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Resume modes of RunOptions.Resume.
const (
	ResumeNever = runlogv1.ResumeMode_RESUME_MODE_NEVER
	ResumeAllow = runlogv1.ResumeMode_RESUME_MODE_ALLOW
	ResumeMust  = runlogv1.ResumeMode_RESUME_MODE_MUST
)

// Sync modes of RunOptions.Mode.
const (
	Online  = runlogv1.SyncMode_SYNC_MODE_ONLINE
	Offline = runlogv1.SyncMode_SYNC_MODE_OFFLINE
)

// Console streams for Run.Output.
const (
	Stdout = runlogv1.ConsoleOutput_STREAM_STDOUT
	Stderr = runlogv1.ConsoleOutput_STREAM_STDERR
)

// Alert levels for Run.Alert.
const (
	AlertInfo  = runlogv1.Alert_LEVEL_INFO
	AlertWarn  = runlogv1.Alert_LEVEL_WARN
	AlertError = runlogv1.Alert_LEVEL_ERROR
)

// RunOptions describe the run Init opens.
type RunOptions struct {
	// ID names the run; empty lets the service make one.
	ID string
	// Resume says what to do when the run exists: ResumeNever (the zero
	// value) refuses, ResumeAllow continues it, ResumeMust requires it.
	Resume runlogv1.ResumeMode
	// Mode is Online, Offline or the service's default (zero).
	Mode runlogv1.SyncMode

	Project string
	Name    string
	Group   string
	Tags    []string
	Notes   string
	JobType string
	// Config is published as the run's first config record right after
	// Init. Its keys and values are checked before the run is opened.
	Config map[string]any
	// NoStats turns off the system-stats records the service samples into
	// the run; StatsInterval, when set, samples at that interval (at least
	// 100ms) instead of the service's --stats-interval.
	NoStats       bool
	StatsInterval time.Duration
}
