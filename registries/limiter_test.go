package registries

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// step is one move of a limiter under test, on a clock of the test's own.
type step struct {
	send   int           // acquire this many slots now (there must be room)
	wait   time.Duration // then let this much time pass
	answer int           // then finish this many of the oldest slots…
	as     Outcome       // …with this outcome
	limit  int           // then, when > 0, the limit must be this
}

func TestLimiterFollowsTheRegistry(t *testing.T) {
	const rtt = 50 * time.Millisecond
	// rounds sends the whole limit and has it answered after d, n times:
	// one round trip each.
	rounds := func(n int, limits []int, d time.Duration, as Outcome) []step {
		var out []step
		for i := range n {
			send := 4
			if i > 0 {
				send = limits[i-1]
			}
			out = append(out, step{send: send, wait: d, answer: send, as: as, limit: limits[i]})
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		ceiling int
		pinned  bool
		steps   []step
	}{
		{
			name:    "slow start doubles each round trip while round trips hold",
			ceiling: 32,
			steps:   rounds(5, []int{8, 16, 32, 32, 32}, rtt, OutcomeOK),
		},
		{
			name:    "never past the kind's ceiling",
			ceiling: 10,
			steps:   rounds(3, []int{8, 10, 10}, rtt, OutcomeOK),
		},
		{
			name:    "a pinned limiter stays where it is pinned",
			ceiling: 6, pinned: true,
			steps: []step{
				{send: 6, wait: rtt, answer: 6, as: OutcomeOK, limit: 6},
				{send: 6, wait: rtt, answer: 6, as: OutcomeThrottled, limit: 6},
				{send: 6, wait: 10 * rtt, answer: 6, as: OutcomeFailed, limit: 6},
			},
		},
		{
			name:    "answers that say nothing of latency do not grow it",
			ceiling: 32,
			steps:   rounds(3, []int{4, 4, 4}, rtt, OutcomeAnswered),
		},
		{
			name:    "a caller giving up says nothing",
			ceiling: 32,
			steps:   rounds(2, []int{4, 4}, rtt, OutcomeNone),
		},
		{
			name:    "timeouts halve it at once, once for all the requests of that round",
			ceiling: 64,
			steps: cat(rounds(3, []int{8, 16, 32}, rtt, OutcomeOK), []step{
				{send: 32, wait: 30 * time.Second, answer: 32, as: OutcomeFailed, limit: 16},
				// The next round's failures are a new episode.
				{send: 16, wait: rtt, answer: 1, as: OutcomeFailed, limit: 8},
				{answer: 15, as: OutcomeFailed, limit: 8},
			}),
		},
		{
			name:    "after a cut it grows by one a round trip",
			ceiling: 64,
			steps: cat(rounds(3, []int{8, 16, 32}, rtt, OutcomeOK), []step{
				{send: 32, wait: rtt, answer: 32, as: OutcomeFailed, limit: 16},
				{send: 16, wait: rtt, answer: 16, as: OutcomeOK, limit: 17},
				{send: 17, wait: rtt, answer: 17, as: OutcomeOK, limit: 18},
			}),
		},
		{
			name:    "round trips that grow past twice the smallest shrink it in proportion",
			ceiling: 64,
			steps: cat(rounds(4, []int{8, 16, 32, 64}, rtt, OutcomeOK), []step{
				// 125 ms against a target of 100 ms: × 0.8.
				{send: 64, wait: 125 * time.Millisecond, answer: 64, as: OutcomeOK, limit: 51},
				// 400 ms: at most halved.
				{send: 51, wait: 400 * time.Millisecond, answer: 51, as: OutcomeOK, limit: 25},
				// Back to 50 ms: growth again, by one.
				{send: 25, wait: rtt, answer: 25, as: OutcomeOK, limit: 26},
			}),
		},
		{
			name:    "a 429 cuts to what the registry answered in the last second, then grows by one a second",
			ceiling: 64,
			steps: cat(
				// 4+8+16+32 = 60 answers in 200 ms, round trips of 50 ms:
				// 60/s × 50 ms = 3 in flight is what it let through.
				rounds(4, []int{8, 16, 32, 64}, rtt, OutcomeOK),
				[]step{
					{send: 64, wait: rtt, answer: 64, as: OutcomeThrottled, limit: 3},
					{send: 3, wait: rtt, answer: 3, as: OutcomeOK, limit: 4},
					{send: 4, wait: rtt, answer: 4, as: OutcomeOK, limit: 4},
					{wait: time.Second},
					{send: 4, wait: rtt, answer: 4, as: OutcomeOK, limit: 5},
				}),
		},
		{
			name:    "a 503 is a 429",
			ceiling: 64,
			steps: []step{
				{send: 4, wait: rtt, answer: 4, as: OutcomeOK, limit: 8},
				// 4 answers in the last second × 50 ms: 1.
				{send: 8, wait: rtt, answer: 8, as: OutcomeThrottled, limit: 1},
			},
		},
		{
			name:    "a limit not in use does not grow",
			ceiling: 64,
			steps: []step{
				{send: 1, wait: rtt, answer: 1, as: OutcomeOK, limit: 4},
				{send: 1, wait: rtt, answer: 1, as: OutcomeOK, limit: 4},
			},
		},
		{
			name:    "idle for a while, it starts over",
			ceiling: 64,
			steps: cat(rounds(3, []int{8, 16, 32}, rtt, OutcomeOK), []step{
				{wait: idleRestart + time.Second},
				{send: 1, wait: rtt, answer: 1, as: OutcomeOK, limit: 4},
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			l := NewLimiter(tt.ceiling, tt.pinned)
			l.now = func() time.Time { return clock }
			var slots []*Slot
			for i, s := range tt.steps {
				for range s.send {
					if got := l.InFlight(); got >= l.Limit() {
						t.Fatalf("step %d: no room for a request: %d in flight, limit %d", i, got, l.Limit())
					}
					slot, err := l.Acquire(context.Background())
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					slots = append(slots, slot)
				}
				clock = clock.Add(s.wait)
				if s.answer > len(slots) {
					t.Fatalf("step %d: answers %d of %d in flight", i, s.answer, len(slots))
				}
				for _, slot := range slots[:s.answer] {
					slot.Done(s.as)
				}
				slots = slots[s.answer:]
				if s.limit > 0 {
					if got := l.Limit(); got != s.limit {
						t.Fatalf("step %d: limit %d, want %d", i, got, s.limit)
					}
				}
			}
		})
	}
}

// TestLimiterQueue: requests past the limit wait their turn, oldest first;
// one whose context ends leaves the queue with its context's cause; a slot
// given back twice counts once.
func TestLimiterQueue(t *testing.T) {
	l := NewLimiter(1, true)
	first, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			s, err := l.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			s.Done(OutcomeOK)
		}()
		waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.waiters) == i+1 })
	}
	cause := errors.New("the image's deadline passed")
	ctx, cancel := context.WithCancelCause(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx)
		gaveUp <- err
	}()
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.waiters) == 4 })
	cancel(cause)
	if err := <-gaveUp; !errors.Is(err, cause) {
		t.Fatalf("a request whose context ended in the queue: %v, want its cause", err)
	}
	first.Done(OutcomeOK)
	first.Done(OutcomeFailed) // counts once: no second release, no cut
	for want := range 3 {
		if got := <-order; got != want {
			t.Fatalf("request %d went in %d-th", got, want)
		}
	}
	waitFor(t, func() bool { return l.InFlight() == 0 })
	if p := l.TakePeak(); p != 1 {
		t.Errorf("peak %d in flight with a limit of 1", p)
	}
}

// TestLimiterAdmit: checks are admitted while the requests in flight,
// waiting and about to be made leave room; a ticket stands for a request
// about to be made until the check's first request takes it over (or it is
// cleared), and the next check is admitted only then.
func TestLimiterAdmit(t *testing.T) {
	l := NewLimiter(2, true)
	ctx := context.Background()
	a, err := l.Admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admitted := make(chan *Ticket, 1)
	go func() {
		c, err := l.Admit(ctx)
		if err != nil {
			t.Error(err)
		}
		admitted <- c
	}()
	// a's check makes its request: the ticket becomes a request in flight,
	// and there is still no room.
	sa, err := l.Acquire(WithTicket(ctx, a))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-admitted:
		t.Fatal("a third check was admitted with two requests in flight or about to be made, limit 2")
	case <-time.After(50 * time.Millisecond):
	}
	// b's check waits on another's request instead: room for one more.
	b.Clear()
	b.Clear()
	c := <-admitted
	sa.Done(OutcomeOK)
	c.Clear()
	a.Clear() // already taken over: nothing more
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending != 0 || l.inFlight != 0 || len(l.waiters) != 0 {
		t.Errorf("after every check: %d pending, %d in flight, %d queued", l.pending, l.inFlight, len(l.waiters))
	}
}

func TestLimiterAdmitEndsWithContext(t *testing.T) {
	l := NewLimiter(1, true)
	if _, err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("the cycle's deadline passed")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if _, err := l.Admit(ctx); !errors.Is(err, cause) {
		t.Errorf("Admit with no room and its context ended: %v", err)
	}
}

func TestParseConcurrency(t *testing.T) {
	for _, tt := range []struct {
		in     string
		n      int
		pinned bool
		err    bool
	}{
		{"", 0, false, false},
		{"auto", 0, false, false},
		{" Auto ", 0, false, false},
		{"1", 1, true, false},
		{"128", 128, true, false},
		{"0", 0, false, true},
		{"129", 0, false, true},
		{"-3", 0, false, true},
		{"sixteen", 0, false, true},
		{"4.5", 0, false, true},
	} {
		n, pinned, err := ParseConcurrency(tt.in)
		if n != tt.n || pinned != tt.pinned || (err != nil) != tt.err {
			t.Errorf("ParseConcurrency(%q) = %d, %v, %v; want %d, %v, error %v", tt.in, n, pinned, err, tt.n, tt.pinned, tt.err)
		}
		if err != nil && err.Error() != fmt.Sprintf("must be auto or a number of requests from 1 to 128, not %q", tt.in) {
			t.Errorf("ParseConcurrency(%q): %v", tt.in, err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
