package regtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is an HTTP proxy on 127.0.0.1, as a corporate or homelab proxy is:
// it forwards plain-HTTP requests (absolute-form GETs) and tunnels CONNECT
// for HTTPS, and logs both, so a test can prove a client went through it.
// Its Hosts stand in for DNS: a client asking for fra.ocir.io:443 reaches
// the local server the test mapped that name to, verifying the server's
// certificate under the real name. A host it does not know it dials as
// asked; Refuse makes it answer 403 instead.
type Proxy struct {
	URL string // "http://127.0.0.1:PORT"
	// Hosts maps host:port as clients ask for it to the address dialled.
	Hosts map[string]string
	// Refuse, when set, refuses every host not in Hosts with 403: a test
	// that must never reach the internet.
	Refuse bool

	mu  sync.Mutex
	log []ProxyRequest
}

// ProxyRequest records one request the Proxy served.
type ProxyRequest struct {
	Method string // CONNECT, GET, HEAD…
	Target string // host:port asked for
	URL    string // the absolute URL of a forwarded request; "" for CONNECT
	Status int    // what the proxy answered (200 for a tunnel it opened)
}

// StartProxy starts a Proxy, stopped when the test ends. Set Hosts and
// Refuse before the first request.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	p := &Proxy{Hosts: map[string]string{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, p.address(addr))
	}
	forward := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL // absolute-form: the client named the target
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{DialContext: dial, Proxy: nil, ResponseHeaderTimeout: 30 * time.Second},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := ProxyRequest{Method: r.Method, Target: r.Host}
		if r.Method != http.MethodConnect {
			rec.URL = r.URL.String()
			if !strings.Contains(rec.Target, ":") {
				rec.Target += ":" + map[bool]string{true: "443", false: "80"}[r.URL.Scheme == "https"]
			}
		}
		status := p.serve(w, r, rec.Target, forward, dial)
		rec.Status = status
		p.mu.Lock()
		p.log = append(p.log, rec)
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *Proxy) address(target string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.Hosts[target]; ok {
		return a
	}
	return target
}

func (p *Proxy) known(target string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.Hosts[target]
	return ok
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, target string, forward http.Handler, dial func(context.Context, string, string) (net.Conn, error)) int {
	if p.Refuse && !p.known(target) {
		http.Error(w, "regtest proxy: "+target+" is not a host of this test", http.StatusForbidden)
		return http.StatusForbidden
	}
	if r.Method != http.MethodConnect {
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		forward.ServeHTTP(rw, r)
		return rw.status
	}
	up, err := dial(r.Context(), "tcp", target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return http.StatusBadGateway
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	down, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return http.StatusInternalServerError
	}
	if _, err := down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		up.Close()
		down.Close()
		return http.StatusOK
	}
	go func() {
		defer up.Close()
		defer down.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, buf); done <- struct{}{} }()
		go func() { _, _ = io.Copy(down, up); done <- struct{}{} }()
		<-done
	}()
	return http.StatusOK
}

// Log returns the requests served so far, oldest first.
func (p *Proxy) Log() []ProxyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxyRequest(nil), p.log...)
}

// Targets returns the distinct host:port the Proxy was asked for, in order.
func (p *Proxy) Targets() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range p.Log() {
		if !seen[r.Target] {
			seen[r.Target] = true
			out = append(out, r.Target)
		}
	}
	return out
}
