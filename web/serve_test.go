package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/runlog/runlog/web"
)

func TestServeStopEndsLiveRequests(t *testing.T) {
	started := make(chan struct{})
	ended := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done() // a live page: open until the server ends it
		close(ended)
	})
	s, err := web.Serve("127.0.0.1:0", h, web.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/") {
		t.Fatalf("URL %q: want http://127.0.0.1:PORT/", s.URL())
	}
	resp, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	s.Stop()
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned with a request still in progress")
	}
	s.Stop() // a second Stop is harmless
	if _, err := http.Get(s.URL()); err == nil {
		t.Fatal("the server still answers after Stop")
	}
}

func TestServeWantsCertWithKey(t *testing.T) {
	if s, err := web.Serve("127.0.0.1:0", http.NotFoundHandler(), web.ServeOptions{CertFile: "cert.pem"}); err == nil {
		s.Stop()
		t.Fatal("served with a certificate and no key")
	}
}
