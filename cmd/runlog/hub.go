package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/internal/dirsync"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/web"
)

func cmdHub(args []string) int {
	fs := flag.NewFlagSet("runlog hub", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog hub --listen HOST:PORT --store DIR|postgres://... [flags]

Runs the hub that services and "runlog sync" push runs into. Every record it
acknowledges is fsynced in the store; a resend is recognised by (run, seq) and
stored once. SIGTERM or SIGINT stops it cleanly.

--store DIR keeps runs in one embedded file (one hub per directory).
--store postgres://USER@HOST:PORT/DB?sslmode=... keeps them in PostgreSQL:
any number of hubs may share the database. The schema is migrated at start;
--migrate-only migrates and exits.

With --http, the hub also serves Prometheus metrics at /metrics on that
address. Under --token-file a scrape must carry the token as any API call
does ("Authorization: Bearer TOKEN"; in Prometheus' scrape config,
authorization.credentials_file), since the hub may face a wider network.

Flags:
`)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:7070", "address to listen on, HOST:PORT (port 0 picks a free one; see --port-file)")
	dir := fs.String("store", "", "directory of the hub's store (created if missing), or a PostgreSQL connection string postgres://...")
	migrateOnly := fs.Bool("migrate-only", false, "with a postgres:// store: apply the schema's migrations and exit")
	maxConns := fs.Int("db-conns", 0, "with a postgres:// store: most connections to the database (0: 8)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token every RPC must carry")
	cert := fs.String("tls-cert", "", "PEM certificate: serve TLS (clients use grpcs://)")
	key := fs.String("tls-key", "", "PEM private key of --tls-cert")
	portFile := fs.String("port-file", "", `write {"pid":..,"tcp":"HOST:PORT"} here, atomically, once listening`)
	httpAddr := fs.String("http", "", "also serve the web UI on this address, HOST:PORT (for example 127.0.0.1:8080); --token-file and --tls-cert apply to it too")
	logFormat := fs.String("log-format", "text", "log `FORMAT` on stderr: text or json")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long to let streams finish on shutdown before closing them")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "runlog hub: --store DIR is required and no arguments are taken")
		fs.Usage()
		return 2
	}
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(os.Stderr, "runlog hub: --tls-cert and --tls-key go together")
		return 2
	}
	log, err := newLogger(*logFormat, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog hub: %v\n", err)
		return 2
	}
	if *migrateOnly {
		if !store.IsPostgresURL(*dir) {
			fmt.Fprintln(os.Stderr, "runlog hub: --migrate-only needs --store postgres://...")
			return 2
		}
		found, err := store.MigratePostgres(context.Background(), *dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runlog hub: %v\n", err)
			return 1
		}
		fmt.Printf("schema at version %d (was %d)\n", store.SchemaVersion(), found)
		return 0
	}
	if err := runHub(log, hubConfig{
		listen: *listen, dir: *dir, tokenFile: *tokenFile, cert: *cert, key: *key,
		portFile: *portFile, grace: *grace, http: *httpAddr, dbConns: *maxConns,
	}); err != nil {
		fmt.Fprintf(os.Stderr, "runlog hub: %v\n", err)
		return 1
	}
	return 0
}

type hubConfig struct {
	listen, dir, tokenFile, cert, key, portFile, http string
	grace                                             time.Duration
	dbConns                                           int
}

// openHubStore opens --store, a directory or a PostgreSQL URL.
func openHubStore(ctx context.Context, log *slog.Logger, c hubConfig) (store.Served, error) {
	st, err := store.OpenURL(ctx, c.dir, store.URLOptions{
		Bolt:     store.Options{Logger: log},
		Postgres: store.PostgresOptions{Logger: log, MaxConns: int32(c.dbConns)},
	})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: is another hub running on --store %s?", err, c.dir)
	}
	return st, err
}

// hubMemoryLimit is the hub's soft heap limit (see runHub).
const hubMemoryLimit = 64 << 20

func runHub(log *slog.Logger, c hubConfig) error {
	// Catch the signals before anything can tell that the hub is up (the
	// port file): a SIGTERM right after it must still stop it cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	token, err := hub.ReadTokenFile(c.tokenFile)
	if err != nil {
		return err
	}
	// The hub holds only the batches in flight and a bounded cache of
	// runs' state: a soft limit keeps the garbage collector from letting
	// the heap grow to twice that under a steady stream of batches. An
	// explicit GOMEMLIMIT wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(hubMemoryLimit)
	}
	st, err := openHubStore(ctx, log, c)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := newRegistry()
	if sc, ok := st.(interface{ Stats() store.Stats }); ok {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "runlog_hub_store_commits_total",
			Help: "Transactions the embedded store committed (appends are grouped into them).",
		}, func() float64 { return float64(sc.Stats().Commits) }))
	}
	gs, err := hub.NewServer(st, hub.Options{Logger: log, Token: token, TLSCertFile: c.cert, TLSKeyFile: c.key, Metrics: reg, ShutdownTimeout: c.grace})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", strings.TrimPrefix(c.listen, "tcp://"))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	info := map[string]any{"pid": os.Getpid(), "tcp": lis.Addr().String()}
	if c.http != "" {
		ui, err := web.Serve(c.http, withMetrics(web.New(web.NewHubSource(st), web.Options{
			Token: token, Title: "hub " + lis.Addr().String(), Logger: log, SecureCookie: c.cert != "",
		}), metricsHandler(reg, token)), web.ServeOptions{Name: "web ui", CertFile: c.cert, KeyFile: c.key, Logger: log})
		if err != nil {
			lis.Close()
			return err
		}
		defer ui.Stop()
		// Live pages hold requests open: close them as soon as the hub
		// stops, beside its streams.
		context.AfterFunc(ctx, ui.Stop)
		info["http"] = ui.URL()
	}
	if c.portFile != "" {
		data, err := json.Marshal(info)
		if err == nil {
			err = dirsync.WriteFile(c.portFile, append(data, '\n'))
		}
		if err != nil {
			lis.Close()
			return fmt.Errorf("port file: %w", err)
		}
		defer os.Remove(c.portFile)
	}
	log.Info("hub listening", "addr", lis.Addr().String(), "store", st.Path(), "tls", c.cert != "", "token", token != "")
	if err := gs.Run(ctx, lis); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	log.Info("hub stopped")
	return nil
}
