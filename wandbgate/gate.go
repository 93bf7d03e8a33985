package wandbgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
	"github.com/runlog/runlog/wandbwire"
)

// Options configure a Gate.
type Options struct {
	// Logger receives one line per connection event and per request kind
	// the gate does not serve. Nil discards.
	Logger *slog.Logger
	// FinishTimeout bounds the wait for a run's exit record to become
	// durable. Zero means 60s.
	FinishTimeout time.Duration
}

// Gate serves the wandb SDK's service protocol and writes each wandb stream
// as a runlog run through a runlog client. It is safe for concurrent use.
type Gate struct {
	c    *client.Client
	opts Options
	log  *slog.Logger

	mu sync.Mutex // protects the fields below
	ls map[net.Listener]struct{}
	cs map[net.Conn]struct{}
	// runs are the open runs by id, shared by the streams writing them.
	runs map[string]*sharedRun
	// unserved remembers the request kinds already logged as unserved.
	unserved map[string]bool
	closed   bool

	wg sync.WaitGroup // connection goroutines
}

// New returns a gate that publishes through c.
func New(c *client.Client, opts Options) *Gate {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FinishTimeout <= 0 {
		opts.FinishTimeout = 60 * time.Second
	}
	return &Gate{c: c, opts: opts, log: opts.Logger, ls: map[net.Listener]struct{}{}, cs: map[net.Conn]struct{}{}, runs: map[string]*sharedRun{}, unserved: map[string]bool{}}
}

// Serve accepts SDK connections on l until Close. It returns nil after
// Close.
func (g *Gate) Serve(l net.Listener) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		l.Close()
		return nil
	}
	g.ls[l] = struct{}{}
	g.mu.Unlock()
	for {
		conn, err := l.Accept()
		if err != nil {
			g.mu.Lock()
			closed := g.closed
			g.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept wandb connection: %w", err)
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			conn.Close()
			return nil
		}
		g.cs[conn] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			g.serveConn(conn)
			g.mu.Lock()
			delete(g.cs, conn)
			g.mu.Unlock()
		}()
	}
}

// Close stops the listeners, closes the connections and waits for their
// goroutines. Streams not finished are closed as crashed.
func (g *Gate) Close() error {
	g.mu.Lock()
	g.closed = true
	for l := range g.ls {
		l.Close()
	}
	for c := range g.cs {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

// stream is one wandb run on one connection.
type stream struct {
	id       string
	settings *wandbv1.Settings
	t        *Translator
	run      *sharedRun // nil until the stream's run record
	done     bool
}

// conn is one SDK connection: frames are read and answered in order by one
// goroutine, so a reply never overtakes the records before it.
type conn struct {
	g       *Gate
	nc      net.Conn
	w       *bufio.Writer
	out     []byte
	streams map[string]*stream
}

func (g *Gate) serveConn(nc net.Conn) {
	defer nc.Close()
	c := &conn{g: g, nc: nc, w: bufio.NewWriterSize(nc, 64<<10), streams: map[string]*stream{}}
	r := bufio.NewReaderSize(nc, 256<<10)
	var buf []byte
	var err error
	for {
		buf, err = wandbwire.ReadFrame(r, buf)
		if err != nil {
			break
		}
		req := &wandbv1.ServerRequest{}
		if err = proto.Unmarshal(buf, req); err != nil {
			err = fmt.Errorf("decode wandb request: %w", err)
			break
		}
		if err = c.handle(req); err != nil {
			break
		}
		// Answer as soon as nothing more is waiting to be read.
		if r.Buffered() == 0 {
			if err = c.w.Flush(); err != nil {
				break
			}
		}
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		g.log.Warn("wandb connection ended", "err", err)
	}
	for _, s := range c.streams {
		c.abandon(s)
	}
}

// abandon closes a stream whose connection went away before its exit
// record: the records it sent are kept and the run is closed as crashed.
func (c *conn) abandon(s *stream) {
	if s.run == nil || s.done {
		return
	}
	timeout := c.g.opts.FinishTimeout
	c.g.mu.Lock()
	if c.g.closed {
		// Shutting down: the service may be going too.
		timeout = 5 * time.Second
	}
	c.g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = s.t.Flush(func(r *runlogv1.Record) error { return s.run.publish(ctx, r) })
	if err := s.run.detach(ctx, nil); err != nil {
		c.g.log.Warn("close abandoned wandb run", "run", s.id, "err", err)
	}
	s.done = true
}

func (c *conn) reply(resp *wandbv1.ServerResponse) error {
	var err error
	c.out, err = wandbwire.AppendFrame(c.out[:0], resp)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(c.out); err != nil {
		return fmt.Errorf("write wandb response: %w", err)
	}
	return nil
}

func (c *conn) unserved(kind string) {
	c.g.mu.Lock()
	seen := c.g.unserved[kind]
	c.g.unserved[kind] = true
	c.g.mu.Unlock()
	if !seen {
		c.g.log.Info("wandb request not served; answered empty", "kind", kind)
	}
}

func (c *conn) handle(req *wandbv1.ServerRequest) error {
	id := req.GetRequestId()
	switch k := req.GetKind().(type) {
	case *wandbv1.ServerRequest_RecordPublish:
		return c.record(id, k.RecordPublish)
	case *wandbv1.ServerRequest_RecordCommunicate:
		return c.record(id, k.RecordCommunicate)
	case *wandbv1.ServerRequest_InformInit:
		sid := k.InformInit.GetInfo().GetStreamId()
		if sid == "" {
			sid = k.InformInit.GetSettings().GetRunId().GetValue()
		}
		if _, ok := c.streams[sid]; !ok {
			c.streams[sid] = &stream{id: sid, settings: k.InformInit.GetSettings(), t: NewTranslator()}
		}
		if id == "" {
			return nil
		}
		return c.reply(&wandbv1.ServerResponse{RequestId: id, Kind: &wandbv1.ServerResponse_InformInitResponse{InformInitResponse: &wandbv1.Opaque{}}})
	case *wandbv1.ServerRequest_InformAttach:
		sid := k.InformAttach.GetInfo().GetStreamId()
		resp := &wandbv1.InformAttachResponse{Info: &wandbv1.StreamInfo{StreamId: sid}}
		if s := c.g.findStream(c, sid); s != nil {
			resp.Settings = s.settings
		}
		if id == "" {
			return nil
		}
		return c.reply(&wandbv1.ServerResponse{RequestId: id, Kind: &wandbv1.ServerResponse_InformAttachResponse{InformAttachResponse: resp}})
	case *wandbv1.ServerRequest_InformFinish:
		if s := c.streams[k.InformFinish.GetInfo().GetStreamId()]; s != nil {
			c.abandon(s)
			delete(c.streams, s.id)
		}
	case *wandbv1.ServerRequest_InformDetach, *wandbv1.ServerRequest_InformTeardown, *wandbv1.ServerRequest_Cancel:
	default:
		c.unserved(serverKind(req))
	}
	if id == "" {
		return nil
	}
	return c.reply(&wandbv1.ServerResponse{RequestId: id})
}

// findStream finds a stream by id on this connection or, for an attach
// from another process, on any connection.
func (g *Gate) findStream(c *conn, id string) *stream {
	if s := c.streams[id]; s != nil {
		return s
	}
	return nil
}

func serverKind(req *wandbv1.ServerRequest) string {
	m := req.ProtoReflect()
	if f := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind")); f != nil {
		return string(f.Name())
	}
	return "unknown"
}

func recordKind(rec *wandbv1.Record) string {
	m := rec.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind"))
	if f == nil {
		return "unknown"
	}
	if r := rec.GetRequest(); r != nil {
		rm := r.ProtoReflect()
		if rf := rm.WhichOneof(rm.Descriptor().Oneofs().ByName("kind")); rf != nil {
			return "request." + string(rf.Name())
		}
	}
	return string(f.Name())
}

func (c *conn) record(id string, rec *wandbv1.Record) error {
	if id == "" {
		id = rec.GetControl().GetMailboxSlot()
	}
	sid := rec.GetInfo().GetStreamId()
	s := c.streams[sid]
	if s == nil {
		// A record for a stream this connection never declared: one
		// stream per id, opened on first sight.
		s = &stream{id: sid, t: NewTranslator()}
		c.streams[sid] = s
	}
	result := &wandbv1.Result{Control: &wandbv1.Control{MailboxSlot: rec.GetControl().GetMailboxSlot()}, Uuid: rec.GetUuid()}
	var err error
	switch k := rec.GetKind().(type) {
	case *wandbv1.Record_Run:
		err = c.openRun(s, k.Run, result)
	case *wandbv1.Record_Exit:
		err = c.exit(s, rec, result)
	case *wandbv1.Record_Request:
		err = c.request(s, rec, k.Request, result)
	default:
		err = c.publish(s, rec)
	}
	if err != nil {
		c.g.log.Warn("wandb record", "run", s.id, "kind", recordKind(rec), "err", err)
	}
	if id == "" {
		return nil
	}
	return c.reply(&wandbv1.ServerResponse{RequestId: id, Kind: &wandbv1.ServerResponse_ResultCommunicate{ResultCommunicate: result}})
}

// publish translates rec into the stream's run. Records before the run
// record have nowhere to go and carry nothing runlog keeps (the header).
func (c *conn) publish(s *stream, rec *wandbv1.Record) error {
	if s.run == nil || s.done {
		return nil
	}
	return s.t.Record(rec, func(r *runlogv1.Record) error {
		return s.run.publish(context.Background(), r)
	})
}

func (c *conn) openRun(s *stream, r *wandbv1.RunRecord, result *wandbv1.Result) error {
	echo := proto.Clone(r).(*wandbv1.RunRecord)
	if echo.GetStartTime() == nil {
		now := time.Now()
		echo.StartTime = &wandbv1.Timestamp{Seconds: now.Unix(), Nanos: int32(now.Nanosecond())}
	}
	result.Kind = &wandbv1.Result_RunResult{RunResult: &wandbv1.RunUpdateResult{Run: echo}}
	if s.run != nil {
		// A second run record updates the run's description.
		return s.t.Record(&wandbv1.Record{Kind: &wandbv1.Record_Run{Run: r}}, func(rec *runlogv1.Record) error {
			return s.run.publish(context.Background(), rec)
		})
	}
	runID := r.GetRunId()
	if runID == "" {
		runID = s.id
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.g.opts.FinishTimeout)
	defer cancel()
	info := RunInfo(r)
	sr, first, err := c.g.attach(runID, func() (*client.Run, error) {
		return c.g.c.Init(ctx, client.RunOptions{
			ID:      runID,
			Resume:  client.ResumeAllow,
			Project: info.GetProject(),
			Name:    info.GetName(),
			Group:   info.GetGroup(),
			Tags:    info.GetTags(),
			Notes:   info.GetNotes(),
			JobType: info.GetJobType(),
		})
	})
	if err != nil {
		result.Kind = &wandbv1.Result_RunResult{RunResult: &wandbv1.RunUpdateResult{
			Error: &wandbv1.ErrorInfo{Message: fmt.Sprintf("runlog: %v", err), Code: 1},
		}}
		return err
	}
	s.run = sr
	if first {
		echo.Resumed = sr.run.Resumed()
	} else {
		// Another process of a shared run opened it: this one joins.
		echo.Resumed = true
	}
	if step := sr.step(); echo.Resumed && echo.GetStartingStep() == 0 && step > 0 {
		echo.StartingStep = step
	}
	return s.t.Record(&wandbv1.Record{Kind: &wandbv1.Record_Run{Run: r}}, func(rec *runlogv1.Record) error {
		return sr.publish(context.Background(), rec)
	})
}

// exit flushes the row being assembled and finishes the run; the answer
// leaves only once the exit record and everything before it are durable.
func (c *conn) exit(s *stream, rec *wandbv1.Record, result *wandbv1.Result) error {
	result.Kind = &wandbv1.Result_ExitResult{ExitResult: &wandbv1.RunExitResult{}}
	if s.run == nil || s.done {
		return nil
	}
	if err := c.publish(s, rec); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.g.opts.FinishTimeout)
	defer cancel()
	err := s.run.detach(ctx, s.t.Exit())
	s.done = true // counted out, finished or not
	var rej *client.RejectedError
	if err != nil && !errors.As(err, &rej) {
		result.GetExitResult().TimedOut = true
	}
	return err
}

func (c *conn) request(s *stream, rec *wandbv1.Record, r *wandbv1.Request, result *wandbv1.Result) error {
	resp := &wandbv1.Response{}
	result.Kind = &wandbv1.Result_Response{Response: resp}
	switch r.GetKind().(type) {
	case *wandbv1.Request_PartialHistory:
		return c.publish(s, rec)
	case *wandbv1.Request_PollExit:
		resp.Kind = &wandbv1.Response_PollExitResponse{PollExitResponse: &wandbv1.PollExitResponse{
			Done: s.done || s.run == nil, ExitResult: &wandbv1.RunExitResult{},
		}}
	case *wandbv1.Request_HistoryStep:
		resp.Kind = &wandbv1.Response_HistoryStepResponse{HistoryStepResponse: &wandbv1.HistoryStepResponse{Step: s.t.Step()}}
	case *wandbv1.Request_GetSummary:
		items, err := c.summary(s)
		resp.Kind = &wandbv1.Response_GetSummaryResponse{GetSummaryResponse: &wandbv1.GetSummaryResponse{Item: items}}
		return err
	case *wandbv1.Request_SampledHistory:
		items, err := c.sampled(s)
		resp.Kind = &wandbv1.Response_SampledHistoryResponse{SampledHistoryResponse: &wandbv1.SampledHistoryResponse{Item: items}}
		return err
	case *wandbv1.Request_Attach:
		resp.Kind = &wandbv1.Response_AttachResponse{AttachResponse: &wandbv1.AttachResponse{Run: s.t.Run()}}
	case *wandbv1.Request_RunStart, *wandbv1.Request_Shutdown, *wandbv1.Request_Defer,
		*wandbv1.Request_Keepalive, *wandbv1.Request_Operations, *wandbv1.Request_ProbeSystemInfo,
		*wandbv1.Request_PythonPackages, *wandbv1.Request_InternalMessages, *wandbv1.Request_StopStatus,
		*wandbv1.Request_NetworkStatus, *wandbv1.Request_Status, *wandbv1.Request_SenderMark,
		*wandbv1.Request_StatusReport, *wandbv1.Request_Pause, *wandbv1.Request_Resume,
		*wandbv1.Request_CheckVersion, *wandbv1.Request_RunStatus, *wandbv1.Request_ServerInfo,
		*wandbv1.Request_GetSystemMetrics, *wandbv1.Request_JobInfo, *wandbv1.Request_Cancel:
		// Nothing of these is kept; their empty answers are what the SDK
		// needs to move on.
	default:
		c.unserved(recordKind(rec))
	}
	return nil
}

// summary answers get_summary from the run's fold in the service.
func (c *conn) summary(s *stream) ([]*wandbv1.JSONItem, error) {
	if s.run == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !s.done {
		if err := s.run.flush(ctx); err != nil {
			return nil, err
		}
	}
	q, err := c.g.c.Query(ctx, s.run.id, nil, 0)
	if err != nil {
		return nil, err
	}
	var out []*wandbv1.JSONItem
	for _, it := range q.GetState().GetSummary() {
		out = append(out, &wandbv1.JSONItem{NestedKey: strings.Split(it.GetKey(), "/"), ValueJson: valueJSON(it.GetValue())})
	}
	return out, nil
}

// sampled answers sampled_history with no series: the SDK only prints
// them, and wandb.finish must not wait for a scan of the run.
func (c *conn) sampled(s *stream) ([]*wandbv1.SampledHistoryItem, error) {
	return nil, nil
}

// SocketPath is where a service rooted at root serves the wandb SDK.
func SocketPath(root string) string { return filepath.Join(root, "wandb.sock") }

// PortPath is where a service rooted at root that also serves the wandb SDK
// on TCP writes that port.
func PortPath(root string) string { return filepath.Join(root, "wandb.port") }
