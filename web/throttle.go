package web

import (
	"sync"
	"time"
)

// loginLimiter counts failed logins per client address. An address gets
// freeFailures tries; after that it waits firstWait before the next, and
// each further failure doubles the wait, up to maxWait; an attempt made
// during the wait is not checked and restarts it. Attempts in flight count
// against the free tries, so a burst of parallel guesses gets no more
// comparisons than a sequence would. A success clears the address; an
// address without failures for forgetAfter starts afresh.
type loginLimiter struct {
	freeFailures int
	firstWait    time.Duration
	maxWait      time.Duration
	forgetAfter  time.Duration
	maxAddrs     int
	now          func() time.Time

	mu    sync.Mutex
	addrs map[string]*attempts
}

type attempts struct {
	failures int
	inFlight int
	until    time.Time // no attempt before
	last     time.Time // the last failure
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{
		freeFailures: 5,
		firstWait:    time.Second,
		maxWait:      5 * time.Minute,
		forgetAfter:  30 * time.Minute,
		maxAddrs:     4096,
		now:          time.Now,
		addrs:        map[string]*attempts{},
	}
}

type outcome int

const (
	attemptOK     outcome = iota // the credentials were good: the address starts afresh
	attemptFailed                // they were wrong: one more failure
	attemptVoid                  // no verdict (the server was busy): nothing counted
)

// begin asks to check credentials from addr. When the address must wait
// first, it returns how long; otherwise it returns done, to be called with
// the outcome, which returns how long the address must now wait (0: none).
func (l *loginLimiter) begin(addr string) (done func(outcome) time.Duration, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a, ok := l.addrs[addr]
	if !ok {
		l.makeRoom(now)
		a = &attempts{}
		l.addrs[addr] = a
	}
	if a.inFlight == 0 && a.failures > 0 && now.Sub(a.last) > l.forgetAfter {
		*a = attempts{}
	}
	if a.failures >= l.freeFailures && (now.Before(a.until) || a.inFlight > 0) {
		// Past the free tries, an attempt during the wait (or beside the
		// one being checked) is not checked, and restarts the wait: an
		// address that keeps guessing keeps waiting, one that honours
		// Retry-After gets its next try.
		if until := now.Add(l.wait(a.failures)); until.After(a.until) {
			a.until = until
		}
		return nil, a.until.Sub(now)
	}
	if a.failures < l.freeFailures && a.failures+a.inFlight >= l.freeFailures {
		// The free tries are all being checked right now.
		return nil, l.firstWait
	}
	a.inFlight++
	return func(o outcome) time.Duration {
		l.mu.Lock()
		defer l.mu.Unlock()
		a.inFlight--
		switch o {
		case attemptOK:
			*a = attempts{}
			delete(l.addrs, addr)
			return 0
		case attemptVoid:
			return 0
		}
		now := l.now()
		a.failures++
		a.last = now
		if a.failures < l.freeFailures {
			return 0
		}
		d := l.wait(a.failures)
		a.until = now.Add(d)
		return d
	}, 0
}

// wait is how long an address with that many failures waits between tries:
// firstWait at freeFailures, doubling with each one after, up to maxWait.
func (l *loginLimiter) wait(failures int) time.Duration {
	d := l.firstWait << min(max(failures-l.freeFailures, 0), 20)
	if d > l.maxWait || d <= 0 {
		d = l.maxWait
	}
	return d
}

// makeRoom keeps the table bounded: forgotten addresses go first, then the
// one whose last failure is oldest. Called with mu held.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.addrs) < l.maxAddrs {
		return
	}
	var oldest string
	var oldestAt time.Time
	for k, a := range l.addrs {
		if a.inFlight > 0 {
			continue
		}
		if now.Sub(a.last) > l.forgetAfter && now.After(a.until) {
			delete(l.addrs, k)
			continue
		}
		if oldest == "" || a.last.Before(oldestAt) {
			oldest, oldestAt = k, a.last
		}
	}
	if len(l.addrs) >= l.maxAddrs && oldest != "" {
		delete(l.addrs, oldest)
	}
}
