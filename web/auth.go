package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

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
//
// Guessing is bounded twice: each client address gets a few failures, then
// waits (429 with Retry-After, doubling with each further failure), and at
// most bcryptSlots bcrypt comparisons run at once, whoever asks, so that
// guessing from many addresses cannot take the CPU from the daemon.
type authenticator struct {
	cfg     config.WebAuth
	log     *slog.Logger
	limiter *loginLimiter
	bcrypt  chan struct{} // a slot per bcrypt comparison running

	mu   sync.Mutex
	good map[[32]byte]bool
}

// bcryptWait is how long a login waits for a bcrypt slot before it is
// answered 503: under a flood, a queue would only grow.
const bcryptWait = 5 * time.Second

func newAuthenticator(cfg config.WebAuth, log *slog.Logger) *authenticator {
	return &authenticator{
		cfg:     cfg,
		log:     log,
		limiter: newLoginLimiter(),
		bcrypt:  make(chan struct{}, max(1, runtime.NumCPU()/2)),
		good:    map[[32]byte]bool{},
	}
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

func credKey(user, pass string) [32]byte { return sha256.Sum256([]byte(user + "\x00" + pass)) }

// remembered reports whether Basic credentials passed before.
func (a *authenticator) remembered(user, pass string) bool {
	if a.cfg.Username == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.good[credKey(user, pass)]
}

// errBusy is a login that found every bcrypt slot taken for bcryptWait.
var errBusy = errors.New("too many logins in progress")

// basicOK checks a username and password. With only a token configured,
// the token is accepted as the password (any username), so the UI stays
// reachable from a browser.
func (a *authenticator) basicOK(ctx context.Context, user, pass string) (bool, error) {
	if a.cfg.Username == "" {
		return a.tokenOK(pass), nil
	}
	timer := time.NewTimer(bcryptWait)
	defer timer.Stop()
	select {
	case a.bcrypt <- struct{}{}:
	case <-timer.C:
		return false, errBusy
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Both checks run whatever the first says: timing tells nothing of the username.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.Username)) == 1
	passOK := bcrypt.CompareHashAndPassword([]byte(a.cfg.Password), []byte(pass)) == nil
	<-a.bcrypt
	if !userOK || !passOK {
		return false, nil
	}
	a.mu.Lock()
	if len(a.good) >= 64 {
		clear(a.good)
	}
	a.good[credKey(user, pass)] = true
	a.mu.Unlock()
	return true, nil
}

// requireAuth lets through requests with good credentials, and health
// checks, when authentication is configured. Requests without credentials
// get the challenge and count for nothing; wrong credentials count against
// the client's address.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.auth
		if !a.enabled() || r.URL.Path == "/api/v1/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		bearer, isBearer := "", false
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			bearer, isBearer = strings.TrimSpace(h[7:]), true
		}
		user, pass, isBasic := r.BasicAuth()
		if !isBearer && !isBasic {
			s.challenge(w, r)
			return
		}
		if isBasic && a.remembered(user, pass) {
			next.ServeHTTP(w, r)
			return
		}
		addr := clientAddr(r)
		done, wait := a.limiter.begin(addr)
		if wait > 0 {
			s.tooMany(w, r, wait)
			return
		}
		var ok bool
		var err error
		if isBearer {
			ok = a.tokenOK(bearer)
		} else {
			ok, err = a.basicOK(r.Context(), user, pass)
		}
		if err != nil {
			done(attemptVoid)
			w.Header().Set("Retry-After", "1")
			if isAPI(r) {
				writeError(w, http.StatusServiceUnavailable, "too many logins in progress; try again in a second", nil)
				return
			}
			http.Error(w, "Too many logins in progress; try again in a second.", http.StatusServiceUnavailable)
			return
		}
		if ok {
			done(attemptOK)
			next.ServeHTTP(w, r)
			return
		}
		if locked := done(attemptFailed); locked > 0 {
			a.log.Warn("failed logins: the address waits before its next try", "remote", addr, "wait", locked)
		} else {
			a.log.Info("failed login", "remote", addr)
		}
		s.challenge(w, r)
	})
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	if isAPI(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tagwatch"`)
		writeError(w, http.StatusUnauthorized, "authentication required: Authorization: Bearer <token>, or HTTP Basic", nil)
		return
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="tagwatch", charset="UTF-8"`)
	http.Error(w, "Unauthorized", http.StatusUnauthorized)
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := fmt.Sprintf("too many failed logins from your address: try again in %d s", secs)
	if isAPI(r) {
		writeError(w, http.StatusTooManyRequests, msg, nil)
		return
	}
	http.Error(w, "Too many failed logins from your address: try again in "+strconv.Itoa(secs)+" s.", http.StatusTooManyRequests)
}

// clientAddr is the address failures are counted against: the peer's IP,
// an IPv6 peer's /64 (one host holds a whole /64). Behind a reverse proxy
// every client has the proxy's address; X-Forwarded-For is not read, since
// anyone can send it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
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
