package web_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/web"
)

// loginFrom sends GET path with Basic credentials from a loopback source
// address of the test's choosing (127.0.0.x), so that several clients can be
// told apart, and returns the status and Retry-After.
func loginFrom(t *testing.T, base, src, path, user, pass string) (int, int) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, src, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	return res.StatusCode, ra
}

// TestLoginThrottling: 30 wrong logins sent at once from one address are
// answered 401 for the first few (each costs a bcrypt) and 429 with
// Retry-After for the rest; the right password is refused too until the
// wait is over, then works. Another address is not held up, and a browser
// logged in is not locked out by someone guessing from its address.
func TestLoginThrottling(t *testing.T) {
	// The lowest cost: what is counted here is how many passwords get
	// checked, and a slow machine (or -race) must not turn the wait for a
	// bcrypt slot into a 503.
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, config.WebAuth{Username: "alice", Password: string(hash)}, nil)
	base := f.ts.URL

	const n = 30
	codes := make([]int, n)
	waits := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], waits[i] = loginFrom(t, base, "127.0.0.2", "/api/v1/registries", "alice", wrongPassword)
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for i, c := range codes {
		count[c]++
		if c == http.StatusTooManyRequests && waits[i] < 1 {
			t.Errorf("a 429 without Retry-After")
		}
	}
	if count[http.StatusUnauthorized] < 1 || count[http.StatusUnauthorized] > 5 || count[http.StatusTooManyRequests] < n-5 ||
		count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != n {
		t.Fatalf("30 wrong logins answered %v; want at most 5 × 401 (bcrypt) and the rest 429", count)
	}
	t.Logf("30 wrong logins at once: %d × 401, %d × 429", count[http.StatusUnauthorized], count[http.StatusTooManyRequests])
	if got := strings.Count(f.logs.String(), "failed login"); got != count[http.StatusUnauthorized] {
		t.Errorf("%d failed logins logged, %d checked", got, count[http.StatusUnauthorized])
	}

	// One more guess (the 31st) waits, unchecked, and restarts the wait; the
	// right password right after is refused too, unchecked.
	if code, wait := loginFrom(t, base, "127.0.0.2", "/", "alice", wrongPassword); code != http.StatusTooManyRequests || wait < 1 {
		t.Fatalf("a guess after 30: %d, Retry-After %d", code, wait)
	}
	code, wait := loginFrom(t, base, "127.0.0.2", "/", "alice", alicePassword)
	if code != http.StatusTooManyRequests || wait < 1 {
		t.Fatalf("the right password during the wait: %d, Retry-After %d", code, wait)
	}
	// Meanwhile another address is not held up: a wrong password there is
	// checked (401), not made to wait.
	if code, _ := loginFrom(t, base, "127.0.0.4", "/", "alice", wrongPassword); code != http.StatusUnauthorized {
		t.Errorf("another address: %d", code)
	}
	time.Sleep(time.Duration(wait)*time.Second + 100*time.Millisecond)
	if code, w2 := loginFrom(t, base, "127.0.0.2", "/", "alice", alicePassword); code != http.StatusOK {
		t.Fatalf("the right password after the wait of %d s: %d (Retry-After %d)", wait, code, w2)
	}
	// The success cleared the count: a typo is a 401 again, not a wait.
	if code, _ := loginFrom(t, base, "127.0.0.2", "/", "alice", wrongPassword); code != http.StatusUnauthorized {
		t.Errorf("a typo after a success: %d", code)
	}
	// Guessing from the address of a logged-in browser does not lock the
	// browser out: credentials that passed are not guesses.
	for range 10 {
		loginFrom(t, base, "127.0.0.2", "/", "alice", wrongPassword)
	}
	if code, _ := loginFrom(t, base, "127.0.0.2", "/", "alice", wrongPassword); code != http.StatusTooManyRequests {
		t.Errorf("guessing goes on: %d", code)
	}
	if code, _ := loginFrom(t, base, "127.0.0.2", "/api/v1/registries", "alice", alicePassword); code != http.StatusOK {
		t.Errorf("the logged-in browser: %d", code)
	}
	f.do("GET", "/api/v1/healthz", nil)
}

// TestTokenThrottling: wrong bearer tokens count like wrong passwords; the
// API answers 429 in JSON with Retry-After.
func TestTokenThrottling(t *testing.T) {
	const token = "the-right-token-0123456789abcdef"
	f := newFixture(t, config.WebAuth{Token: token}, nil)
	var codes []int
	for i := range 7 {
		res, body := f.do("GET", "/api/v1/registries", nil, "Authorization", fmt.Sprintf("Bearer guess-%d", i))
		codes = append(codes, res.StatusCode)
		if res.StatusCode == http.StatusTooManyRequests {
			if e := decode[apiError](t, body); !strings.Contains(e.Error, "too many failed logins") || res.Header.Get("Retry-After") == "" {
				t.Errorf("429: %s, Retry-After %q", body, res.Header.Get("Retry-After"))
			}
		}
	}
	want := []int{401, 401, 401, 401, 401, 429, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("7 wrong tokens: %v, want %v", codes, want)
	}
	res, body := f.do("GET", "/api/v1/registries", nil, "Authorization", "Bearer "+token)
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right token during the wait: %d %s", res.StatusCode, body)
	}
}

// BenchmarkGuessingFlood measures how long a health check takes while
// addresses guess passwords as fast as they can (each guess that gets
// checked costs a bcrypt of cost 10): the throttle and the bcrypt
// semaphore keep the daemon answering. It prints percentiles, quiet and
// under the flood.
func BenchmarkGuessingFlood(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	for _, guessers := range []int{0, 8, 64} {
		b.Run(fmt.Sprintf("guessers=%d", guessers), func(b *testing.B) {
			base := benchServer(b, config.WebAuth{Username: "alice", Password: string(hash)})
			ctx, cancel := context.WithCancel(context.Background())
			var guesses sync.WaitGroup
			var mu sync.Mutex
			answered := map[int]int{}
			for i := range guessers {
				guesses.Add(1)
				go func() {
					defer guesses.Done()
					d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1+byte(i/250), 1+byte(i%250))}}
					c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
					for ctx.Err() == nil {
						req, _ := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
						req.SetBasicAuth("alice", "guess")
						res, err := c.Do(req)
						if err != nil {
							continue
						}
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						mu.Lock()
						answered[res.StatusCode]++
						mu.Unlock()
					}
				}()
			}
			var lat []time.Duration
			client := &http.Client{}
			for b.Loop() {
				start := time.Now()
				res, err := client.Get(base + "/api/v1/healthz")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat = append(lat, time.Since(start))
			}
			cancel()
			guesses.Wait()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
			b.ReportMetric(float64(p(0.5).Microseconds()), "p50-µs")
			b.ReportMetric(float64(p(0.99).Microseconds()), "p99-µs")
			mu.Lock()
			b.Logf("healthz with %d addresses guessing: p50 %v, p99 %v over %d requests; guesses answered %v", guessers, p(0.5), p(0.99), len(lat), answered)
			mu.Unlock()
		})
	}
}

// benchServer serves the UI and API on a real store, for benchmarks.
func benchServer(b *testing.B, auth config.WebAuth) string {
	b.Helper()
	return serve(b, &web.Server{Store: storetest.Open(b), Registries: defaultLive(b), Auth: auth}).URL
}
