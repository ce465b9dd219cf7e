// Package web serves tagwatch's UI (dashboard, history, Settings →
// Registries and Notifications) and its JSON API under /api/v1. Templates,
// CSS and JavaScript are embedded: no build step, nothing fetched from
// elsewhere.
package web

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Checker is what the web needs of the daemon: a cycle on demand and its
// progress. *watcher.Daemon implements it.
type Checker interface {
	CheckNow() bool
	Status() watcher.Status
}

// Server holds what the handlers need. Build it, then serve Handler().
type Server struct {
	Store      *store.Store
	Registries *registries.Live
	Daemon     Checker
	// Auth protects the UI (HTTP Basic) and the API (Bearer token, or
	// Basic); the zero value leaves both open.
	Auth config.WebAuth
	Log  *slog.Logger
	// Metrics serves GET /metrics (Prometheus), behind the same auth as
	// the API; nil leaves the route out.
	Metrics http.Handler
	// Listen is the address the server listens on: its host is one the
	// Host check accepts, and an unspecified one (0.0.0.0, ::) lets
	// requests name the server by any IP address.
	Listen string
	// Hosts are more host names to answer to (web.hosts): a reverse
	// proxy's public name.
	Hosts []string
	// AllowLinkLocal lets connection tests reach link-local and cloud
	// metadata addresses (web.allowlinklocal).
	AllowLinkLocal bool
	// Notifiers are the running notifiers: the config file's (read-only)
	// and those saved in Settings → Notifications, which the UI and the API
	// add, edit and delete; nil: not available.
	Notifiers Notifiers

	// mu serializes registry and notifier changes: read the store, apply, write.
	mu    sync.Mutex
	once  sync.Once
	pages *pages
	auth  *authenticator
	hosts *hostPolicy
	// notifierTests are the outcomes of the notifiers' last tests.
	notifierTests notifierTests
	// formTests are the tests of registry settings not saved yet.
	formTests formTests
}

//go:embed static
var staticFS embed.FS

//go:embed templates
var templateFS embed.FS

//go:embed openapi.json
var openAPI []byte

func (s *Server) init() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		s.pages = mustParsePages()
		s.auth = newAuthenticator(s.Auth, s.Log)
		s.hosts = newHostPolicy(s.Listen, s.Hosts)
	})
}

// Handler is the whole site: pages, static files and the API, behind the
// security headers, the Host check, cross-origin protection and
// authentication.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()

	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(http.FileServerFS(static))))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/mark.svg", http.StatusMovedPermanently)
	})

	// Pages.
	mux.HandleFunc("GET /{$}", s.dashboardPage)
	mux.HandleFunc("POST /check", s.checkForm)
	mux.HandleFunc("POST /images/accept", s.acceptForm)
	mux.HandleFunc("GET /history", s.historyPage)
	mux.HandleFunc("GET /settings/registries", s.registriesPage)
	mux.HandleFunc("GET /settings/registries/new/{kind}", s.newRegistryPage)
	mux.HandleFunc("POST /settings/registries/new/{kind}", s.newRegistryForm)
	mux.HandleFunc("GET /settings/registries/{kind}/{name}/edit", s.editRegistryPage)
	mux.HandleFunc("POST /settings/registries/{kind}/{name}/edit", s.editRegistryForm)
	mux.HandleFunc("POST /settings/registries/{kind}/{name}/test", s.testRegistryForm)
	mux.HandleFunc("POST /settings/registries/{kind}/{name}/reset", s.resetRegistryForm)
	mux.HandleFunc("POST /settings/registries/{kind}/{name}/delete", s.deleteRegistryForm)
	mux.HandleFunc("GET /settings/notifications", s.notificationsPage)
	mux.HandleFunc("GET /settings/notifications/new", s.newNotifierPage)
	mux.HandleFunc("POST /settings/notifications/new", s.newNotifierForm)
	mux.HandleFunc("GET /settings/notifications/{name}/edit", s.editNotifierPage)
	mux.HandleFunc("POST /settings/notifications/{name}/edit", s.editNotifierForm)
	mux.HandleFunc("POST /settings/notifications/{name}/delete", s.deleteNotifierForm)
	mux.HandleFunc("POST /settings/notifications/{name}/test", s.testNotifierForm)
	mux.HandleFunc("POST /settings/notifications/{name}/retry", s.retryNotifierForm)
	mux.HandleFunc("GET /settings/backup", s.backupPage)

	// API.
	mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	mux.HandleFunc("GET /api/v1/healthz", s.apiHealth)
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /api/v1/status", s.apiStatus)
	mux.HandleFunc("GET /api/v1/watchers", s.apiWatchers)
	mux.HandleFunc("POST /api/v1/check", s.apiCheck)
	mux.HandleFunc("GET /api/v1/images", s.apiImages)
	mux.HandleFunc("POST /api/v1/images/accept", s.apiAcceptImages)
	mux.HandleFunc("POST /api/v1/images/{key}/accept", s.apiAcceptImage)
	mux.HandleFunc("GET /api/v1/history", s.apiHistory)
	mux.HandleFunc("GET /api/v1/registries", s.apiListRegistries)
	mux.HandleFunc("POST /api/v1/registries", s.apiCreateRegistry)
	mux.HandleFunc("POST /api/v1/registries/test", s.apiTestUnsaved)
	mux.HandleFunc("GET /api/v1/registries/{kind}/{name}", s.apiGetRegistry)
	mux.HandleFunc("PUT /api/v1/registries/{kind}/{name}", s.apiPutRegistry)
	mux.HandleFunc("DELETE /api/v1/registries/{kind}/{name}", s.apiDeleteRegistry)
	mux.HandleFunc("POST /api/v1/registries/{kind}/{name}/reset", s.apiResetRegistry)
	mux.HandleFunc("POST /api/v1/registries/{kind}/{name}/test", s.apiTestRegistry)
	mux.HandleFunc("GET /api/v1/notifiers", s.apiListNotifiers)
	mux.HandleFunc("POST /api/v1/notifiers", s.apiCreateNotifier)
	mux.HandleFunc("GET /api/v1/notifiers/{name}", s.apiGetNotifier)
	mux.HandleFunc("PUT /api/v1/notifiers/{name}", s.apiPutNotifier)
	mux.HandleFunc("DELETE /api/v1/notifiers/{name}", s.apiDeleteNotifier)
	mux.HandleFunc("POST /api/v1/notifiers/{name}/test", s.apiTestNotifier)
	mux.HandleFunc("GET /api/v1/notifiers/{name}/outbox", s.apiNotifierOutbox)
	mux.HandleFunc("POST /api/v1/notifiers/{name}/outbox/retry", s.apiRetryNotifier)
	mux.HandleFunc("GET /api/v1/backup", s.apiBackup)

	var h http.Handler = s.fallback(mux)
	h = s.requireAuth(h)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPI(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused", nil)
			return
		}
		http.Error(w, "Forbidden: cross-origin request refused", http.StatusForbidden)
	}))
	h = cop.Handler(h)
	h = s.checkHost(h)
	return secureHeaders(h)
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// contentSecurityPolicy allows only this origin's scripts, styles and
// images: no inline script or style, no frames, forms post here only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// fallback answers the mux's own 404 and 405 like every other error: in
// JSON under /api/, as a page elsewhere.
func (s *Server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		c := &capture{header: http.Header{}}
		h.ServeHTTP(c, r)
		code := c.code
		if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			mux.ServeHTTP(w, r) // a redirect, e.g. to add a trailing slash
			return
		}
		if allow := c.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		msg := "There is no page at " + r.URL.Path + "."
		if code == http.StatusMethodNotAllowed {
			msg = r.Method + " is not allowed on " + r.URL.Path + "."
		}
		if isAPI(r) {
			writeError(w, code, strings.TrimSuffix(msg, "."), nil)
			return
		}
		s.errorPage(w, r, &opError{Status: code, Msg: msg})
	})
}

// capture records the status and headers a handler writes, discarding the body.
type capture struct {
	header http.Header
	code   int
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}
func (c *capture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
