package watcher_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// newDaemon is watchtest's daemon over the config list refs, and
// byReference the store's records by reference: the names this package's
// tests (deadline_test.go among them) have always called.
func newDaemon(t *testing.T, st *store.Store, refs ...string) *watcher.Daemon {
	t.Helper()
	return watchtest.Daemon(t, st, watcher.StaticSource{Images: watchtest.Images(t, refs...)})
}

func byReference(t *testing.T, st *store.Store) map[string]store.Image {
	t.Helper()
	return watchtest.ByReference(t, st)
}

// TestDaemonCycles runs cycles against a real registry and a real bbolt
// file: results stored, an update recorded in history once, and first-seen
// times kept.
func TestDaemonCycles(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "a"))
	latest := reg.Push(t, "team/app:latest", regtest.Image(t, "a")).String()
	pinned := reg.Host + "/team/app:latest@" + latest

	st := storetest.Open(t)
	d := newDaemon(t, st, reg.Host+"/team/app:1.0.0", pinned)
	ctx := context.Background()

	rep := d.RunCycle(ctx, d.Sources)
	if rep.Images != 2 || rep.Errors != 0 || len(rep.Updates) != 0 {
		t.Fatalf("first cycle: %+v", rep)
	}
	first := byReference(t, st)
	if img := first[reg.Host+"/team/app:1.0.0"]; img.Update != "none" || img.LatestTag != "1.0.0" || img.Where[0].Watcher != "config" {
		t.Fatalf("1.0.0 after the first cycle: %+v", img)
	}

	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "b"))
	newLatest := reg.Push(t, "team/app:latest", regtest.Image(t, "c")).String()

	rep = d.RunCycle(ctx, d.Sources)
	if len(rep.Updates) != 2 {
		t.Fatalf("second cycle found %d updates, want 2: %+v", len(rep.Updates), rep.Updates)
	}
	now := byReference(t, st)
	if img := now[reg.Host+"/team/app:1.0.0"]; img.Update != "minor" || img.LatestTag != "1.1.0" {
		t.Errorf("1.0.0: update=%q latestTag=%q, want minor 1.1.0", img.Update, img.LatestTag)
	}
	if img := now[pinned]; img.Update != "digest" || img.LatestDigest != newLatest || img.Digest != latest {
		t.Errorf("latest: update=%q digest=%q latestDigest=%q", img.Update, img.Digest, img.LatestDigest)
	}
	for ref, img := range now {
		if !img.FirstSeen.Equal(first[ref].FirstSeen) || !img.LastChecked.After(first[ref].LastChecked) {
			t.Errorf("%s: firstSeen %v → %v, lastChecked %v → %v", ref, first[ref].FirstSeen, img.FirstSeen, first[ref].LastChecked, img.LastChecked)
		}
	}

	// The same updates found again are not news.
	rep = d.RunCycle(ctx, d.Sources)
	hist, err := st.History(100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Updates) != 0 || len(hist) != 2 {
		t.Fatalf("third cycle: %d new updates, history %d entries; want 0 and 2", len(rep.Updates), len(hist))
	}
	kinds := hist[0].Update + "," + hist[1].Update
	if kinds != "digest,minor" && kinds != "minor,digest" {
		t.Errorf("history kinds %s", kinds)
	}
}

// TestDaemonBrokenRegistry: an unreachable registry marks its image with an
// error and the others are still checked.
func TestDaemonBrokenRegistry(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "a"))
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()

	st := storetest.Open(t)
	d := newDaemon(t, st, reg.Host+"/team/app:1.0.0", deadHost+"/team/gone:1.0.0")
	rep := d.RunCycle(context.Background(), d.Sources)
	if rep.Images != 2 || rep.Errors != 1 {
		t.Fatalf("report %+v", rep)
	}
	got := byReference(t, st)
	if img := got[deadHost+"/team/gone:1.0.0"]; img.Error == "" || img.Update != "unknown" || img.Registry != "custom."+deadHost {
		t.Errorf("unreachable image: %+v", img)
	}
	if img := got[reg.Host+"/team/app:1.0.0"]; img.Error != "" || img.Update != "none" {
		t.Errorf("healthy image: %+v", img)
	}
}

// TestDaemonHonoursRetryAfter puts a proxy in front of a real registry that
// answers the first manifest requests with 429 and Retry-After: 1; the cycle
// waits and completes with every image checked.
func TestDaemonHonoursRetryAfter(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	for _, tag := range []string{"1.0.0", "1.0.1", "1.1.0"} {
		reg.Push(t, "team/app:"+tag, regtest.Image(t, tag))
	}
	target, _ := url.Parse(reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && refused.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	st := storetest.Open(t)
	d := newDaemon(t, st, host+"/team/app:1.0.0", host+"/team/app:1.0.1")
	start := time.Now()
	rep := d.RunCycle(context.Background(), d.Sources)
	elapsed := time.Since(start)
	if rep.Errors != 0 || rep.Images != 2 {
		t.Fatalf("cycle %+v; images: %+v", rep, byReference(t, st))
	}
	if refused.Load() < 3 {
		t.Fatalf("the proxy refused only %d requests; the test did not exercise 429", refused.Load())
	}
	in, err := d.Checker.Registries().Resolve(registries.Image{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Stats().Throttled(); got != 2 {
		t.Errorf("throttled %d times, want 2", got)
	}
	if elapsed < time.Second {
		t.Errorf("cycle took %v: Retry-After: 1 was not honoured", elapsed)
	}
}

// TestOneTokenForManyRepositories: a cycle over several repositories of a
// token registry asks the token server once, for all their pull scopes.
func TestOneTokenForManyRepositories(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "s3cret"}, Token: true})
	var refs []string
	for _, repo := range []string{"team/a", "team/b", "team/c", "other/d"} {
		d := reg.Push(t, repo+":1.0.0", regtest.Image(t, repo))
		reg.Tag(t, repo, d, "1.1.0")
		refs = append(refs, reg.Host+"/"+repo+":1.0.0")
	}
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{{Kind: "custom", Name: "lan", Source: registries.SourceFile,
		Values: registries.Values{"url": reg.URL, "login": "alice", "password": "s3cret"}}}, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var targets []watcher.Target
	for _, r := range refs {
		img, _ := registries.ParseImage(r)
		targets = append(targets, watcher.Target{Image: img})
	}
	before := reg.Issuer.Requests()
	results := (&watcher.Checker{Registries: func() *registries.Set { return set }}).Run(context.Background(), targets)
	for _, r := range results {
		if r.Error != "" || r.Update != watcher.UpdateMinor {
			t.Errorf("%s: update %q, error %q", r.Image, r.Update, r.Error)
		}
	}
	if n := reg.Issuer.Requests() - before; n != 1 {
		t.Errorf("%d token requests for 4 repositories, want 1", n)
	}
}
