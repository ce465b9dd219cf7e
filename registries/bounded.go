package registries

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits bound what one registry can cost the daemon: the time of a request
// and the size of what it sends back. A registry is outside tagwatch's
// control; whatever it does, a check ends and memory stays bounded.
type Limits struct {
	// Request bounds one request from the first byte out to the last byte
	// of its body in: dial, TLS, headers and body together. It is per
	// request on the wire, so a 429 retry or the next tag page gets a fresh
	// one; what bounds them all is the image's deadline (watcher).
	Request time.Duration
	// TagPages bounds the pages of one tag list (`Link` headers followed).
	TagPages int
	// TagListBytes bounds the bytes of one tag list, all its pages together.
	TagListBytes int64
}

// The defaults, and why:
const (
	// DefaultRequestTimeout: a registry request is a few KiB (a manifest,
	// a page of tags, a token); one that has not fully arrived in 30 s is
	// not coming. It was already the response-header timeout.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultTagPages: registries send 100 to 1,000 tags a page; 10,000
	// pages is far past any real repository and ends a Link loop.
	DefaultTagPages = 10_000
	// DefaultTagListBytes: Docker Hub's largest repositories list a few
	// hundred KiB of tags; 8 MiB (some 600,000 tags) is 20 times that.
	// Reading a list costs about 2.5 times its size in memory (see
	// largeLists), so 8 MiB keeps a hostile list to some 20 MiB.
	DefaultTagListBytes = 8 << 20
	// MaxBody caps every other body read from a registry (manifests, tokens,
	// errors, credential services): the distribution registry refuses
	// manifests over 4 MiB, so no real answer is larger.
	MaxBody = 4 << 20
)

// WithDefaults fills the zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.Request <= 0 {
		l.Request = DefaultRequestTimeout
	}
	if l.TagPages <= 0 {
		l.TagPages = DefaultTagPages
	}
	if l.TagListBytes <= 0 {
		l.TagListBytes = DefaultTagListBytes
	}
	return l
}

// RequestTimeoutError is a request that did not complete, body included,
// within Limits.Request. It is a context.DeadlineExceeded, so retry logic
// (go-containerregistry's included) does not repeat it.
type RequestTimeoutError struct {
	Host, Method, Path string
	Limit              time.Duration
	BodyRead           int64 // bytes of the body that did arrive; -1: no answer at all
}

func (e *RequestTimeoutError) Error() string {
	got := "no answer"
	if e.BodyRead >= 0 {
		got = "headers and " + Bytes(e.BodyRead) + " of the body"
	}
	return fmt.Sprintf("%s: %s %s did not complete within the %s request deadline (%s arrived)",
		e.Host, e.Method, e.Path, Duration(e.Limit), got)
}

func (e *RequestTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// Deadline says which deadline passed: the request's here, the image's or
// the cycle's in the watcher (which sets its own as a context's cause), so
// that a timeout names the one that ended it.
func (e *RequestTimeoutError) Deadline() (scope string, limit time.Duration) {
	return "request", e.Limit
}

// deadline is a context's cause that is one of tagwatch's deadlines.
type deadline interface {
	error
	Deadline() (scope string, limit time.Duration)
}

// TagPagesError is a tag list whose Link headers went on past
// Limits.TagPages.
type TagPagesError struct{ Limit int }

func (e *TagPagesError) Error() string {
	return fmt.Sprintf("the tag list goes on past %d pages (limits.tagpages)", e.Limit)
}

// BodyLimitError is a body larger than its cap: MaxBody, or what is left of
// a tag list's Limits.TagListBytes.
type BodyLimitError struct {
	Host, Path string
	Limit      int64
	TagList    bool // the cap is the tag list's, across its pages
}

func (e *BodyLimitError) Error() string {
	if e.TagList {
		return fmt.Sprintf("%s: the tag list exceeds %s (limits.taglist)", e.Host, Bytes(e.Limit))
	}
	return fmt.Sprintf("%s: the answer to %s exceeds %s; no registry answer is that large", e.Host, e.Path, Bytes(e.Limit))
}

// bounded sits right above the wire: each request gets its own deadline,
// which covers the body too (it is read after RoundTrip returns, so the
// deadline ends when the body is read to its end or closed), and each body
// is capped as it streams, never buffered first and checked after.
type bounded struct {
	next   http.RoundTripper
	limits Limits
	// lim bounds the instance's requests in flight (nil: no bound). A
	// request holds its slot until its body is read or closed, and gives it
	// back with what the answer says of the registry's load.
	lim *Limiter
}

// maxRedirects is net/http's own default, which go-containerregistry's
// redirect policy (same host always allowed) does not keep: a registry
// redirecting to itself in a loop would be followed until a deadline.
const maxRedirects = 10

// RedirectLoopError is a request redirected more than maxRedirects times.
type RedirectLoopError struct {
	Host string
	Hops int
}

func (e *RedirectLoopError) Error() string {
	return fmt.Sprintf("%s redirected the request %d times without an answer (a redirect loop); gave up", e.Host, e.Hops)
}

func (b *bounded) RoundTrip(r *http.Request) (*http.Response, error) {
	// A redirected request carries the response that redirected it, which
	// carries its own request, and so on back to the first.
	hops := 0
	for prev := r.Response; prev != nil && prev.Request != nil; prev = prev.Request.Response {
		hops++
	}
	if hops > maxRedirects {
		return nil, &RedirectLoopError{Host: r.URL.Host, Hops: hops}
	}
	// The wait for a slot comes before the request's own deadline, which
	// bounds the registry's time, not the queue's.
	var slot *Slot
	if b.lim != nil {
		var err error
		if slot, err = b.lim.Acquire(r.Context()); err != nil {
			return nil, err
		}
	}
	timeout := &RequestTimeoutError{Host: r.URL.Host, Method: r.Method, Path: r.URL.Path, Limit: b.limits.Request, BodyRead: -1}
	ctx, cancel := context.WithTimeoutCause(r.Context(), b.limits.Request, timeout)
	res, err := b.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		slot.Done(failureOutcome(r.Context(), err))
		return nil, ctxError(ctx, err)
	}
	class := classify(r)
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		slot.Done(OutcomeThrottled)
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		slot.Done(OutcomeFailed)
	}
	body := &boundedBody{rc: res.Body, ctx: ctx, cancel: cancel, timeout: timeout, host: r.URL.Host, path: r.URL.Path, left: MaxBody, limit: MaxBody,
		slot: slot, answered: OutcomeAnswered}
	if class == RequestPing || class == RequestManifest {
		body.answered = OutcomeOK // small answers of like cost: their times compare
	}
	if slot != nil {
		// Whatever becomes of the body (read, closed, abandoned), its
		// slot is back by the request's deadline at the latest.
		context.AfterFunc(ctx, func() { slot.Done(body.endOutcome(r.Context())) })
	}
	if class == RequestTags {
		body.left, body.limit = b.limits.TagListBytes, b.limits.TagListBytes
		body.list = tagBudgetFrom(r.Context())
		if body.list != nil {
			body.left = body.list.left.Load()
		}
	}
	res.Body = body
	return res, nil
}

// failureOutcome says what a request that got no answer tells of the
// registry's load: a timeout or a broken connection is overload (or a
// broken way there); a request its caller gave up, or one refused for
// reasons of its own (a certificate, plain HTTP on an HTTPS port), says nothing.
func failureOutcome(parent context.Context, err error) Outcome {
	if parent.Err() != nil {
		return OutcomeNone
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne) && ne.Timeout():
		return OutcomeFailed
	}
	return OutcomeNone
}

// ctxError puts the reason a request's context ended (its own deadline, the
// image's, the cycle's, a shutdown) in place of a bare context error.
// net/http already returns the cause; a wrapper in between may not. Any
// other error stands: it happened before, or regardless of, the end.
func ctxError(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(err, cause) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// largeTagList is where a tag list stops being small: about 20,000 tags.
// Few repositories anywhere have that many; past it, a list must hold the
// large-list gate to read on (it waits, it is not refused).
const largeTagList = 256 << 10

// largeLists lets one tag list at a time grow past largeTagList. Reading a
// list costs about 2.5 times its size in memory (go-containerregistry
// decodes each page from one buffer, and the tags are kept), so an 8 MiB
// list takes some 20 MiB; several at once, from a registry with several
// huge repositories or from several registries, would add up past any
// bound. In turn, they cost one list's worth whatever registries send.
// Every instance opened with the same Options shares one gate.
type largeLists chan struct{}

func newLargeLists() largeLists { return make(largeLists, 1) }

// tagBudget is one tag list's allowance: the bytes it may still read (its
// pages draw on it in turn) and whether it holds the large-list gate.
type tagBudget struct {
	left  atomic.Int64
	read  atomic.Int64
	gate  largeLists
	mu    sync.Mutex
	holds bool
}

type tagBudgetKey struct{}

func withTagBudget(ctx context.Context, n int64, gate largeLists) (context.Context, *tagBudget) {
	b := &tagBudget{gate: gate}
	b.left.Store(n)
	return context.WithValue(ctx, tagBudgetKey{}, b), b
}

func tagBudgetFrom(ctx context.Context) *tagBudget {
	b, _ := ctx.Value(tagBudgetKey{}).(*tagBudget)
	return b
}

// mustWait reports whether grow is about to wait for the gate.
func (b *tagBudget) mustWait() bool {
	if b.gate == nil || b.read.Load() < largeTagList {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.holds
}

// grow waits for the large-list gate once the list is past largeTagList.
func (b *tagBudget) grow(ctx context.Context) error {
	if b.gate == nil || b.read.Load() < largeTagList {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds {
		return nil
	}
	select {
	case b.gate <- struct{}{}:
		b.holds = true
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// done releases the gate when the list is read (or given up). It first
// collects the garbage the list left (its pages' decode buffers, tens of
// MiB): left to the collector's own pace, the next large list would grow on
// top of them and the process to twice the size. Large lists are rare;
// one collection each costs milliseconds.
func (b *tagBudget) done() {
	b.mu.Lock()
	if b.holds {
		runtime.GC()
		<-b.gate
		b.holds = false
	}
	b.mu.Unlock()
}

type boundedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	cancel  context.CancelFunc
	timeout *RequestTimeoutError
	host    string
	path    string
	left    int64      // bytes this body may still deliver
	limit   int64      // the cap, for the error
	list    *tagBudget // a tag list's allowance across pages, or nil
	read    int64
	err     error // sticky, once the cap is passed

	slot     *Slot   // nil without a limiter
	answered Outcome // what a complete answer reports: OK or Answered
}

// endOutcome is what the body's end says of the registry: read or closed,
// an answer; cut by the request's own deadline, overload; cut by the
// caller's, nothing.
func (b *boundedBody) endOutcome(parent context.Context) Outcome {
	switch {
	case parent.Err() != nil:
		return OutcomeNone
	case errors.Is(context.Cause(b.ctx), b.timeout):
		return OutcomeFailed
	}
	return b.answered
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.list != nil {
		if b.list.mustWait() {
			// Waiting for another large list is not the registry's
			// time, and must not hold a slot the other list may need
			// for its next page.
			b.slot.Done(OutcomeNone)
		}
		if err := b.list.grow(b.ctx); err != nil {
			b.timeout.BodyRead = b.read
			return 0, fmt.Errorf("%s: gave up waiting to read the tag list past %s while another large one was read: %w", b.host, Bytes(largeTagList), err)
		}
	}
	// One byte beyond the cap tells a body that is too large from one
	// that is exactly at it.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.err = &BodyLimitError{Host: b.host, Path: b.path, Limit: b.limit, TagList: b.list != nil}
		err = b.err
		b.cancel()
	}
	b.left -= int64(n)
	b.read += int64(n)
	if b.list != nil {
		b.list.left.Add(-int64(n))
		b.list.read.Add(int64(n))
	}
	switch {
	case err == io.EOF:
		b.slot.Done(b.answered)
		b.cancel() // the answer is complete: its deadline no longer matters
	case err != nil && b.err == nil && b.ctx.Err() != nil:
		// The body's context ended (its deadline, the image's, the
		// cycle's, a shutdown) while it was read. The transport reports
		// that as a context error, or as the error of the connection it
		// closed on the cancel ("read tcp …: use of closed network
		// connection"), whichever comes first: either way the end is why.
		b.timeout.BodyRead = b.read
		if cause := context.Cause(b.ctx); !errors.Is(err, cause) {
			err = cause
		}
	case err != nil && b.err == nil:
		b.slot.Done(failureOutcome(b.ctx, err)) // the connection broke mid-answer
	}
	return n, err
}

func (b *boundedBody) Close() error {
	if b.ctx.Err() == nil {
		b.slot.Done(b.answered)
	}
	b.cancel()
	return b.rc.Close()
}

// Bytes writes a byte count the way the settings take it: 16 MiB, 512 KiB, 100 B.
func Bytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// Duration writes a duration without the zero units Go adds: 30m, 2m, 1h, 1m30s, 1.5s.
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
