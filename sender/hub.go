package sender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Errors of the package. Test with errors.Is.
var (
	// ErrConflict is returned when the upstream holds more records of a run
	// than its log: a different run with the same id was synced there.
	ErrConflict = errors.New("sender: upstream holds more of the run than the log")
	// ErrBadURL is returned by ParseURL and DialHub for an upstream URL that
	// is not grpc://HOST:PORT or grpcs://HOST:PORT.
	ErrBadURL = errors.New("sender: bad upstream URL")
)

// ParseURL checks an upstream URL and returns its canonical form (the name
// cursors and errors are kept under), the gRPC target and whether it uses
// TLS. grpc://HOST:PORT is plaintext, grpcs://HOST:PORT is TLS. Several
// hubs in front of one database are one upstream,
// grpc://HOST:PORT,HOST:PORT,...: the target is the same comma-separated
// list, which DialHub tries in order.
func ParseURL(raw string) (canonical, target string, secure bool, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", false, fmt.Errorf("%w %q: want grpc://HOST:PORT or grpcs://HOST:PORT", ErrBadURL, raw)
	}
	switch strings.ToLower(scheme) {
	case "grpc":
	case "grpcs":
		secure = true
	default:
		return "", "", false, fmt.Errorf("%w %q: scheme %q, want grpc://HOST:PORT or grpcs://HOST:PORT", ErrBadURL, raw, scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	var addrs []string
	for _, a := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" || strings.ContainsAny(a, "/?#@") {
			return "", "", false, fmt.Errorf("%w %q: want %s://HOST:PORT (or HOST:PORT,HOST:PORT,... for several hubs)", ErrBadURL, raw, strings.ToLower(scheme))
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	target = strings.Join(addrs, ",")
	return strings.ToLower(scheme) + "://" + target, target, secure, nil
}

// hubsResolver gives the connection every address of a multi-hub URL. With
// gRPC's pick_first policy the connection uses the first hub that answers
// and, when that hub goes away, tries them in order again: the sender's
// next session opens on another hub and resumes from the mark it reports.
// A single HOST:PORT goes through gRPC's DNS resolver, which does the same
// with the addresses of a name.
func hubsResolver(target string) (grpc.DialOption, string) {
	r := manual.NewBuilderWithScheme("runlog-hubs")
	var st resolver.State
	for _, a := range strings.Split(target, ",") {
		host, _, _ := net.SplitHostPort(a)
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	r.InitialState(st)
	return grpc.WithResolvers(r), r.Scheme() + ":///hubs"
}

// HubOptions configure DialHub. The zero value is a working default.
type HubOptions struct {
	// Token is the bearer token sent with every call; empty sends none.
	Token string
	// CAFile is a PEM file of certificates trusted for grpcs:// besides the
	// system's.
	CAFile string
	// MaxBackoff caps the wait between attempts to reconnect: while the hub
	// is down, one connection attempt per MaxBackoff at most, however many
	// runs wait for it. Zero means 5 seconds.
	MaxBackoff time.Duration
	// DialOptions are added to the connection's options.
	DialOptions []grpc.DialOption
}

// Hub is a connection to a runlog hub. It is an Upstream, and Client gives
// the query RPCs. It connects lazily, on the first call. It is safe for
// concurrent use.
type Hub struct {
	url    string
	conn   *grpc.ClientConn
	client runlogv1.HubClient
}

var _ Upstream = (*Hub)(nil)

// DialHub prepares a connection to the hub at url. No connection is made
// until the first call.
func DialHub(url string, opts HubOptions) (*Hub, error) {
	canonical, target, secure, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	dopts := []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if secure {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("dial hub %s: %w", canonical, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("dial hub %s: no certificate in %s", canonical, opts.CAFile)
			}
		}
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	} else {
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if opts.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer(opts.Token)))
	}
	ex := explainer{target: target, secure: secure}
	dopts = append(dopts, grpc.WithChainUnaryInterceptor(ex.unary), grpc.WithChainStreamInterceptor(ex.stream))
	dopts = append(dopts, opts.DialOptions...)
	dial := target
	if strings.Contains(target, ",") {
		var ropt grpc.DialOption
		ropt, dial = hubsResolver(target)
		dopts = append(dopts, ropt)
	}
	conn, err := grpc.NewClient(dial, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dial hub %s: %w", canonical, err)
	}
	return &Hub{url: canonical, conn: conn, client: runlogv1.NewHubClient(conn)}, nil
}

// URL returns the hub's canonical URL.
func (h *Hub) URL() string { return h.url }

// Client returns the hub's gRPC client for queries.
func (h *Hub) Client() runlogv1.HubClient { return h.client }

// Close closes the connection.
func (h *Hub) Close() error { return h.conn.Close() }

// History returns the rows of a run's history that req selects, read to the
// end of the hub's stream. The hub bounds the rows by req.MaxSamples. Errors
// are the hub's gRPC status, unwrapped, as from Client's methods.
func (h *Hub) History(ctx context.Context, req *runlogv1.HubHistoryRequest) ([]*runlogv1.HistorySample, error) {
	stream, err := h.client.History(ctx, req)
	if err != nil {
		return nil, err
	}
	var rows []*runlogv1.HistorySample
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, resp.GetSamples()...)
	}
}

// Open implements Upstream with one Ingest stream.
func (h *Hub) Open(ctx context.Context, runID string) (Stream, error) {
	s, err := h.client.Ingest(ctx)
	if err != nil {
		return nil, err
	}
	return &hubStream{s: s, runID: runID}, nil
}

type hubStream struct {
	s     grpc.BidiStreamingClient[runlogv1.IngestRequest, runlogv1.IngestResponse]
	runID string
}

func (h *hubStream) Send(batch uint64, records [][]byte) error {
	// SendMsg encodes the request before it returns, so records may be
	// reused afterwards.
	return h.s.Send(&runlogv1.IngestRequest{RunId: h.runID, Batch: batch, Records: records})
}

func (h *hubStream) Recv() (uint64, uint64, error) {
	r, err := h.s.Recv()
	if err != nil {
		return 0, 0, err
	}
	return r.GetBatch(), r.GetHighWater(), nil
}

func (h *hubStream) Close() error { return h.s.CloseSend() }

// MarkOf returns the high-water mark an upstream attached to an error.
func MarkOf(err error) (uint64, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if m, ok := d.(*runlogv1.HighWaterMark); ok {
			return m.GetHighWater(), true
		}
	}
	return 0, false
}

// bearer sends the token as "authorization: Bearer <token>". It does not
// insist on TLS: a grpc:// hub on loopback or a private network is a
// deliberate choice; use grpcs:// anywhere else.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (b bearer) RequireTransportSecurity() bool { return false }

// explainer adds how to fix it to a failed call whose cause is the
// configuration rather than the network: a URL whose scheme does not match
// the hub's TLS, an untrusted certificate, nothing listening. The code stays
// UNAVAILABLE: a hub being reconfigured or restarted can come back, and the
// retry policy is the caller's. The unary and stream interceptors share it,
// so queries (runlog show, runs --hub) and pushes say the same.
type explainer struct {
	target string
	secure bool
}

func (e explainer) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return err
	}
	msg := st.Message()
	var hint string
	switch {
	case e.secure && strings.Contains(msg, "first record does not look like a TLS handshake"):
		hint = "the hub at " + e.target + " does not speak TLS: use grpc://" + e.target + ", or start the hub with --tls-cert and --tls-key"
	case e.secure && strings.Contains(msg, "x509:"):
		hint = "the hub's certificate is not trusted for " + e.target + ": pass the certificate that signed it with --ca-file, and check that it names the host"
	case !e.secure && strings.Contains(msg, "error reading server preface"):
		hint = "the hub at " + e.target + " closed the connection before answering: if it serves TLS (--tls-cert), use grpcs://" + e.target
	case strings.Contains(msg, "connection refused"):
		hint = "nothing listens at " + e.target + ": is the hub running there?"
	default:
		return err
	}
	return status.Error(codes.Unavailable, msg+" ("+hint+")")
}

func (e explainer) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return e.explain(invoker(ctx, method, req, reply, cc, opts...))
}

func (e explainer) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, e.explain(err)
	}
	return explainedStream{ClientStream: cs, e: e}, nil
}

// explainedStream explains the errors its messages end with.
type explainedStream struct {
	grpc.ClientStream
	e explainer
}

func (s explainedStream) RecvMsg(m any) error { return s.e.explain(s.ClientStream.RecvMsg(m)) }

// DialTargets dials the hubs at urls with opts, one connection a hub: two
// URLs that name the same hub (see ParseURL) make one target. Connections
// are made lazily, by the senders. The returned function closes them; call
// it once nothing sends to the targets any more.
func DialTargets(urls []string, opts HubOptions) ([]Target, func(), error) {
	var (
		targets []Target
		hubs    []*Hub
	)
	closeAll := func() {
		for _, h := range hubs {
			h.Close()
		}
	}
	seen := map[string]bool{}
	for _, u := range urls {
		h, err := DialHub(u, opts)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		if seen[h.URL()] {
			h.Close()
			continue
		}
		seen[h.URL()] = true
		hubs = append(hubs, h)
		targets = append(targets, Target{URL: h.URL(), Up: h})
	}
	return targets, closeAll, nil
}
