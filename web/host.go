package web

import (
	"net"
	"net/http"
	"strings"
	"sync"
)

// hostPolicy says which Host headers the server answers. A page on another
// site can point its own name at 127.0.0.1 (DNS rebinding) and then use
// tagwatch's API as the admin's browser, same-origin as far as the browser
// can tell: the one thing it cannot change is the name it sends in Host.
// So the server answers only the names it is meant to serve: loopback names
// and addresses, the listen address's host, and web.hosts. An IP address
// cannot be rebound (the page's origin would be that address itself), so
// when the server listens on every interface (0.0.0.0 or ::, as in the
// container image) any IP-literal Host is accepted too.
type hostPolicy struct {
	names map[string]bool // lowercased, no trailing dot, IPs in canonical form
	anyIP bool

	mu     sync.Mutex
	logged map[string]bool // refused names already logged
}

func newHostPolicy(listen string, hosts []string) *hostPolicy {
	p := &hostPolicy{names: map[string]bool{}, logged: map[string]bool{}}
	if listen != "" {
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			host = listen
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			p.anyIP = true
		} else if h := normalHost(host); h != "" {
			p.names[h] = true
		}
	}
	for _, h := range hosts {
		if h = normalHost(h); h != "" {
			p.names[h] = true
		}
	}
	return p
}

// normalHost is a Host header's (or a setting's) host, without the port,
// lowercased, without a trailing dot; an IP in canonical form.
func normalHost(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}

func (p *hostPolicy) allows(hostHeader string) bool {
	h := normalHost(hostHeader)
	if h == "" {
		return false
	}
	if h == "localhost" || p.names[h] {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback() || p.anyIP
	}
	return false
}

// firstRefusal reports whether a refused name is seen for the first time,
// so the log names each once (a rebinding page may retry in a loop).
func (p *hostPolicy) firstRefusal(h string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logged[h] || len(p.logged) >= 256 {
		return false
	}
	p.logged[h] = true
	return true
}

// checkHost refuses requests whose Host the server does not serve, on
// every route, authenticated or not. The health check is left out: it says
// nothing but "ok", and probes (Docker's HEALTHCHECK, Kubernetes) name the
// server however their network reaches it.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/healthz" || s.hosts.allows(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		name := normalHost(r.Host)
		if len(name) > 100 {
			name = name[:100] + "…"
		}
		if s.hosts.firstRefusal(name) {
			s.Log.Warn("refused a request for a host name this server does not serve; add it to web.hosts if it is yours",
				"host", name, "remote", r.RemoteAddr)
		}
		msg := "This server does not answer to the name \"" + name + "\": it serves localhost, loopback addresses, its listen address" +
			" and the names in web.hosts (TAGWATCH_WEB_HOSTS). If you reach tagwatch by that name (a reverse proxy's), add it there."
		if name == "" {
			msg = "The request names no host (Host header): this server answers only requests that name it."
		}
		if isAPI(r) {
			writeError(w, http.StatusForbidden, msg, nil)
			return
		}
		s.errorPage(w, r, &opError{Status: http.StatusForbidden, Msg: msg})
	})
}
