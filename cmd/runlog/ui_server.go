package main

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

// uiServer serves the web UI on its own listener; stop closes it and waits
// for its goroutine.
type uiServer struct {
	srv    *http.Server
	cancel context.CancelFunc // ends the requests in progress (live pages)
	url    string
	done   chan struct{}
	once   sync.Once
}

// startUI listens on addr and serves h, over TLS when cert and key are set.
func startUI(log *slog.Logger, addr string, h http.Handler, cert, key string) (*uiServer, error) {
	return startHTTP(log, "web ui", addr, h, cert, key)
}

// startHTTP listens on addr and serves h; what names the server in errors
// and the log.
func startHTTP(log *slog.Logger, what, addr string, h http.Handler, cert, key string) (*uiServer, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen %s: %w", what, addr, err)
	}
	scheme := "http"
	if cert != "" {
		scheme = "https"
	}
	base, cancel := context.WithCancel(context.Background())
	u := &uiServer{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return base }},
		cancel: cancel,
		url:    scheme + "://" + lis.Addr().String() + "/",
		done:   make(chan struct{}),
	}
	go func() {
		defer close(u.done)
		var err error
		if cert != "" {
			err = u.srv.ServeTLS(lis, cert, key)
		} else {
			err = u.srv.Serve(lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" stopped", "err", err)
		}
	}()
	log.Info(what+" listening", "url", u.url)
	return u, nil
}

// stop closes the listener and every connection (live pages hold theirs
// open), then waits for the server's goroutine.
func (u *uiServer) stop() {
	u.once.Do(func() {
		u.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := u.srv.Shutdown(ctx); err != nil {
			u.srv.Close()
		}
		<-u.done
	})
}
