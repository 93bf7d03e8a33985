package web

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"
)

// Options configure New. The zero value serves without auth.
type Options struct {
	// Token, when set, is required of every page and API call: as the
	// session cookie the login form sets, or as "Authorization: Bearer".
	Token string
	// Title names the source in the page header ("hub", a root's path).
	Title string
	// Logger receives request errors. Nil discards them.
	Logger *slog.Logger
	// SecureCookie marks the session cookie Secure (the page is served
	// over TLS).
	SecureCookie bool
	// LiveInterval is the least time between two live updates of one page.
	// Zero means 250ms.
	LiveInterval time.Duration
	// Assets replaces the embedded static files (tests of a build without
	// the chart library).
	Assets fs.FS
}

// Server is the UI: pages and JSON API over a Source. It is an http.Handler
// safe for concurrent use.
type Server struct {
	src   Source
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	auth  *auth
	table *table
	// missing is set when the binary was built without the chart library.
	missing string
}

// New returns the UI over src.
func New(src Source, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LiveInterval <= 0 {
		opts.LiveInterval = 250 * time.Millisecond
	}
	if opts.Title == "" {
		opts.Title = "runlog"
	}
	assets := opts.Assets
	if assets == nil {
		assets = embeddedAssets()
	}
	s := &Server{src: src, opts: opts, log: opts.Logger, mux: http.NewServeMux(), table: newTable(src)}
	s.missing = checkAssets(assets)
	if opts.Token != "" {
		s.auth = newAuth(opts.Token, opts.SecureCookie)
	}
	s.routes(assets)
	return s
}

func (s *Server) routes(assets fs.FS) {
	m := s.mux
	m.HandleFunc("GET /{$}", s.page)
	m.HandleFunc("GET /run/{id}", s.page)
	m.HandleFunc("GET /compare", s.page)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("GET /api/info", s.apiInfo)
	m.HandleFunc("GET /api/runs", s.apiRuns)
	m.HandleFunc("GET /api/runs/{id}", s.apiRun)
	m.HandleFunc("GET /api/runs/{id}/chart", s.apiChart)
	m.HandleFunc("GET /api/runs/{id}/records", s.apiRecords)
	m.HandleFunc("GET /api/runs/{id}/verify", s.apiVerify)
	m.HandleFunc("GET /api/runs/{id}/log", s.apiLog)
	m.HandleFunc("GET /api/runs/{id}/live", s.apiLive)
	m.HandleFunc("GET /api/compare", s.apiCompare)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if s.auth != nil && !s.auth.allowed(r) {
		s.auth.deny(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// page serves the single page; the front end routes by path.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.missing != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(s.missing))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(indexHTML)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// fail answers an API error as JSON with a status that fits it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var be badRequest
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.As(err, &be):
		code = http.StatusBadRequest
	case r.Context().Err() != nil:
		return
	default:
		s.log.Warn("ui request failed", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

type badRequest struct{ msg string }

func (b badRequest) Error() string { return b.msg }
