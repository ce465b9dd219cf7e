package regtest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Throttle is a registry's rate limit in front of a Registry: a reverse
// proxy that answers 429 Too Many Requests (Retry-After: 1) to a request
// that arrives when PerSecond requests were let through in the second
// before it, as registries that limit request rates do, and passes the
// others on. It records every answer's status in the order the requests
// arrived.
type Throttle struct {
	URL       string // "http://127.0.0.1:PORT"
	Host      string
	PerSecond int

	mu       sync.Mutex
	passed   []time.Time // the last second's, oldest first
	statuses []int
	inFlight int
	peak     int
}

// Throttle starts a Throttle for the registry (plain HTTP), stopped when
// the test ends.
func (r *Registry) Throttle(t testing.TB, perSecond int) *Throttle {
	t.Helper()
	th := &Throttle{PerSecond: perSecond}
	target, _ := url.Parse(r.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = r.tr
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !th.admit() {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}`))
			return
		}
		defer th.done()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	th.URL = srv.URL
	th.Host = strings.TrimPrefix(srv.URL, "http://")
	return th
}

func (th *Throttle) admit() bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	now := time.Now()
	for len(th.passed) > 0 && now.Sub(th.passed[0]) >= time.Second {
		th.passed = th.passed[1:]
	}
	if len(th.passed) >= th.PerSecond {
		th.statuses = append(th.statuses, http.StatusTooManyRequests)
		return false
	}
	th.passed = append(th.passed, now)
	th.statuses = append(th.statuses, http.StatusOK) // passed on, whatever the registry answers
	th.inFlight++
	th.peak = max(th.peak, th.inFlight)
	return true
}

func (th *Throttle) done() {
	th.mu.Lock()
	th.inFlight--
	th.mu.Unlock()
}

// Statuses lists, in the order requests arrived, 429 for each one throttled
// and 200 for each one passed on to the registry.
func (th *Throttle) Statuses() []int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return append([]int(nil), th.statuses...)
}

// PeakInFlight is the most requests passed on at once.
func (th *Throttle) PeakInFlight() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.peak
}
