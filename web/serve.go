package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServeOptions configure Serve. The zero value serves plain HTTP and logs
// nothing.
type ServeOptions struct {
	// Name names the server in errors and log lines ("web ui", "metrics").
	// Empty means "http".
	Name string
	// CertFile and KeyFile, when set, serve HTTPS with that pair; they go
	// together.
	CertFile, KeyFile string
	// Logger receives the listening address and a server that stops on
	// its own. Nil discards them.
	Logger *slog.Logger
}

// Serving is an HTTP server that Serve started on its own listener. Stop
// ends it; it is safe for concurrent use.
type Serving struct {
	srv    *http.Server
	cancel context.CancelFunc // ends the requests in progress (live pages)
	url    string
	done   chan struct{} // closed when the serving goroutine returns
	once   sync.Once
}

// Serve listens on addr (HOST:PORT; port 0 picks a free one) and serves h
// there from a goroutine that Stop ends and waits for.
func Serve(addr string, h http.Handler, opts ServeOptions) (*Serving, error) {
	if opts.Name == "" {
		opts.Name = "http"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tls := opts.CertFile != ""
	if tls != (opts.KeyFile != "") {
		return nil, fmt.Errorf("%s on %s: a certificate and its key go together", opts.Name, addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen %s: %w", opts.Name, addr, err)
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Serving{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return base }},
		cancel: cancel,
		url:    scheme + "://" + lis.Addr().String() + "/",
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		var err error
		if tls {
			err = s.srv.ServeTLS(lis, opts.CertFile, opts.KeyFile)
		} else {
			err = s.srv.Serve(lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(opts.Name+" stopped", "err", err)
		}
	}()
	log.Info(opts.Name+" listening", "url", s.url)
	return s, nil
}

// URL returns the server's base URL, scheme://HOST:PORT/, with the port
// the listener got.
func (s *Serving) URL() string { return s.url }

// Stop cancels the requests in progress (live pages hold theirs open),
// closes the listener and every connection, and waits for the serving
// goroutine. Later calls wait for the first to finish and do nothing.
func (s *Serving) Stop() {
	s.once.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
	})
}
