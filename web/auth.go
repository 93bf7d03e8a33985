package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

const cookieName = "runlog_session"

// auth checks the hub's token on every request but the login form. The
// cookie holds an HMAC of the token, not the token: a cookie that leaks
// does not give away what the hub's RPCs accept.
type auth struct {
	token   []byte
	session string
	secure  bool
}

func newAuth(token string, secure bool) *auth {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("runlog web session v1"))
	return &auth{token: []byte(token), session: hex.EncodeToString(mac.Sum(nil)), secure: secure}
}

func (a *auth) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), a.token) == 1
}

func (a *auth) allowed(r *http.Request) bool {
	switch r.URL.Path {
	case "/login", "/static/app.css":
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		return ok && a.tokenOK(t)
	}
	c, err := r.Cookie(cookieName)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.session)) == 1
}

// deny answers 401: JSON for the API, the login form for a page.
func (a *auth) deny(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runlog"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthorized: log in or send Authorization: Bearer TOKEN"}` + "\n"))
		return
	}
	writeLogin(w, http.StatusUnauthorized, "")
}

func writeLogin(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(loginHead))
	if msg != "" {
		// msg is one of our constants; still escaped like everything else.
		w.Write([]byte(`<p class="login-error" id="login-error">` + htmlEscape(msg) + `</p>`))
	}
	w.Write([]byte(loginTail))
}

const loginHead = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>runlog · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head>
<body class="login-body"><form class="login" method="post" action="/login"><h1><span class="logo">runlog</span></h1>
<p>This hub needs its token.</p>`

const loginTail = `<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Log in</button></form></body></html>`

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	writeLogin(w, http.StatusOK, "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !s.auth.tokenOK(r.PostForm.Get("token")) {
		writeLogin(w, http.StatusUnauthorized, "Wrong token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.auth.session, Path: "/",
		HttpOnly: true, Secure: s.auth.secure, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

var htmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

func htmlEscape(s string) string { return htmlReplacer.Replace(s) }
