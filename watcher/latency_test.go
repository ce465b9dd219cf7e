package watcher_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// fillRegistry starts a real registry holding repos repositories of 5 tags
// (1.0.0 … 1.0.4, one manifest), written straight into its storage, and
// returns it with one target per repository:tag.
func fillRegistry(t *testing.T, repos int) (*regtest.Registry, []string, []string) {
	t.Helper()
	reg := regtest.Start(t, regtest.Options{})
	seed := reg.Push(t, "seed/app:1.0.0", regtest.Image(t, "seed"))
	tags := []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"}
	names := make([]string, repos)
	for i := range names {
		names[i] = fmt.Sprintf("team/app%03d", i)
	}
	reg.FillStorage(t, seed, names, tags...)
	var refs []string
	for _, n := range names {
		for _, tag := range tags {
			refs = append(refs, n+":"+tag)
		}
	}
	return reg, names, refs
}

func targetsOn(t *testing.T, host string, refs []string) []watcher.Target {
	t.Helper()
	var out []watcher.Target
	for _, r := range refs {
		img, err := registries.ParseImage(host + "/" + r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, watcher.Target{Image: img, Platform: regtest.Platform("linux/amd64")})
	}
	return out
}

// runChecker checks targets on one custom instance at url and returns the
// results with the instance's report.
func runChecker(t *testing.T, url string, targets []watcher.Target, vals registries.Values) ([]watcher.Result, watcher.RegistryReport) {
	t.Helper()
	if vals == nil {
		vals = registries.Values{}
	}
	vals["url"] = url
	set, err := registries.NewSet(registries.DefaultCatalog(),
		[]registries.Config{{Kind: "custom", Name: "under-test", Source: registries.SourceFile, Values: vals}}, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reports []watcher.RegistryReport
	c := &watcher.Checker{
		Registries: func() *registries.Set { return set },
		// Safety nets, far above what the checks take.
		ImageTimeout: time.Minute, CycleTimeout: 2 * time.Minute,
		LaneDone: func(r watcher.RegistryReport) { mu.Lock(); reports = append(reports, r); mu.Unlock() },
	}
	results := c.Run(context.Background(), targets)
	if len(reports) != 1 {
		t.Fatalf("%d lane reports, want 1: %+v", len(reports), reports)
	}
	return results, reports[0]
}

// TestThrottledRegistryBacksOff puts a rate limit of 40 requests a second
// in front of a real registry (429 with Retry-After: 1 past it) and checks
// 150 images (30 repositories × 5 tags) on it with the concurrency left to
// follow the registry. On loopback tagwatch would send hundreds a second;
// the first 429 stops it (every request of the instance waits the
// Retry-After out) and cuts its requests in flight to what the registry let
// through, so the requests that still meet a 429 are the few already in
// flight: no long runs of 429s, no 429 answered to the same request twice
// in a row, and every image finishes.
func TestThrottledRegistryBacksOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a rate limit")
	}
	t.Parallel()
	reg, _, refs := fillRegistry(t, 30)
	th := reg.Throttle(t, 40)
	start := time.Now()
	results, rep := runChecker(t, th.URL, targetsOn(t, th.Host, refs), nil)
	took := time.Since(start)

	for _, r := range results {
		if r.Error != "" {
			t.Errorf("%s: %s (%s)", r.Image, r.Error, r.ErrorDetail)
		}
	}
	statuses := th.Statuses()
	var throttled, passed, run, longest int
	var runs []int
	for _, s := range statuses {
		if s == http.StatusTooManyRequests {
			throttled++
			run++
			longest = max(longest, run)
			continue
		}
		passed++
		if run > 0 {
			runs = append(runs, run)
		}
		run = 0
	}
	if run > 0 {
		runs = append(runs, run)
	}
	t.Logf("%d images in %v: %d requests passed, %d answered 429, in runs of %v; at most %d in flight at the registry, %d by tagwatch's count; limit %d at the end",
		len(refs), took.Round(time.Millisecond), passed, throttled, runs, th.PeakInFlight(), rep.PeakInFlight, rep.Limit)
	if throttled == 0 {
		t.Fatalf("the registry never answered 429: the test proves nothing (raise the images or lower the rate)")
	}
	// The first 429s meet whatever was in flight when the allowance ran
	// out; after them the limit is what the registry let through, and a
	// run is a request or two sent as the next second's allowance ran out.
	for i, n := range runs[1:] {
		if n > 3 {
			t.Errorf("after the first 429s, a run of %d 429s in a row (run %d of %v): tagwatch did not back off", n, i+2, runs)
		}
	}
	if runs[0] > rep.PeakInFlight {
		t.Errorf("the first run of 429s (%d) is longer than the requests tagwatch had in flight (%d)", runs[0], rep.PeakInFlight)
	}
	// Each request is sent at most once more per 429 it got: the passed
	// requests are the check's own (0.2 tag lists, 1 digest per image,
	// a ping), not retries piling up.
	if want := len(refs)*6/5 + 2; passed > want {
		t.Errorf("%d requests passed, want at most %d (1.2 per image and the ping)", passed, want)
	}
	if throttled > passed/2 {
		t.Errorf("%d requests answered 429 for %d passed: not polite", throttled, passed)
	}
}

// TestHeadDoesNotWaitForTagList puts a proxy in front of a real registry
// that holds each repository's tag list until the HEAD of one of its tags
// has come in. A check that read its tag's digest only once the list was
// in would wait here until the safety net let the list through; the checks
// read both at once, so no list is ever held past the net, and every image
// is found with its update.
func TestHeadDoesNotWaitForTagList(t *testing.T) {
	t.Parallel()
	reg, names, refs := fillRegistry(t, 4)
	target, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	headed := map[string]chan struct{}{} // by repository: closed by its first HEAD
	seen := func(repo string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch, ok := headed[repo]
		if !ok {
			ch = make(chan struct{})
			headed[repo] = ch
		}
		return ch
	}
	var held atomic.Int64 // tag lists let through by the safety net
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/v2/")
		if repo, ok := strings.CutSuffix(p, "/tags/list"); ok {
			select {
			case <-seen(repo):
			case <-time.After(10 * time.Second):
				held.Add(1)
			}
		}
		if repo, _, ok := strings.Cut(p, "/manifests/"); ok && r.Method == http.MethodHead {
			ch := seen(repo)
			mu.Lock()
			select {
			case <-ch:
			default:
				close(ch)
			}
			mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	host := strings.TrimPrefix(proxy.URL, "http://")

	results, _ := runChecker(t, proxy.URL, targetsOn(t, host, refs), nil)
	for _, r := range results {
		if r.Error != "" || r.LatestTag != "1.0.4" {
			t.Errorf("%s: latest %q, error %q", r.Image, r.LatestTag, r.Error)
		}
	}
	if n := held.Load(); n > 0 {
		t.Errorf("%d of %d tag lists went out before any HEAD of their repository: the digests waited for the lists", n, len(names))
	}
}

// TestCycleReportsRegistries runs the daemon's cycle on 100 images (20
// repositories × 5 tags) behind a Link adding 20 ms round trips: the
// cycle's report and its log line give the registry's images, requests
// (1.2 an image: a tag list per repository, a HEAD per tag, and the
// ping) and the most requests in flight, which grew past the 4 that
// once were the cap.
func TestCycleReportsRegistries(t *testing.T) {
	t.Parallel()
	reg, _, refs := fillRegistry(t, 20)
	link := regtest.StartLink(t, reg.Host, 20*time.Millisecond)
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{{Kind: "custom", Name: "far", Source: registries.SourceFile,
		Values: registries.Values{"url": "http://" + link.Host}}}, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := make([]string, len(refs))
	for i, r := range refs {
		full[i] = link.Host + "/" + r
	}
	var logged strings.Builder
	var logMu sync.Mutex
	d := &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: watchtest.Images(t, full...)}}},
		Checker:  &watcher.Checker{Registries: func() *registries.Set { return set }, ImageTimeout: time.Minute, CycleTimeout: 2 * time.Minute},
		Store:    storetest.Open(t),
		Log:      slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, nil)),
		Platform: regtest.Platform("linux/amd64"),
	}
	rep := d.RunCycle(context.Background(), d.Sources)
	if rep.Errors != 0 || rep.Images != len(refs) {
		t.Fatalf("cycle: %d images, %d errors", rep.Images, rep.Errors)
	}
	if len(rep.Registries) != 1 {
		t.Fatalf("registries in the report: %+v, want custom.far", rep.Registries)
	}
	r := rep.Registries[0]
	t.Logf("%+v; link: %d requests, %d connections", r, link.Requests(), link.Conns())
	if r.Registry != "custom.far" || r.Images != len(refs) || r.Requests != int64(len(refs)*6/5+1) ||
		r.PeakInFlight <= 4 || r.PeakInFlight > r.Ceiling || r.Duration <= 0 || r.Duration > rep.Duration || r.Ceiling != registries.LANConcurrency || r.Pinned {
		t.Errorf("report %+v: want custom.far, %d images, %d requests, more than 4 in flight, within the cycle", r, len(refs), len(refs)*6/5+1)
	}
	if n := link.Requests(); n != r.Requests {
		t.Errorf("the registry saw %d requests, the report says %d", n, r.Requests)
	}
	logMu.Lock()
	line := logged.String()
	logMu.Unlock()
	want := fmt.Sprintf("custom.far: 100 images in %v, 121 requests, at most %d in flight (limit %d of %d)",
		r.Duration.Round(time.Millisecond), r.PeakInFlight, r.Limit, r.Ceiling)
	if !strings.Contains(line, "cycle done") || !strings.Contains(line, want) {
		t.Errorf("the cycle's log line does not give %q:\n%s", want, line)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
