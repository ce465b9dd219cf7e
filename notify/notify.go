// Package notify announces newly detected updates through named notifiers:
// shoutrrr's services (ntfy, Gotify, Discord, Slack, Telegram, Pushover,
// Matrix, SMTP, …), a generic JSON webhook, and the Apprise API.
//
// Each notifier filters the updates (threshold, images, digest) into
// messages: one per update, or one per cycle when batched. Route makes
// them for the daemon, which writes them to the store's outbox in the
// transaction that records the updates, so that neither a crash nor a dead
// receiver loses one. A sender per notifier delivers its outbox oldest
// first, in the background, and retries with backoff for RetryFor; a
// message leaves the outbox, and its updates are marked sent, in one
// transaction once the service accepted it. An update marked sent is not
// announced again by that notifier, across restarts.
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

// Store is what notifiers need of the store: the outbox, the sent marks,
// and the image records for links and display names.
type Store interface {
	Sent(notifier, key string) (bool, error)
	Image(key string) (store.Image, bool, error)
	AddOutbox([]store.OutboxMessage) ([]store.OutboxMessage, error)
	Outbox(notifier string) ([]store.OutboxMessage, error)
	OutboxCounts() (map[string]store.OutboxCount, error)
	PutOutbox(store.OutboxMessage) (bool, error)
	OutboxSent(notifier string, id uint64, keys []string, at time.Time) error
	RetryOutbox(notifier string, at time.Time) (int, error)
	ExpireOutbox(notifier string, since time.Time, lastError string) (int, error)
}

// Defaults of Options.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultRetryFor = 24 * time.Hour
)

// DefaultBackoff are the waits after the 1st, 2nd, … failed try of a
// message; the last repeats until the message's retry window ends.
var DefaultBackoff = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second, time.Minute,
	5 * time.Minute, 15 * time.Minute, time.Hour}

// How long a sender waits before it reads its outbox again when nothing
// woke it, and after the store failed it.
const (
	pollEvery  = time.Minute
	storeRetry = 10 * time.Second
)

// Options tune delivery. The zero value is the defaults.
type Options struct {
	Log *slog.Logger
	// Backoff are the waits between tries, the last repeating; no wait is
	// longer than a tenth of RetryFor. Nil means DefaultBackoff; an empty,
	// non-nil slice: no retry, a failed try gives the message up.
	Backoff []time.Duration
	// RetryFor is how long a message is tried before it is given up on
	// (it stays in the outbox, failed, for Retry). Zero: DefaultRetryFor.
	RetryFor time.Duration
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

// ErrUnknown is returned (wrapped) by Test and Retry for a name no running
// notifier has.
var ErrUnknown = errors.New("no such notifier")

// Status is one notifier's state, for metrics and the UI. The counters
// start at zero with the process; Queued, Undelivered and NextTryAt are
// the outbox's.
type Status struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	URL     string `json:"url"`     // redacted
	Sent    int64  `json:"sent"`    // messages delivered
	Failed  int64  `json:"failed"`  // messages given up on
	Retries int64  `json:"retries"` // tries that failed and will be tried again
	// Queued are the messages waiting to be sent, the one being tried
	// included; Undelivered those given up on, kept for Retry.
	Queued      int       `json:"queued"`
	Undelivered int       `json:"undelivered"`
	NextTryAt   time.Time `json:"nextTryAt,omitzero"` // of a message that failed a try
	// LastError is the last failed try's reason (SendError), quoting
	// nothing the receiver sent.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	LastSentAt  time.Time `json:"lastSentAt,omitzero"`
}

// ErrClosed is returned by Apply once Close was called.
var ErrClosed = errors.New("notifiers are closed")

// Notifiers runs every configured notifier. Its methods are safe for
// concurrent use; Apply replaces the set while it runs.
type Notifiers struct {
	store    Store
	log      *slog.Logger
	backoff  []time.Duration
	retryFor time.Duration
	client   *http.Client
	timeout  time.Duration
	// testLinkLocal lets tests reach link-local and metadata addresses.
	testLinkLocal bool

	mu     sync.RWMutex // guards list, byName and closed
	list   []*notifier
	byName map[string]*notifier
	closed bool

	// stopping is closed by Close: senders finish the try in flight and
	// stop. ctx ends when Close gives up waiting: tries are abandoned.
	stopping  chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type notifier struct {
	spec   *Spec
	sender sender
	wake   chan struct{} // a message was added or retried
	// prev is closed when the sender this one replaced (same name) has
	// stopped: two senders never deliver one outbox.
	prev <-chan struct{}
	done chan struct{}
	// ctx ends when the notifier is removed or replaced by Apply, or when
	// Close gives up waiting: its try in flight is abandoned, and the
	// message stays in the outbox.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	st Status
}

// New starts a sender per notifier. Close stops them.
func New(specs []*Spec, st Store, o Options) (*Notifiers, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	client := o.HTTPClient
	if client == nil {
		client = newHTTPClient(o.Timeout, false)
	}
	n := &Notifiers{byName: map[string]*notifier{}, store: st, log: o.Log, backoff: o.Backoff, retryFor: o.RetryFor,
		client: client, timeout: o.Timeout, testLinkLocal: o.AllowLinkLocalTests, stopping: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.Apply(specs); err != nil {
		n.cancel()
		return nil, err
	}
	return n, nil
}

// Apply makes specs the running set, in their order. A notifier whose name
// and settings are unchanged keeps its sender and its counters; one that is
// gone, or whose settings changed, stops at once (a try in flight is
// abandoned), and the new or changed ones start. A notifier's outbox stays
// with its name: a changed notifier delivers what its old settings left,
// if its new ones still want it. On error (a name given twice, a url
// shoutrrr refuses) nothing changes.
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
		old, had := n.byName[s.Name]
		if had && old.spec.same(s) {
			next = append(next, old)
			byName[s.Name] = old
			continue
		}
		nt, err := n.build(s)
		if err != nil {
			return err
		}
		if had {
			nt.prev = old.done
		}
		next = append(next, nt)
		byName[s.Name] = nt
		started = append(started, nt)
	}
	for _, old := range n.list {
		if byName[old.spec.Name] != old {
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
	nt := &notifier{spec: s, sender: snd, wake: make(chan struct{}, 1), done: make(chan struct{}),
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

// Route returns the outbox messages the running notifiers make of updates
// just recorded: for each notifier, its wanted updates (each key once),
// in one message when it batches, else one message each. It only reads
// the notifiers' settings, so it may run inside the store's transaction:
// pass it to store.WithOutbox, then Wake the senders once it committed.
func (n *Notifiers) Route(saved []store.HistoryEntry) []store.OutboxMessage {
	if n == nil || len(saved) == 0 {
		return nil
	}
	var out []store.OutboxMessage
	for _, nt := range n.running() {
		seen := map[string]bool{}
		var mine []store.HistoryEntry
		for _, e := range saved {
			if k := Key(e); nt.spec.Wants(e) && !seen[k] {
				seen[k] = true
				mine = append(mine, e)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if nt.spec.Batch {
			out = append(out, store.OutboxMessage{Notifier: nt.spec.Name, Updates: mine})
			continue
		}
		for _, e := range mine {
			out = append(out, store.OutboxMessage{Notifier: nt.spec.Name, Updates: []store.HistoryEntry{e}})
		}
	}
	return out
}

// Notify puts the messages for updates recorded without an outbox in the
// outbox, in one transaction, and wakes the senders. The daemon records
// its updates with Route instead, in the same transaction.
func (n *Notifiers) Notify(updates []store.HistoryEntry) {
	if n == nil {
		return
	}
	msgs := n.Route(updates)
	if len(msgs) == 0 {
		return
	}
	if _, err := n.store.AddOutbox(msgs); err != nil {
		n.log.Error("writing notifications to the outbox; not announced", "updates", len(updates), "err", err)
		return
	}
	n.Wake()
}

// Wake has every sender read its outbox now.
func (n *Notifiers) Wake() {
	if n == nil {
		return
	}
	for _, nt := range n.running() {
		nt.poke()
	}
}

func (nt *notifier) poke() {
	select {
	case nt.wake <- struct{}{}:
	default:
	}
}

// Retry starts a new retry window for every message of a running
// notifier's outbox, failed ones included, and has it try at once. It
// returns how many messages there are.
func (n *Notifiers) Retry(name string) (int, error) {
	nt, ok := n.lookup(name)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	k, err := n.store.RetryOutbox(name, time.Now().UTC())
	if err != nil {
		return 0, err
	}
	nt.poke()
	if k > 0 {
		n.log.Info("retrying notifications now", "notifier", name, "messages", k)
	}
	return k, nil
}

// ExpireOrphans gives up the waiting messages of notifiers not named in
// configured (a notifier removed from the config file while tagwatch was
// stopped): no sender would ever try them, and history retention prunes
// only failed messages. It returns how many it gave up.
func ExpireOrphans(st Store, configured []string, at time.Time) (int, error) {
	counts, err := st.OutboxCounts()
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, name := range configured {
		known[name] = true
	}
	total := 0
	for name, c := range counts {
		if known[name] || c.Waiting == 0 {
			continue
		}
		k, err := st.ExpireOutbox(name, at.Add(time.Nanosecond), "not sent: notifier "+name+" is no longer configured")
		if err != nil {
			return total, err
		}
		total += k
	}
	return total, nil
}

// Outbox returns a notifier's waiting and failed messages, oldest first.
func (n *Notifiers) Outbox(name string) ([]store.OutboxMessage, error) {
	return n.store.Outbox(name)
}

func (n *Notifiers) work(nt *notifier) {
	defer n.wg.Done()
	defer close(nt.done)
	defer nt.cancel()
	if nt.prev != nil {
		select {
		case <-nt.prev:
		case <-nt.ctx.Done():
			return
		}
	}
	for {
		select {
		case <-n.stopping:
			return
		case <-nt.ctx.Done():
			return
		default:
		}
		wait := n.step(nt)
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-nt.wake:
		case <-n.stopping:
		case <-nt.ctx.Done():
		}
		t.Stop()
	}
}

// step tries the oldest waiting message when it is due, and says how long
// to wait before the next step.
func (n *Notifiers) step(nt *notifier) time.Duration {
	msgs, err := n.store.Outbox(nt.spec.Name)
	if err != nil {
		n.log.Error("reading the outbox", "notifier", nt.spec.Name, "err", err)
		return storeRetry
	}
	for _, m := range msgs {
		if m.State != store.OutboxWaiting {
			continue
		}
		// Oldest first, and one at a time: the messages behind a failing
		// one wait with it, rather than each knocking on a dead receiver.
		if d := time.Until(m.NextTryAt); !m.NextTryAt.IsZero() && d > 0 {
			return min(d, pollEvery)
		}
		return n.deliver(nt, m)
	}
	return pollEvery
}

// deliver tries one message: the updates of it that the notifier still
// wants and has not announced yet. It says how long to wait before the
// next step.
func (n *Notifiers) deliver(nt *notifier, m store.OutboxMessage) time.Duration {
	name := nt.spec.Name
	seen := map[string]bool{}
	var fresh []store.HistoryEntry
	for _, e := range m.Updates {
		k := Key(e)
		if seen[k] || !nt.spec.Wants(e) {
			// Settings changed since it was routed.
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
		if err := n.store.OutboxSent(name, m.ID, nil, time.Now().UTC()); err != nil {
			n.log.Error("removing an outbox message with nothing left to announce", "notifier", name, "err", err)
			return storeRetry
		}
		return 0
	}
	items := make([]Item, len(fresh))
	for i, e := range fresh {
		img, _, err := n.store.Image(e.Key)
		if err != nil {
			n.log.Debug("reading the image record for a notification", "notifier", name, "err", err)
		}
		items[i] = item(e, img)
	}
	msg, err := nt.spec.compose(items, false)
	if err != nil {
		n.log.Warn("notifier template failed; the default one was used", "notifier", name, "err", err)
	}
	start := time.Now()
	err = nt.sender.send(nt.ctx, msg)
	now := time.Now().UTC()
	if err == nil {
		keys := make([]string, len(fresh))
		for i, e := range fresh {
			keys[i] = Key(e)
		}
		// Counted after the outbox changed, so that the two agree to a
		// reader who waits for the count.
		recErr := n.store.OutboxSent(name, m.ID, keys, now)
		nt.mu.Lock()
		nt.st.Sent++
		nt.st.LastSentAt = now
		nt.mu.Unlock()
		if recErr != nil {
			// Accepted, but not recorded: it goes out again (at least once).
			n.log.Error("recording a sent notification; it will be sent again", "notifier", name, "err", recErr)
			return storeRetry
		}
		n.log.Info("notification sent", "notifier", name, "updates", len(fresh), "first", fresh[0].Reference)
		return 0
	}
	if nt.ctx.Err() != nil {
		n.log.Warn("notifier stopped: its notification stays in the outbox", "notifier", name, "updates", len(fresh))
		return 0
	}
	// The reason is classified, quoting nothing the receiver sent: it is
	// kept in the outbox and shown on the tile. What was said goes to the
	// debug log.
	se := nt.spec.explain(err, time.Since(start))
	n.logRaw(name, se)
	refused, reason := se.perm, se.Reason
	m.Tries++
	m.LastTryAt, m.LastError = now, reason
	giveUp := refused || len(n.backoff) == 0 || !now.Before(m.Since.Add(n.retryFor))
	if giveUp {
		m.State, m.NextTryAt = store.OutboxFailed, time.Time{}
		n.log.Error("notification failed; given up (Retry now in Settings → Notifications sends it again)", "notifier", name,
			"url", nt.spec.Redacted(), "updates", len(fresh), "tries", m.Tries, "err", reason)
	} else {
		wait := n.wait(m.Tries)
		m.NextTryAt = now.Add(wait)
		n.log.Warn("notification failed; will retry", "notifier", name, "try", m.Tries, "in", wait, "err", reason)
	}
	_, recErr := n.store.PutOutbox(m)
	nt.mu.Lock()
	nt.st.LastError, nt.st.LastErrorAt = reason, now
	if giveUp {
		nt.st.Failed++
	} else {
		nt.st.Retries++
	}
	nt.mu.Unlock()
	if recErr != nil {
		n.log.Error("recording a failed try", "notifier", name, "err", recErr)
		return storeRetry
	}
	if giveUp && !refused {
		// The messages behind it whose window has passed too met the
		// same receiver: give them up with it rather than a try each.
		k, err := n.store.ExpireOutbox(name, now.Add(-n.retryFor), "not sent within the retry window: "+reason)
		if err != nil {
			n.log.Error("giving up expired notifications", "notifier", name, "err", err)
		}
		if k > 0 {
			nt.mu.Lock()
			nt.st.Failed += int64(k)
			nt.mu.Unlock()
			n.log.Error("notifications given up with it", "notifier", name, "messages", k)
		}
	}
	return 0
}

// wait is how long a message waits after its tries-th failed try.
func (n *Notifiers) wait(tries int) time.Duration {
	w := n.backoff[min(tries, len(n.backoff))-1]
	if most := n.retryFor / 10; w > most {
		w = most
	}
	return w
}

// permanent marks an error that another try will not fix (a 4xx answer).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// logRaw puts what the receiver said in the debug log.
func (n *Notifiers) logRaw(name string, err error) {
	var se *SendError
	if errors.As(err, &se) && se.raw != "" {
		n.log.Debug("notification failed: what was said", "notifier", name, "status", se.Status, "said", se.raw)
	}
}

// Test sends a test message (a sample update, title prefixed "[test]")
// through one notifier, once, and returns a *SendError when it fails. It
// does not mark anything sent, nor change the counters, nor touch the
// outbox. Unless AllowLinkLocalTests, it refuses to reach a link-local or
// cloud metadata address: webhook and Apprise requests when they connect,
// shoutrrr's services by their url's host before the send.
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

// Status returns every notifier's state, in order.
func (n *Notifiers) Status() []Status {
	if n == nil {
		return nil
	}
	list := n.running()
	counts, err := n.store.OutboxCounts()
	if err != nil {
		n.log.Error("counting the outbox", "err", err)
	}
	out := make([]Status, 0, len(list))
	for _, nt := range list {
		nt.mu.Lock()
		st := nt.st
		nt.mu.Unlock()
		c := counts[nt.spec.Name]
		st.Queued, st.Undelivered, st.NextTryAt = c.Waiting, c.Failed, c.NextTryAt
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

// Close stops the senders: each finishes the try in flight until ctx ends,
// then it is abandoned. What was not sent stays in the outbox, for the
// next start.
func (n *Notifiers) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		close(n.stopping)
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
