// Package notify announces newly detected updates through named notifiers:
// shoutrrr's services (ntfy, Gotify, Discord, Slack, Telegram, Pushover,
// Matrix, SMTP, …), a generic JSON webhook, and the Apprise API.
//
// Each notifier filters the updates of a cycle (threshold, images, digest),
// and has its own bounded queue and worker goroutine: Notify only filters
// and enqueues, so a slow or dead receiver never holds up a cycle. A failed
// send is retried with backoff; what is sent is marked in the store, so an
// update is announced once per notifier, across restarts.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tagwatch/tagwatch/store"
)

// Store is what notifiers need of the store: the sent marks, and the image
// records for links and display names.
type Store interface {
	Sent(notifier, key string) (bool, error)
	MarkSent(notifier, key string, at time.Time) (first bool, err error)
	Image(key string) (store.Image, bool, error)
}

// Defaults of Options.
const (
	DefaultQueueSize = 256
	DefaultTimeout   = 30 * time.Second
)

// DefaultBackoff are the waits before the 2nd, 3rd and 4th try of a send.
var DefaultBackoff = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second}

// Options tune delivery. The zero value is the defaults.
type Options struct {
	Log *slog.Logger
	// QueueSize is how many messages may wait per notifier; when full, the
	// oldest is dropped (and logged, and counted).
	QueueSize int
	// Backoff are the waits between tries; its length is the number of
	// retries. Nil means DefaultBackoff; an empty, non-nil slice: no retry.
	Backoff []time.Duration
	// Timeout bounds one webhook or Apprise request (shoutrrr's services
	// have their own timeouts).
	Timeout time.Duration
	// HTTPClient, when set, sends the webhook and Apprise requests.
	HTTPClient *http.Client
	// AllowLinkLocalTests lets Test reach link-local and cloud metadata
	// addresses (web.allowlinklocal); by default a test refuses them.
	// Scheduled notifications are not affected.
	AllowLinkLocalTests bool
}

// ErrUnknown is returned (wrapped) by Test for a name no notifier has.
var ErrUnknown = errors.New("no such notifier")

// Status is one notifier's state, for metrics and the UI. Counters start at
// zero with the process.
type Status struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	URL     string `json:"url"`     // redacted
	Sent    int64  `json:"sent"`    // messages delivered
	Failed  int64  `json:"failed"`  // messages given up on after every try
	Retries int64  `json:"retries"` // tries that failed and were tried again
	Dropped int64  `json:"dropped"` // messages dropped from a full queue
	Queued  int    `json:"queued"`  // messages waiting now
	// LastError is the last failed try's error, secrets removed.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	LastSentAt  time.Time `json:"lastSentAt,omitzero"`
}

// ErrClosed is returned by Apply once Close was called.
var ErrClosed = errors.New("notifiers are closed")

// Notifiers runs every configured notifier. Its methods are safe for
// concurrent use; Apply replaces the set while it runs.
type Notifiers struct {
	store   Store
	log     *slog.Logger
	backoff []time.Duration
	qsize   int
	client  *http.Client
	timeout time.Duration
	// testLinkLocal lets tests reach link-local and metadata addresses.
	testLinkLocal bool

	mu     sync.RWMutex // guards list, byName and closed
	list   []*notifier
	byName map[string]*notifier
	closed bool

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type notifier struct {
	spec   *Spec
	sender sender
	q      *queue
	// ctx ends when the notifier is removed or replaced by Apply, or when
	// Close gives up waiting: its send in flight is abandoned.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	st Status
}

// job is one message to send: one update, or a cycle's batch.
type job struct {
	entries []store.HistoryEntry
}

// New starts a worker per notifier. Close stops them.
func New(specs []*Spec, st Store, o Options) (*Notifiers, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	client := o.HTTPClient
	if client == nil {
		client = newHTTPClient(o.Timeout, false)
	}
	n := &Notifiers{byName: map[string]*notifier{}, store: st, log: o.Log, backoff: o.Backoff, qsize: o.QueueSize, client: client,
		timeout: o.Timeout, testLinkLocal: o.AllowLinkLocalTests}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.Apply(specs); err != nil {
		n.cancel()
		return nil, err
	}
	return n, nil
}

// Apply makes specs the running set, in their order. A notifier whose name
// and settings are unchanged keeps its worker, its queue and its counters;
// one that is gone, or whose settings changed, stops at once (its queue is
// dropped and a send in flight abandoned), and the new or changed ones
// start. On error (a name given twice, a url shoutrrr refuses) nothing
// changes.
func (n *Notifiers) Apply(specs []*Spec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	next := make([]*notifier, 0, len(specs))
	byName := make(map[string]*notifier, len(specs))
	var started []*notifier
	for _, s := range specs {
		if _, dup := byName[s.Name]; dup {
			return fmt.Errorf("notifier %s: named twice", s.Name)
		}
		if old, ok := n.byName[s.Name]; ok && old.spec.same(s) {
			next = append(next, old)
			byName[s.Name] = old
			continue
		}
		nt, err := n.build(s)
		if err != nil {
			return err
		}
		next = append(next, nt)
		byName[s.Name] = nt
		started = append(started, nt)
	}
	for _, old := range n.list {
		if byName[old.spec.Name] != old {
			old.q.close()
			old.cancel()
		}
	}
	n.list, n.byName = next, byName
	for _, nt := range started {
		n.wg.Add(1)
		go n.work(nt)
	}
	return nil
}

// build makes a notifier for s, not started yet.
func (n *Notifiers) build(s *Spec) (*notifier, error) {
	var snd sender
	switch s.Type {
	case TypeWebhook, TypeApprise:
		snd = newHTTPSender(s.Type, s.url, n.client)
	default:
		sh, err := newShoutrrr(s.url, stdLogger{log: n.log, name: s.Name, redact: s.redact})
		if err != nil {
			return nil, fmt.Errorf("notifier %s: %s", s.Name, s.redact.scrub(err.Error()))
		}
		snd = sh
	}
	nt := &notifier{spec: s, sender: snd, q: newQueue(n.qsize),
		st: Status{Name: s.Name, Type: s.Type, URL: s.Redacted()}}
	nt.ctx, nt.cancel = context.WithCancel(n.ctx)
	return nt, nil
}

// running returns the current set; the slice is not changed afterwards
// (Apply makes a new one).
func (n *Notifiers) running() []*notifier {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.list
}

func (n *Notifiers) lookup(name string) (*notifier, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	nt, ok := n.byName[name]
	return nt, ok
}

// Notify hands a cycle's new updates to every notifier that wants them. It
// only filters and enqueues: it never waits for a receiver.
func (n *Notifiers) Notify(updates []store.HistoryEntry) {
	if n == nil || len(updates) == 0 {
		return
	}
	for _, nt := range n.running() {
		var mine []store.HistoryEntry
		for _, e := range updates {
			if nt.spec.Wants(e) {
				mine = append(mine, e)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if nt.spec.Batch {
			n.enqueue(nt, job{entries: mine})
			continue
		}
		for _, e := range mine {
			n.enqueue(nt, job{entries: []store.HistoryEntry{e}})
		}
	}
}

func (n *Notifiers) enqueue(nt *notifier, j job) {
	dropped, didDrop, ok := nt.q.push(j)
	if !ok {
		n.log.Warn("notifier stopped; update not announced", "notifier", nt.spec.Name, "updates", len(j.entries))
		return
	}
	if didDrop {
		nt.mu.Lock()
		nt.st.Dropped++
		nt.mu.Unlock()
		n.log.Warn("notifier queue full: dropped its oldest message", "notifier", nt.spec.Name,
			"dropped_updates", len(dropped.entries), "first", dropped.entries[0].Reference, "queue", nt.q.max)
	}
}

func (n *Notifiers) work(nt *notifier) {
	defer n.wg.Done()
	defer nt.cancel()
	for {
		j, ok := nt.q.pop(nt.ctx)
		if !ok {
			return
		}
		n.deliver(nt, j)
	}
}

// deliver sends one job's updates that were not announced yet, and marks
// them sent when the send succeeds.
func (n *Notifiers) deliver(nt *notifier, j job) {
	name := nt.spec.Name
	seen := map[string]bool{}
	var fresh []store.HistoryEntry
	for _, e := range j.entries {
		k := Key(e)
		if seen[k] {
			continue
		}
		seen[k] = true
		sent, err := n.store.Sent(name, k)
		if err != nil {
			n.log.Error("reading the sent marks; sending anyway", "notifier", name, "err", err)
		}
		if sent {
			n.log.Debug("update already announced", "notifier", name, "reference", e.Reference, "latest", e.ToTag)
			continue
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return
	}
	items := make([]Item, len(fresh))
	for i, e := range fresh {
		img, _, err := n.store.Image(e.Key)
		if err != nil {
			n.log.Debug("reading the image record for a notification", "notifier", name, "err", err)
		}
		items[i] = item(e, img)
	}
	m, err := nt.spec.compose(items, false)
	if err != nil {
		n.log.Warn("notifier template failed; the default one was used", "notifier", name, "err", err)
	}
	if err := n.try(nt, m); err != nil {
		if nt.ctx.Err() != nil {
			n.log.Warn("notifier stopped: notification abandoned", "notifier", name, "updates", len(fresh))
			return
		}
		nt.mu.Lock()
		nt.st.Failed++
		nt.st.LastError, nt.st.LastErrorAt = err.Error(), time.Now().UTC()
		nt.mu.Unlock()
		n.log.Error("notification failed", "notifier", name, "url", nt.spec.Redacted(), "updates", len(fresh), "err", err)
		n.logRaw(name, err)
		return
	}
	now := time.Now().UTC()
	for _, e := range fresh {
		if _, err := n.store.MarkSent(name, Key(e), now); err != nil {
			n.log.Error("marking an update announced", "notifier", name, "reference", e.Reference, "err", err)
		}
	}
	nt.mu.Lock()
	nt.st.Sent++
	nt.st.LastSentAt = now
	nt.mu.Unlock()
	n.log.Info("notification sent", "notifier", name, "updates", len(fresh), "first", fresh[0].Reference)
}

// permanent marks an error that another try will not fix (a 4xx answer).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// try sends m, retrying after each backoff wait. Errors come back as
// *SendError: classified, quoting nothing the receiver sent.
func (n *Notifiers) try(nt *notifier, m message) error {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := nt.sender.send(nt.ctx, m)
		if err == nil {
			return nil
		}
		se := nt.spec.explain(err, time.Since(start))
		if se.perm || attempt >= len(n.backoff) || nt.ctx.Err() != nil {
			return se
		}
		wait := n.backoff[attempt]
		nt.mu.Lock()
		nt.st.Retries++
		nt.st.LastError, nt.st.LastErrorAt = se.Reason, time.Now().UTC()
		nt.mu.Unlock()
		n.log.Warn("notification failed; will retry", "notifier", nt.spec.Name, "try", attempt+1, "in", wait, "err", se)
		n.logRaw(nt.spec.Name, se)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-nt.ctx.Done():
			t.Stop()
			return se
		}
	}
}

// logRaw puts what the receiver said in the debug log.
func (n *Notifiers) logRaw(name string, err error) {
	var se *SendError
	if errors.As(err, &se) && se.raw != "" {
		n.log.Debug("notification failed: what was said", "notifier", name, "status", se.Status, "said", se.raw)
	}
}

// Test sends a test message (a sample update, title prefixed "[test]")
// through one notifier, once, and returns a *SendError when it fails. It
// does not mark anything sent, nor change the counters. Unless
// AllowLinkLocalTests, it refuses to reach a link-local or cloud metadata
// address: webhook and Apprise requests when they connect, shoutrrr's
// services by their url's host before the send.
func (n *Notifiers) Test(ctx context.Context, name string) error {
	nt, ok := n.lookup(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	it := sample
	it.DetectedAt = time.Now().UTC()
	m, err := nt.spec.compose([]Item{it}, true)
	if err != nil {
		return fmt.Errorf("notifier %s: template: %v", name, err)
	}
	start := time.Now()
	snd := nt.sender
	if !n.testLinkLocal {
		switch nt.spec.Type {
		case TypeWebhook, TypeApprise:
			snd = newHTTPSender(nt.spec.Type, nt.spec.url, newHTTPClient(n.timeout, true))
		default:
			if err := checkTestHost(ctx, nt.spec); err != nil {
				return nt.spec.explain(err, time.Since(start))
			}
		}
	}
	if err := snd.send(ctx, m); err != nil {
		se := nt.spec.explain(err, time.Since(start))
		n.logRaw(name, se)
		return se
	}
	return nil
}

// Status returns every notifier's state, by name.
func (n *Notifiers) Status() []Status {
	if n == nil {
		return nil
	}
	list := n.running()
	out := make([]Status, 0, len(list))
	for _, nt := range list {
		nt.mu.Lock()
		st := nt.st
		nt.mu.Unlock()
		st.Queued = nt.q.len()
		out = append(out, st)
	}
	return out
}

// Specs returns the notifiers' settings in the order they were given (for
// the UI: a Spec never prints its url's secrets).
func (n *Notifiers) Specs() []*Spec {
	if n == nil {
		return nil
	}
	list := n.running()
	out := make([]*Spec, len(list))
	for i, nt := range list {
		out[i] = nt.spec
	}
	return out
}

// Names lists the notifiers in the order they were given.
func (n *Notifiers) Names() []string {
	list := n.running()
	out := make([]string, len(list))
	for i, nt := range list {
		out[i] = nt.spec.Name
	}
	return out
}

// Close stops taking updates and lets the workers send what is queued until
// ctx ends; then sends in flight are abandoned. What was not sent is lost
// (it is not marked sent, but the next cycle does not report it again).
func (n *Notifiers) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		for _, nt := range n.list {
			nt.q.close()
		}
		n.mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
}

// queue is a bounded FIFO that drops its oldest job when full.
type queue struct {
	max    int
	mu     sync.Mutex
	items  []job
	closed bool
	wake   chan struct{}
}

func newQueue(max int) *queue { return &queue{max: max, wake: make(chan struct{}, 1)} }

// push adds j; when the queue is full the oldest job is dropped and
// returned. ok is false once the queue is closed.
func (q *queue) push(j job) (dropped job, didDrop, ok bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return job{}, false, false
	}
	if len(q.items) >= q.max {
		dropped, didDrop = q.items[0], true
		q.items = q.items[1:]
	}
	q.items = append(q.items, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped, didDrop, true
}

// pop waits for a job; ok is false when the queue is closed and empty, or
// ctx ended.
func (q *queue) pop(ctx context.Context) (job, bool) {
	for {
		if ctx.Err() != nil {
			return job{}, false
		}
		q.mu.Lock()
		if len(q.items) > 0 {
			j := q.items[0]
			q.items[0] = job{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return j, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return job{}, false
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return job{}, false
		}
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
