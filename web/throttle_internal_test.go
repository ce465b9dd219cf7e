package web

import (
	"testing"
	"time"
)

// TestLoginLimiterSchedule walks one address through the schedule on a
// clock the test moves: free tries, then waits that double, attempts during
// a wait that restart it, a success that clears it all, and forgetting.
func TestLoginLimiterSchedule(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l := newLoginLimiter()
	l.now = func() time.Time { return now }
	const addr = "192.0.2.7"
	fail := func() time.Duration {
		t.Helper()
		done, wait := l.begin(addr)
		if wait > 0 {
			t.Fatalf("at %v: told to wait %v, want a try", now, wait)
		}
		return done(attemptFailed)
	}
	mustWait := func(want time.Duration) {
		t.Helper()
		if _, wait := l.begin(addr); wait != want {
			t.Fatalf("at %v: wait %v, want %v", now, wait, want)
		}
	}
	for i := range 4 {
		if d := fail(); d != 0 {
			t.Fatalf("failure %d: wait %v, want none", i+1, d)
		}
	}
	if d := fail(); d != time.Second {
		t.Fatalf("5th failure: wait %v, want 1s", d)
	}
	mustWait(time.Second)
	now = now.Add(500 * time.Millisecond)
	mustWait(time.Second) // an attempt during the wait restarts it
	now = now.Add(time.Second)
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if d := fail(); d != want {
			t.Fatalf("failure %d after the free tries: wait %v, want %v", i+1, d, want)
		}
		now = now.Add(want)
	}
	for range 20 {
		fail()
		now = now.Add(l.maxWait)
	}
	if d := fail(); d != l.maxWait {
		t.Fatalf("after many failures: wait %v, want the cap %v", d, l.maxWait)
	}
	now = now.Add(l.maxWait)
	done, _ := l.begin(addr)
	done(attemptOK)
	for range 4 {
		if d := fail(); d != 0 {
			t.Fatalf("after a success: wait %v, want a fresh count", d)
		}
	}
	now = now.Add(l.forgetAfter + time.Second)
	for range 4 {
		if d := fail(); d != 0 {
			t.Fatalf("after %v without failure: wait %v, want a fresh count", l.forgetAfter, d)
		}
	}
	// A busy server's attempt counts for nothing.
	done, _ = l.begin(addr)
	done(attemptVoid)
	if d := fail(); d != time.Second {
		t.Fatalf("5th failure after a void attempt: %v", d)
	}
}

// TestLoginLimiterInFlight: parallel attempts share the free tries.
func TestLoginLimiterInFlight(t *testing.T) {
	l := newLoginLimiter()
	var dones []func(outcome) time.Duration
	for range 5 {
		done, wait := l.begin("a")
		if wait > 0 {
			t.Fatal("a free try refused")
		}
		dones = append(dones, done)
	}
	if _, wait := l.begin("a"); wait != l.firstWait {
		t.Fatalf("a 6th attempt beside 5 in flight: wait %v", wait)
	}
	if _, wait := l.begin("b"); wait != 0 {
		t.Fatalf("another address waits %v", wait)
	}
	for _, d := range dones {
		d(attemptFailed)
	}
	if _, wait := l.begin("a"); wait <= 0 {
		t.Fatal("no wait after 5 failures")
	}
}

// TestLoginLimiterBounded: the table of addresses does not grow past its cap.
func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter()
	l.maxAddrs = 100
	for i := range 1000 {
		done, _ := l.begin(string(rune('a'+i%26)) + time.Duration(i).String())
		done(attemptFailed)
	}
	if n := len(l.addrs); n > l.maxAddrs {
		t.Errorf("%d addresses kept, cap %d", n, l.maxAddrs)
	}
}
