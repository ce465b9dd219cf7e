package registries

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Concurrency: how many requests one instance keeps in flight.
const (
	// DefaultConcurrency is the ceiling of a kind that declares none: a
	// public service on the internet. Four times what a docker pull of a
	// multi-layer image puts in flight.
	DefaultConcurrency = 32
	// LANConcurrency is the ceiling of the kinds that are self-hosted, on a
	// LAN or the admin's own server: custom, Harbor, Nexus, Gitea….
	LANConcurrency = 64
	// MaxConcurrency bounds what concurrency may pin, and is how many idle
	// connections per host the shared transport keeps.
	MaxConcurrency = 128
	// initialLimit is where a limiter starts, and starts again after it sat
	// idle: the four requests in flight tagwatch always kept per registry.
	initialLimit = 4
	// idleRestart: a limiter idle this long starts again from initialLimit
	// (the next cycle is hours later; what the registry took then says
	// little now).
	idleRestart = 30 * time.Second
	// calmFor: after a 429 or 503, the limit grows by at most one a second
	// for this long, so a registry that throttles by rate sees a client
	// that stays near what it allowed rather than one that rushes back.
	calmFor = 30 * time.Second
	// queueSlack is the least queueing delay (on top of the smallest round
	// trip seen) taken for noise rather than for a queue: on loopback round
	// trips are a fraction of a millisecond and a busy CPU alone doubles them.
	queueSlack = 5 * time.Millisecond
	// minRTTWindow is how long the smallest round trip is remembered: the
	// smallest of the last one or two windows counts.
	minRTTWindow = 30 * time.Second
)

// Outcome is what a request's answer says about the registry's load.
type Outcome int

const (
	// OutcomeNone: the caller gave up (its deadline, a shutdown); no news
	// of the registry.
	OutcomeNone Outcome = iota
	// OutcomeOK: answered in full; its time is a latency sample (pings and
	// manifests: small answers of comparable cost).
	OutcomeOK
	// OutcomeAnswered: answered in full, but its time is not comparable
	// (tag lists, tokens, credential services): it counts as an answer only.
	OutcomeAnswered
	// OutcomeThrottled: 429 Too Many Requests or 503 Service Unavailable,
	// the registry asking to slow down.
	OutcomeThrottled
	// OutcomeFailed: timed out, the connection failed, or a gateway said
	// 502 or 504: the registry or the way there is overloaded.
	OutcomeFailed
)

// Limiter bounds the requests in flight on one registry instance and follows
// the registry: it starts at 4, doubles each round trip while round trips do
// not grow (slow start), then adds one a round trip while they stay within
// twice the smallest seen; when they grow past that it shrinks in proportion
// (a gradient, as TCP Vegas does), and on a 429, a 503, a timeout or a
// connection error it halves at once (once per round of requests, not once
// per answer of a round). A 429 or 503 also cuts it to what the registry
// answered in the last second (Little's law: rate × round trip), and growth
// is then slow for a while. It never passes its ceiling (the kind's, or the
// admin's pin), and a pinned limiter does not move.
//
// Besides requests (Acquire), it admits checks (Admit), so that a lane starts
// a check only when the registry has room for its requests: a check that
// waits for its turn in a lane does not run its deadline down in a queue.
// Safe for concurrent use.
type Limiter struct {
	now func() time.Time

	mu        sync.Mutex
	ceiling   int
	pinned    bool
	limit     float64
	slowStart bool
	inFlight  int
	pending   int // admitted checks that have not yet asked for a request
	peak      int
	waiters   []*waiter     // Acquire calls waiting for room, oldest first
	changed   chan struct{} // closed and replaced when there may be room

	lastUsed   time.Time
	pauseUntil time.Time // a registry's Retry-After: no request goes out before
	lastCut    time.Time // when the limit was last cut
	lastGrow   time.Time
	calmUntil  time.Time
	minRTT     [2]time.Duration // this window's smallest round trip and the last one's
	minAt      time.Time        // when this window started
	srtt       time.Duration    // smoothed round trip of OK answers
	sending    *round           // the round new requests join; nil: the next opens one
	answers    [10]int64        // answers per 100 ms, for the rate the registry allows
	answersAt  int64            // the 100 ms tick answers[answersAt%10] counts
}

// round is the requests sent in one round trip: it opens with its first
// request and takes new ones until its first answer comes back. Once all
// of its requests are answered, their round trips decide whether the limit
// grows or shrinks: a decision per round trip, on the requests of that
// round trip alone.
type round struct {
	start      time.Time
	sent, back int
	n          int           // OK answers, the latency samples
	sum        time.Duration // of their round trips
	busy       bool          // the limit was in use: growth is earned
}

type waiter struct {
	ready   chan struct{}
	granted bool
}

// NewLimiter returns a limiter that grows up to ceiling; pinned, it stays at
// ceiling.
func NewLimiter(ceiling int, pinned bool) *Limiter {
	ceiling = max(1, ceiling)
	l := &Limiter{now: time.Now, ceiling: ceiling, pinned: pinned, changed: make(chan struct{})}
	l.restart(time.Time{})
	return l
}

func (l *Limiter) restart(now time.Time) {
	if l.pinned {
		l.limit = float64(l.ceiling)
	} else {
		l.limit = float64(min(initialLimit, l.ceiling))
	}
	l.slowStart = true
	l.minRTT = [2]time.Duration{}
	l.minAt = now
	l.srtt = 0
	l.sending = nil
}

// Slot is one request's place in flight. Done gives it back.
type Slot struct {
	l     *Limiter
	sent  time.Time
	round *round
	once  sync.Once
}

// Acquire waits for room for one more request (or for ctx to end, whose
// cause it returns), and for a pause the registry asked for to pass: a
// request that waited its turn while a 429 came in waits the pause out
// too, rather than go out into the same refusal. A check admitted with
// Admit whose ctx carries the ticket hands its admission over to the
// request here.
func (l *Limiter) Acquire(ctx context.Context) (*Slot, error) {
	for {
		if err := l.waitPause(ctx); err != nil {
			return nil, err
		}
		s, err := l.acquire(ctx)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		paused := l.now().Before(l.pauseUntil)
		l.mu.Unlock()
		if !paused {
			return s, nil
		}
		s.Done(OutcomeNone)
	}
}

// Pause holds every request until d has passed (a 429's Retry-After).
func (l *Limiter) Pause(d time.Duration) {
	l.mu.Lock()
	if until := l.now().Add(d); until.After(l.pauseUntil) {
		l.pauseUntil = until
	}
	l.mu.Unlock()
}

func (l *Limiter) waitPause(ctx context.Context) error {
	for {
		l.mu.Lock()
		d := l.pauseUntil.Sub(l.now())
		l.mu.Unlock()
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
	}
}

func (l *Limiter) acquire(ctx context.Context) (*Slot, error) {
	tk, _ := ctx.Value(ticketKey{}).(*Ticket)
	l.mu.Lock()
	now := l.now()
	if l.inFlight == 0 && len(l.waiters) == 0 && !l.lastUsed.IsZero() && now.Sub(l.lastUsed) > idleRestart {
		l.restart(now)
	}
	l.lastUsed = now
	tk.clearLocked(l)
	if l.inFlight < l.room() && len(l.waiters) == 0 {
		l.inFlight++
		s := l.slotLocked(now)
		l.mu.Unlock()
		return s, nil
	}
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	select {
	case <-w.ready:
		l.mu.Lock()
		s := l.slotLocked(l.now())
		l.mu.Unlock()
		return s, nil
	case <-ctx.Done():
		l.mu.Lock()
		if w.granted {
			// Room was made for it as its context ended: pass it on.
			l.inFlight--
			l.wakeLocked()
		} else {
			for i, x := range l.waiters {
				if x == w {
					l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
					break
				}
			}
			l.signalLocked()
		}
		l.mu.Unlock()
		return nil, context.Cause(ctx)
	}
}

// slotLocked is the place of a request let in (and counted in flight):
// it joins the round being sent, which notes whether the limit is in use
// (growth is earned only by a limit that is used).
func (l *Limiter) slotLocked(now time.Time) *Slot {
	l.peak = max(l.peak, l.inFlight)
	if l.sending == nil {
		l.sending = &round{start: now}
	}
	r := l.sending
	r.sent++
	if 2*(l.inFlight+len(l.waiters)) >= l.room() {
		r.busy = true
	}
	return &Slot{l: l, sent: now, round: r}
}

// room is the requests the limit allows in flight now: at least one.
func (l *Limiter) room() int { return max(1, int(l.limit)) }

// Done gives the slot back with what the answer said; only its first call counts.
func (s *Slot) Done(o Outcome) {
	if s == nil {
		return
	}
	s.once.Do(func() { s.l.done(s, o) })
}

func (l *Limiter) done(s *Slot, o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.inFlight--
	l.lastUsed = now
	if l.pinned {
		l.wakeLocked()
		return
	}
	r := s.round
	r.back++
	if r == l.sending {
		l.sending = nil // its first answer: the next request opens the next round
	}
	switch o {
	case OutcomeThrottled, OutcomeFailed:
		// Requests sent before the last cut were in flight when it was
		// made: their failures are that same episode's.
		if !s.sent.Before(l.lastCut) {
			next := l.limit / 2
			if o == OutcomeThrottled {
				if rate := l.rateLocked(now); rate > 0 && l.srtt > 0 {
					next = min(next, math.Ceil(rate*l.srtt.Seconds()))
				}
				l.calmUntil = now.Add(calmFor)
			}
			l.limit = max(1, next)
			l.slowStart = false
			l.lastCut = now
			l.sending = nil
		}
	case OutcomeAnswered:
		l.countAnswerLocked(now)
	case OutcomeOK:
		l.countAnswerLocked(now)
		l.sampleLocked(now, r, now.Sub(s.sent))
	}
	if r.back == r.sent && r != l.sending {
		l.decideLocked(now, r)
	}
	l.wakeLocked()
}

// sampleLocked takes one round trip: the smallest and the smoothed ones,
// and, in slow start, one more request in flight for each answer in time.
func (l *Limiter) sampleLocked(now time.Time, r *round, rtt time.Duration) {
	if now.Sub(l.minAt) > minRTTWindow {
		l.minRTT[1], l.minRTT[0], l.minAt = l.minRTT[0], 0, now
	}
	if l.minRTT[0] == 0 || rtt < l.minRTT[0] {
		l.minRTT[0] = rtt
	}
	if l.srtt == 0 {
		l.srtt = rtt
	} else {
		l.srtt += (rtt - l.srtt) / 8
	}
	r.n++
	r.sum += rtt
	if l.slowStart && r.busy && rtt <= l.targetLocked() {
		l.limit = min(float64(l.ceiling), l.limit+1)
	}
}

// decideLocked weighs a round whose requests are all answered.
func (l *Limiter) decideLocked(now time.Time, r *round) {
	if r.n == 0 || r.start.Before(l.lastCut) {
		return // no latency to weigh, or it was sent before the last cut
	}
	avg := r.sum / time.Duration(r.n)
	target := l.targetLocked()
	switch {
	case avg > target:
		l.slowStart = false
		if now.Sub(l.lastCut) >= avg {
			// Round trips grew: a queue builds up, at the registry or on
			// the way. Shrink in proportion, at most by half.
			l.limit = max(1, l.limit*max(0.5, float64(target)/float64(avg)))
			l.lastCut = now
		}
	case !l.slowStart && r.busy:
		if now.Before(l.calmUntil) && now.Sub(l.lastGrow) < time.Second {
			return
		}
		l.limit = min(float64(l.ceiling), l.limit+1)
		l.lastGrow = now
	}
}

// targetLocked is the round trip up to which no queue is assumed: the
// smallest seen, plus as much again (at least queueSlack).
func (l *Limiter) targetLocked() time.Duration {
	m := l.minRTT[0]
	if l.minRTT[1] > 0 && (m == 0 || l.minRTT[1] < m) {
		m = l.minRTT[1]
	}
	return m + max(m, queueSlack)
}

func (l *Limiter) countAnswerLocked(now time.Time) {
	tick := now.UnixNano() / int64(100*time.Millisecond)
	if tick-l.answersAt >= int64(len(l.answers)) {
		l.answers = [10]int64{}
	} else {
		for t := l.answersAt + 1; t <= tick; t++ {
			l.answers[t%10] = 0
		}
	}
	if tick > l.answersAt {
		l.answersAt = tick
	}
	l.answers[tick%10]++
}

// rateLocked is the answers per second of the last second.
func (l *Limiter) rateLocked(now time.Time) float64 {
	tick := now.UnixNano() / int64(100*time.Millisecond)
	if tick-l.answersAt >= int64(len(l.answers)) {
		return 0
	}
	var n int64
	for _, c := range l.answers {
		n += c
	}
	return float64(n)
}

// wakeLocked lets waiting requests in, oldest first, while the limit has room.
func (l *Limiter) wakeLocked() {
	for len(l.waiters) > 0 && l.inFlight < l.room() {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.inFlight++
		w.granted = true
		close(w.ready)
	}
	l.signalLocked()
}

// signalLocked wakes the checks waiting for room (Admit).
func (l *Limiter) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Ticket is a check admitted by Admit. Until it is cleared (by the check's
// first request, by Clear), the limiter counts it as a request about to be
// made, so that no more checks are admitted than there is room for.
type Ticket struct {
	l       *Limiter
	cleared bool // guarded by l.mu
}

type ticketKey struct{}

// WithTicket returns a context whose first request hands the ticket over.
func WithTicket(ctx context.Context, t *Ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// Clear says the check no longer stands for a request about to be made:
// it made one, it waits for another check's, or it ended.
func (t *Ticket) Clear() {
	if t == nil {
		return
	}
	t.l.mu.Lock()
	t.clearLocked(t.l)
	t.l.signalLocked()
	t.l.mu.Unlock()
}

func (t *Ticket) clearLocked(l *Limiter) {
	if t == nil || t.cleared || t.l != l {
		return
	}
	t.cleared = true
	l.pending--
}

// Admit waits until the registry has room for one more check's requests:
// fewer requests in flight, waiting, or about to be made than the limit.
func (l *Limiter) Admit(ctx context.Context) (*Ticket, error) {
	for {
		l.mu.Lock()
		if l.inFlight+len(l.waiters)+l.pending < l.room() {
			l.pending++
			l.mu.Unlock()
			return &Ticket{l: l}, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Limit is the requests the limiter allows in flight now.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.room()
}

// InFlight is the requests in flight now.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Ceiling is the most the limiter grows to, and Pinned whether it stays there.
func (l *Limiter) Ceiling() (ceiling int, pinned bool) { return l.ceiling, l.pinned }

// TakePeak returns the most requests that were in flight at once since the
// last call, and starts counting again from those in flight now.
func (l *Limiter) TakePeak() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peak
	l.peak = l.inFlight
	return p
}

// ParseConcurrency reads the concurrency variable: "" or auto (follow the
// registry up to the kind's ceiling), or a number from 1 to MaxConcurrency
// that pins it.
func ParseConcurrency(s string) (n int, pinned bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "auto") {
		return 0, false, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxConcurrency {
		return 0, false, fmt.Errorf("must be auto or a number of requests from 1 to %d, not %q", MaxConcurrency, s)
	}
	return n, true, nil
}
