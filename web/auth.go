package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
)

// authenticator checks HTTP Basic credentials against the configured user
// (bcrypt hash) and bearer tokens against the configured token.
//
// A browser sends its Basic credentials with every request, the page's
// status polling included, and bcrypt is slow by design: credentials that
// passed once are remembered, as a SHA-256 of them and never in clear, so
// each request after the first costs a hash, not a bcrypt.
type authenticator struct {
	cfg config.WebAuth

	mu   sync.Mutex
	good map[[32]byte]bool
}

func newAuthenticator(cfg config.WebAuth) *authenticator {
	return &authenticator{cfg: cfg, good: map[[32]byte]bool{}}
}

func (a *authenticator) enabled() bool { return a.cfg.Username != "" || a.cfg.Token != "" }

// tokenOK compares a bearer token in constant time.
func (a *authenticator) tokenOK(token string) bool {
	if a.cfg.Token == "" || token == "" {
		return false
	}
	want := sha256.Sum256([]byte(a.cfg.Token))
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// basicOK checks a username and password. With only a token configured,
// the token is accepted as the password (any username), so the UI stays
// reachable from a browser.
func (a *authenticator) basicOK(user, pass string) bool {
	if a.cfg.Username == "" {
		return a.tokenOK(pass)
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	a.mu.Lock()
	ok := a.good[key]
	a.mu.Unlock()
	if ok {
		return true
	}
	// Both checks run whatever the first says: timing tells nothing of the username.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.Username)) == 1
	passOK := bcrypt.CompareHashAndPassword([]byte(a.cfg.Password), []byte(pass)) == nil
	if !userOK || !passOK {
		return false
	}
	a.mu.Lock()
	if len(a.good) >= 64 {
		clear(a.good)
	}
	a.good[key] = true
	a.mu.Unlock()
	return true
}

// allowed reports whether the request carries good credentials: a bearer
// token, or Basic credentials (the browser's, also for the page's own API
// calls).
func (a *authenticator) allowed(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return a.tokenOK(strings.TrimSpace(h[7:]))
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return a.basicOK(user, pass)
	}
	return false
}

// requireAuth lets through requests with good credentials, and health
// checks, when authentication is configured.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.enabled() || r.URL.Path == "/api/v1/healthz" || s.auth.allowed(r) {
			next.ServeHTTP(w, r)
			return
		}
		if isAPI(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tagwatch"`)
			writeError(w, http.StatusUnauthorized, "authentication required: Authorization: Bearer <token>, or HTTP Basic", nil)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="tagwatch", charset="UTF-8"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	})
}

// CheckListen refuses to serve beyond the loopback interface without
// authentication, unless the admin said so (web.allowremote): registry
// credentials are managed through this server.
func CheckListen(addr string, auth, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not a host:port address: %v", err)
	}
	if auth || allowRemote || isLoopback(host) {
		return nil
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	return errors.New("listening on " + where + " would expose the UI and API (which manage registry credentials) " +
		"beyond this machine without authentication: set web.auth (username and bcrypt password hash, or token), " +
		"listen on 127.0.0.1, or set web.allowremote: true if another layer protects it")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
