package watcher_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
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
