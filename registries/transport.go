package registries

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NewTransport is the one HTTP transport every instance shares, so that
// connections to a registry are reused across images and cycles. Timeouts
// are set on every stage: a registry that stops answering must not hold a
// worker forever. Each instance bounds the whole of each request, body
// included, above it (bounded.go).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          256,
		// As many as an instance may keep in flight over HTTP/1.1, so a
		// connection made for a burst is kept for the next one.
		MaxIdleConnsPerHost: MaxConcurrency,
		ForceAttemptHTTP2:   true,
	}
}

// tlsTransport returns shared unless the values ask for a private CA or for
// no verification, in which case the instance gets a clone of its own.
func tlsTransport(shared *http.Transport, v Values) (*http.Transport, error) {
	if !v.Has("cafile") && !v.Bool("insecure") {
		return shared, nil
	}
	t := shared.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := v["cafile"]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", f)
		}
		cfg.RootCAs = pool
	}
	cfg.InsecureSkipVerify = v.Bool("insecure") //nolint:gosec // the admin asked for it; logged as a warning at load.
	t.TLSClientConfig = cfg
	return t, nil
}

// RequestClass sorts registry requests by what they cost an admin: Docker Hub
// counts manifest requests, token servers throttle token requests.
type RequestClass int

const (
	RequestPing     RequestClass = iota // GET /v2/
	RequestToken                        // anything off the /v2/ API: token and exchange endpoints
	RequestTags                         // GET …/tags/list, each page
	RequestManifest                     // HEAD or GET …/manifests/…
	RequestOther                        // blobs, catalog
	numRequestClasses
)

var requestClassNames = [numRequestClasses]string{"ping", "token", "tags", "manifest", "other"}

func (c RequestClass) String() string { return requestClassNames[c] }

func classify(r *http.Request) RequestClass { return classifyPath(r.URL.Path) }

func classifyPath(p string) RequestClass {
	switch {
	case p == "/v2/" || p == "/v2":
		return RequestPing
	case !strings.HasPrefix(p, "/v2/"):
		return RequestToken
	case strings.HasSuffix(p, "/tags/list"):
		return RequestTags
	case strings.Contains(p, "/manifests/"):
		return RequestManifest
	case strings.Contains(p, "/blobs/"), strings.Contains(p, "/referrers/"), p == "/v2/_catalog":
		return RequestOther
	default:
		// Not the distribution API: a token endpoint beside it, as
		// JFrog's and Codeberg's /v2/token, DigitalOcean's
		// /v2/registry/auth or ProGet's /v2/_auth.
		return RequestToken
	}
}

// Stats counts one instance's requests and remembers what the registry said
// of its rate limit. Safe for concurrent use.
type Stats struct {
	requests  [numRequestClasses]atomic.Int64
	served    atomic.Int64 // pings answered from the cache
	throttled atomic.Int64 // 429 answers waited out

	mu        sync.Mutex
	rateLimit RateLimit
	errors    map[string]int64 // by status ("404") or "network"; see ErrorsByStatus
}

// RateLimit is Docker Hub's pull allowance as its ratelimit-* headers last said.
type RateLimit struct {
	Limit     int
	Remaining int
	Window    time.Duration
	Seen      time.Time // zero: the registry never sent the headers
}

// Requests returns how many requests of a class went out on the wire.
func (s *Stats) Requests(c RequestClass) int64 { return s.requests[c].Load() }

// RequestsByClass returns the counts by class name, for reports and metrics.
func (s *Stats) RequestsByClass() map[string]int64 {
	out := make(map[string]int64, numRequestClasses)
	for c := RequestClass(0); c < numRequestClasses; c++ {
		out[c.String()] = s.requests[c].Load()
	}
	return out
}

// ErrorsByStatus counts the requests that failed, by HTTP status ("404",
// "429", "500") or "network" when no answer came. The 401 a registry answers
// to an anonymous ping is its auth challenge, not an error, and is not counted.
func (s *Stats) ErrorsByStatus() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

func (s *Stats) countError(status string) {
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[status]++
	s.mu.Unlock()
}

// Throttled counts the 429 answers the instance waited out.
func (s *Stats) Throttled() int64 { return s.throttled.Load() }

// RateLimit returns the last rate limit the registry reported.
func (s *Stats) RateLimit() RateLimit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimit
}

func (s *Stats) observe(res *http.Response) {
	limit, lw, ok1 := parseRateLimit(res.Header.Get("Ratelimit-Limit"))
	remaining, _, ok2 := parseRateLimit(res.Header.Get("Ratelimit-Remaining"))
	if !ok1 || !ok2 {
		return
	}
	s.mu.Lock()
	s.rateLimit = RateLimit{Limit: limit, Remaining: remaining, Window: lw, Seen: time.Now()}
	s.mu.Unlock()
}

// parseRateLimit reads Docker Hub's "100;w=21600" form.
func parseRateLimit(h string) (n int, window time.Duration, ok bool) {
	if h == "" {
		return 0, 0, false
	}
	head, params, _ := strings.Cut(h, ";")
	n, err := strconv.Atoi(strings.TrimSpace(head))
	if err != nil {
		return 0, 0, false
	}
	for _, p := range strings.Split(params, ";") {
		if k, v, found := strings.Cut(strings.TrimSpace(p), "="); found && k == "w" {
			if secs, err := strconv.Atoi(v); err == nil {
				window = time.Duration(secs) * time.Second
			}
		}
	}
	return n, window, true
}

// instrumented sits under go-containerregistry's auth transports: it sees
// every request on the wire, counts it, reads rate-limit headers and answers
// repeated pings from memory.
type instrumented struct {
	next  http.RoundTripper
	stats *Stats
	pings *pingCache
	// scheme, when set, is the one the instance's url names for host:
	// requests to host go there by it alone. go-containerregistry tries
	// https then http for loopback and private addresses whatever the url
	// says: that costs a failed https ping per repository on an http
	// registry, and falls back to plain HTTP (credentials in clear, a
	// confusing 400) when an https one fails certificate checks.
	scheme, host string
	// serves reports the other hosts scheme applies to: every host the
	// instance serves (a Nexus's other connector ports).
	serves func(host string) bool
	// prefix, when set, is the path the registry API is served under on
	// host (Spec.URLPath): /v2/… requests there go to prefix/v2/….
	prefix string
	// maxWait caps how long one Retry-After is honoured; a registry asking
	// for more gets its 429 passed on as an error for this image.
	maxWait time.Duration
	// lim is the instance's limiter. It holds the pause a 429 asks for,
	// which every request waits out: here, before it is counted, and in
	// Acquire when it waited its turn there while the 429 came in.
	lim *Limiter

	realms realmAliases

	mu        sync.Mutex
	throttled int // 429 answers in a row, for the error when a wait is cut short
}

// maxRetries bounds the retries of one request after 429s.
const maxRetries = 4

func (t *instrumented) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.scheme != "" && r.URL.Scheme != t.scheme && t.own(r.URL.Host) {
		r = r.Clone(r.Context())
		r.URL.Scheme = t.scheme
	}
	if real, ok := t.realms.real(r.URL.Host); ok {
		r = r.Clone(r.Context())
		r.URL.Host, r.Host = real, real
	}
	class := classify(r)
	if t.prefix != "" && strings.EqualFold(r.URL.Host, t.host) {
		if rest, ok := strings.CutPrefix(r.URL.Path, t.prefix); ok && isAPIPath(rest) {
			// Already under the prefix: a Link header the registry wrote.
			class = classifyPath(rest)
		} else if isAPIPath(r.URL.Path) {
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath = t.prefix+r.URL.Path, ""
		}
	}
	if class == RequestPing && r.Method == http.MethodGet && r.Header.Get("Authorization") == "" {
		res, release, err := t.pings.lookup(r)
		if err != nil {
			return nil, err
		}
		if res != nil {
			t.stats.served.Add(1)
			return res, nil
		}
		defer release()
	}
	var res *http.Response
	for attempt := 0; ; attempt++ {
		if err := t.waitPause(r); err != nil {
			return nil, err
		}
		t.stats.requests[class].Add(1)
		var err error
		if res, err = t.next.RoundTrip(r); err != nil {
			if r.Context().Err() == nil {
				t.stats.countError("network")
			} else if te := t.throttledError(r); te != nil {
				return nil, te
			}
			return nil, t.viaProxy(r, err)
		}
		t.stats.observe(res)
		if res.StatusCode >= 400 && !(class == RequestPing && res.StatusCode == http.StatusUnauthorized) {
			t.stats.countError(strconv.Itoa(res.StatusCode))
		}
		t.countThrottled(res.StatusCode == http.StatusTooManyRequests)
		if res.StatusCode != http.StatusTooManyRequests || attempt == maxRetries {
			break
		}
		wait, ok := retryAfter(res.Header.Get("Retry-After"), attempt, time.Now())
		if !ok || wait > t.maxWait || (r.Body != nil && r.GetBody == nil) {
			break
		}
		t.stats.throttled.Add(1)
		res.Body.Close()
		// A registry that answered 429 is asking the client, not the
		// request, to slow down: every request of the instance waits.
		t.lim.Pause(wait)
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			r = r.Clone(r.Context())
			r.Body = body
		}
	}
	t.realms.rewrite(r.URL.Host, res.Header)
	if class == RequestPing && r.Method == http.MethodGet && r.Header.Get("Authorization") == "" {
		return t.pings.put(r, res)
	}
	return res, nil
}

// own reports whether host is one the instance's url speaks for.
func (t *instrumented) own(host string) bool {
	return strings.EqualFold(host, t.host) || (t.serves != nil && t.serves(host))
}

// isAPIPath reports whether p is on the registry API: /v2 or below.
func isAPIPath(p string) bool { return p == "/v2" || strings.HasPrefix(p, "/v2/") }

// viaProxy marks a failure of a request that went through a proxy, so that
// the error says the way there failed rather than the registry: net/http
// reports a proxy's refusal of CONNECT as its bare status text.
func (t *instrumented) viaProxy(r *http.Request, err error) error {
	next := t.next
	if b, ok := next.(*bounded); ok {
		next = b.next // the deadlines and caps sit between: the wire is below them
	}
	tr, ok := next.(*http.Transport)
	if !ok || tr.Proxy == nil || r.Context().Err() != nil {
		return err
	}
	if u, perr := tr.Proxy(r); perr == nil && u != nil {
		return &ProxyError{Proxy: u.Host, Err: err}
	}
	return err
}

// ProxyError is a request that failed on its way through a proxy.
type ProxyError struct {
	Proxy string // host:port of the proxy, the admin's own setting
	Err   error
}

func (e *ProxyError) Error() string { return "via proxy " + e.Proxy + ": " + e.Err.Error() }
func (e *ProxyError) Unwrap() error { return e.Err }

func (t *instrumented) countThrottled(is429 bool) {
	t.mu.Lock()
	if is429 {
		t.throttled++
	} else {
		t.throttled = 0
	}
	t.mu.Unlock()
}

func (t *instrumented) waitPause(r *http.Request) error {
	if err := t.lim.waitPause(r.Context()); err != nil {
		if te := t.throttledError(r); te != nil {
			return te
		}
		return err
	}
	return nil
}

// throttledError says why a request whose context ended was held up when
// the registry's last answers were 429s: a registry that answers 429
// forever ends in the image's deadline, wherever the deadline finds the
// request (waiting out a Retry-After here, in go-containerregistry's own
// retry backoff, or sent again), and the deadline alone would not tell the
// admin what held it.
func (t *instrumented) throttledError(r *http.Request) *ThrottledError {
	t.mu.Lock()
	n := t.throttled
	t.mu.Unlock()
	if n == 0 {
		return nil
	}
	return &ThrottledError{Host: r.URL.Host, Answers: n, Cause: context.Cause(r.Context())}
}

// ThrottledError is a request given up while the registry was asking, with
// 429 Too Many Requests, to wait.
type ThrottledError struct {
	Host    string
	Answers int // 429 answers in a row
	Cause   error
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s kept answering 429 Too Many Requests (%d times in a row); gave up waiting: %v", e.Host, e.Answers, e.Cause)
}

func (e *ThrottledError) Unwrap() error { return e.Cause }

// retryAfter reads a Retry-After header (seconds or an HTTP date); without
// one it backs off exponentially from one second.
func retryAfter(h string, attempt int, now time.Time) (time.Duration, bool) {
	if h == "" {
		return time.Second << attempt, true
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// pingCache remembers a registry's answer to GET /v2/ (its auth challenge).
// go-containerregistry pings once per repository; the challenge is the
// registry's, not the repository's, so one ping per registry is enough,
// however many repositories start at once.
type pingCache struct {
	ttl  time.Duration
	mu   sync.Mutex
	m    map[string]cachedPing
	busy map[string]chan struct{} // pings on the wire, by scheme://host
}

type cachedPing struct {
	status int
	header http.Header
	body   []byte
	at     time.Time
}

func newPingCache(ttl time.Duration) *pingCache {
	return &pingCache{ttl: ttl, m: map[string]cachedPing{}, busy: map[string]chan struct{}{}}
}

// lookup returns the cached answer; without one, the caller pings, and
// calls release once it has (put or failed), while the callers that come
// meanwhile wait for its answer rather than ping too.
func (c *pingCache) lookup(r *http.Request) (res *http.Response, release func(), err error) {
	key := r.URL.Scheme + "://" + r.URL.Host
	for {
		c.mu.Lock()
		if p, ok := c.m[key]; ok && time.Since(p.at) <= c.ttl {
			c.mu.Unlock()
			return p.response(r), nil, nil
		}
		ch, busy := c.busy[key]
		if !busy {
			ch = make(chan struct{})
			c.busy[key] = ch
			c.mu.Unlock()
			return nil, func() {
				c.mu.Lock()
				delete(c.busy, key)
				c.mu.Unlock()
				close(ch)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-ch: // answered (or failed: then this caller pings)
		case <-r.Context().Done():
			return nil, nil, context.Cause(r.Context())
		}
	}
}

func (p cachedPing) response(r *http.Request) *http.Response {
	return &http.Response{
		Status:        strconv.Itoa(p.status) + " " + http.StatusText(p.status),
		StatusCode:    p.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        p.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(p.body)),
		ContentLength: int64(len(p.body)),
		Request:       r,
	}
}

// put caches only the answers that describe the registry's auth: 200 and 401.
func (c *pingCache) put(r *http.Request, res *http.Response) (*http.Response, error) {
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusUnauthorized {
		return res, nil
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[r.URL.Scheme+"://"+r.URL.Host] = cachedPing{status: res.StatusCode, header: res.Header.Clone(), body: body, at: time.Now()}
	c.mu.Unlock()
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// realmAliases lets a registry on a LAN or loopback address use a token
// server on another private address, as self-hosted GitLab does (registry
// on :5050, auth on :443). go-containerregistry refuses a realm on a private
// IP other than the registry's own host:port, to stop a public registry from
// steering tokens requests into the local network. A registry that is
// itself private is already in that network, so its realm is renamed to an
// alias hostname go-containerregistry accepts, and requests to the alias go
// to the real address. A public registry's private realm, and any
// registry's link-local or cloud metadata realm (BlockedIP), are left alone
// and still refused.
type realmAliases struct {
	mu      sync.Mutex
	byAlias map[string]string
	byReal  map[string]string
}

const realmAliasSuffix = ".realm.tagwatch.invalid"

var bearerRealm = regexp.MustCompile(`(?i)(realm=")([^"]*)(")`)

func (a *realmAliases) real(host string) (string, bool) {
	if !strings.HasSuffix(host, realmAliasSuffix) && !strings.Contains(host, realmAliasSuffix+":") {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	real, ok := a.byAlias[host]
	return real, ok
}

// rewrite renames a private realm in a challenge from a private registry.
func (a *realmAliases) rewrite(registryHost string, h http.Header) {
	challenges := h.Values("Www-Authenticate")
	if len(challenges) == 0 || !privateHost(registryHost) {
		return
	}
	for i, c := range challenges {
		challenges[i] = bearerRealm.ReplaceAllStringFunc(c, func(m string) string {
			parts := bearerRealm.FindStringSubmatch(m)
			u, err := url.Parse(parts[2])
			if err != nil || u.Host == registryHost || !privateHost(u.Host) {
				return m
			}
			// A link-local or metadata address stays refused: AWS's
			// metadata service answers with a "Token" (the instance
			// role's) that go-containerregistry would take for the
			// registry's and send to it.
			if ip, err := netip.ParseAddr(u.Hostname()); err != nil || BlockedIP(ip) {
				return m
			}
			u.Host = a.alias(u.Host)
			return parts[1] + u.String() + parts[3]
		})
	}
	h.Del("Www-Authenticate")
	for _, c := range challenges {
		h.Add("Www-Authenticate", c)
	}
}

func (a *realmAliases) alias(real string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if al, ok := a.byReal[real]; ok {
		return al
	}
	if a.byAlias == nil {
		a.byAlias, a.byReal = map[string]string{}, map[string]string{}
	}
	al := fmt.Sprintf("r%d%s", len(a.byAlias)+1, realmAliasSuffix)
	a.byAlias[al], a.byReal[real] = real, al
	return al
}

// privateHost reports whether host (with or without a port) is localhost or
// a loopback, private or link-local IP address.
func privateHost(host string) bool {
	host = hostname(host) // an IPv6 address without a port keeps its brackets
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}
