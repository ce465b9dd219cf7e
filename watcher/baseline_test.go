package watcher_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// listedDaemon is a daemon over the config list imgs on a real store.
func listedDaemon(t *testing.T, st watcher.Store, imgs ...watcher.StaticImage) *watcher.Daemon {
	t.Helper()
	set, err := registries.NewSet(registries.DefaultCatalog(), nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: imgs}}},
		Checker:  &watcher.Checker{Registries: func() *registries.Set { return set }},
		Store:    st,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Platform: regtest.Platform("linux/amd64"),
	}
}

func static(t *testing.T, ref string, opt watcher.TagOptions) watcher.StaticImage {
	t.Helper()
	img, err := registries.ParseImage(ref)
	if err != nil {
		t.Fatal(err)
	}
	return watcher.StaticImage{Image: img, Options: opt}
}

// routeCounter counts the notifications the daemon routes, per image key.
type routeCounter struct {
	mu   sync.Mutex
	sent map[string][]store.HistoryEntry
}

func (c *routeCounter) route(saved []store.HistoryEntry) []store.OutboxMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent == nil {
		c.sent = map[string][]store.HistoryEntry{}
	}
	for _, e := range saved {
		c.sent[e.Reference] = append(c.sent[e.Reference], e)
	}
	return []store.OutboxMessage{{Notifier: "hook", Updates: saved}}
}

func (c *routeCounter) count(ref string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent[ref])
}

// TestListedDigestTracked: images listed in the config without @sha256:
// keep the first digest seen behind their tag as a baseline. A new image
// pushed under a watched tag is a digest update, recorded and announced
// once, reported cycle after cycle and after a restart (the store reopened
// by a new daemon) until it is accepted; then the next push is an update
// again. Fixed tags, digest: false and a newer tag leave the baseline as
// the rules say; a pinned reference is not tracked.
func TestListedDigestTracked(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	a1 := reg.Push(t, "team/app:latest", regtest.Image(t, "app1")).String()
	p1 := reg.Push(t, "team/db:16", regtest.Image(t, "db1")).String()
	reg.Tag(t, "team/db", v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(p1, "sha256:")}, "16.4") // 16 is floating
	f1 := reg.Push(t, "team/fixed:1.2.3", regtest.Image(t, "fixed1")).String()
	reg.Push(t, "team/off:latest", regtest.Image(t, "off1"))
	pin := reg.Push(t, "team/pinned:latest", regtest.Image(t, "pin1")).String()
	u1 := reg.Push(t, "team/up:1.0.0", regtest.Image(t, "up1")).String()
	reg.Push(t, "team/up:1.1.0", regtest.Image(t, "up2"))
	// 16 when 16.4 and 17 exist: a major update, unless the policy stays on 16.
	sixteen := map[string]string{}
	for _, repo := range []string{"pg", "pgmin"} {
		d := reg.Push(t, "team/"+repo+":16", regtest.Image(t, repo+"16"))
		reg.Tag(t, "team/"+repo, d, "16.4")
		sixteen[repo] = d.String()
	}
	pg17 := reg.Push(t, "team/pg:17", regtest.Image(t, "pg17")).String()
	reg.Push(t, "team/pgmin:17", regtest.Image(t, "pgmin17"))

	ref := func(s string) string { return reg.Host + "/team/" + s }
	off := false
	imgs := []watcher.StaticImage{
		static(t, ref("app:latest"), watcher.TagOptions{}),
		static(t, ref("db:16"), watcher.TagOptions{}),
		static(t, ref("fixed:1.2.3"), watcher.TagOptions{}),
		static(t, ref("off:latest"), watcher.TagOptions{Digest: &off}),
		static(t, ref("pinned:latest@"+pin), watcher.TagOptions{}),
		static(t, ref("up:1.0.0"), watcher.TagOptions{}),
		static(t, ref("pg:16"), watcher.TagOptions{}),
		static(t, ref("pgmin:16"), watcher.TagOptions{Policy: watcher.UpdateMinor}),
	}
	st := storetest.Open(t)
	path := st.Path()
	routes := &routeCounter{}
	d := listedDaemon(t, st, imgs...)
	d.Route = routes.route
	ctx := context.Background()

	cycle := func(d *watcher.Daemon, st *store.Store) map[string]store.Image {
		t.Helper()
		if rep := d.RunCycle(ctx, d.Sources); rep.Errors != 0 {
			t.Fatalf("cycle: %+v\n%+v", rep, byReference(t, st))
		}
		return byReference(t, st)
	}
	type want struct {
		update, digest, latest, baseline string
	}
	expect := func(when string, got map[string]store.Image, wants map[string]want) {
		t.Helper()
		for r, w := range wants {
			img := got[r]
			if img.Update != w.update || img.Digest != w.digest || img.LatestDigest != w.latest || img.Baseline != w.baseline {
				t.Errorf("%s: %s: update=%q digest=%q latestDigest=%q baseline=%q\nwant update=%q digest=%q latestDigest=%q baseline=%q",
					when, r, img.Update, img.Digest, img.LatestDigest, img.Baseline, w.update, w.digest, w.latest, w.baseline)
			}
		}
	}

	got := cycle(d, st)
	o1 := got[ref("off:latest")].LatestDigest
	up2 := got[ref("up:1.0.0")].LatestDigest
	expect("first cycle", got, map[string]want{
		ref("app:latest"):           {"none", a1, a1, a1},
		ref("db:16"):                {"none", p1, p1, p1},
		ref("fixed:1.2.3"):          {"none", f1, f1, f1},
		ref("off:latest"):           {"none", o1, o1, o1},
		ref("pinned:latest@" + pin): {"none", pin, pin, ""},
		ref("up:1.0.0"):             {"minor", u1, up2, u1},
		ref("pg:16"):                {"major", sixteen["pg"], pg17, sixteen["pg"]},
		ref("pgmin:16"):             {"none", sixteen["pgmin"], sixteen["pgmin"], sixteen["pgmin"]},
	})

	// New images behind every tag.
	a2 := reg.Push(t, "team/app:latest", regtest.Image(t, "app2")).String()
	p2 := reg.Push(t, "team/db:16", regtest.Image(t, "db2")).String()
	f2 := reg.Push(t, "team/fixed:1.2.3", regtest.Image(t, "fixed2")).String()
	o2 := reg.Push(t, "team/off:latest", regtest.Image(t, "off2")).String()
	pin2 := reg.Push(t, "team/pinned:latest", regtest.Image(t, "pin2")).String()
	reg.Push(t, "team/up:1.0.0", regtest.Image(t, "up1-rebuilt"))
	reg.Push(t, "team/pg:16", regtest.Image(t, "pg16-rebuilt"))
	pgmin2 := reg.Push(t, "team/pgmin:16", regtest.Image(t, "pgmin16-rebuilt")).String()
	pending := map[string]want{
		ref("app:latest"):           {"digest", a1, a2, a1},
		ref("db:16"):                {"digest", p1, p2, p1},
		ref("fixed:1.2.3"):          {"none", f2, f2, f2}, // a fixed tag's digest is not watched: the baseline follows
		ref("off:latest"):           {"none", o2, o2, o2}, // digest: false, the same
		ref("pinned:latest@" + pin): {"digest", pin, pin2, ""},
		ref("up:1.0.0"):             {"minor", u1, up2, u1}, // a newer tag wins; the baseline waits
		ref("pg:16"):                {"major", sixteen["pg"], pg17, sixteen["pg"]},
		ref("pgmin:16"):             {"digest", sixteen["pgmin"], pgmin2, sixteen["pgmin"]}, // policy: minor stays on 16 and sees its rebuilds
	}
	expect("after the pushes", cycle(d, st), pending)
	expect("a cycle later", cycle(d, st), pending)

	// A restart: the same file, a new daemon.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d = listedDaemon(t, st, imgs...)
	d.Route = routes.route
	expect("after a restart", cycle(d, st), pending)

	hist, err := st.History(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 6 { // up's minor and pg's major, then four digest updates
		t.Errorf("history has %d entries, want 6: %+v", len(hist), hist)
	}
	for _, r := range []string{ref("app:latest"), ref("db:16"), ref("pinned:latest@" + pin), ref("up:1.0.0"), ref("pg:16"), ref("pgmin:16")} {
		if n := routes.count(r); n != 1 {
			t.Errorf("%s was announced %d times, want once", r, n)
		}
	}
	for _, e := range hist {
		if e.Reference == ref("app:latest") && (e.Update != "digest" || e.FromDigest != a1 || e.ToDigest != a2 || e.FromTag != "latest" || e.ToTag != "latest") {
			t.Errorf("app's history entry: %+v", e)
		}
	}

	// Accepted: app's new image is current; db still waits.
	key := byReference(t, st)[ref("app:latest")].Key
	if acc, err := st.AcceptDigests([]string{key}, time.Now().UTC()); err != nil || len(acc) != 1 {
		t.Fatalf("accept: %+v, %v", acc, err)
	}
	pending[ref("app:latest")] = want{"none", a2, a2, a2}
	expect("after the accept", cycle(d, st), pending)

	// The next image behind latest is news again, from the accepted one.
	a3 := reg.Push(t, "team/app:latest", regtest.Image(t, "app3")).String()
	pending[ref("app:latest")] = want{"digest", a2, a3, a2}
	expect("after another push", cycle(d, st), pending)
	if n := routes.count(ref("app:latest")); n != 2 {
		t.Errorf("app was announced %d times, want twice (one per new image)", n)
	}
}

// TestListedDigestPerPlatform: the baseline is compared for the target's
// platform. An index rebuilt for another platform only is not an update
// (and the baseline moves to it); one whose manifest for this platform
// changed is.
func TestListedDigestPerPlatform(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	amd64, arm64 := regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64")
	both := []v1.Platform{amd64, arm64}
	i1 := reg.PushIndex(t, "team/multi:latest", regtest.IndexOf(t, both, []string{"a1", "r1"})).String()
	onAmd := static(t, reg.Host+"/team/multi:latest", watcher.TagOptions{})
	onArm := onAmd
	onArm.Platform = "linux/arm64"
	st := storetest.Open(t)
	d := listedDaemon(t, st, onAmd, onArm)

	cycle := func() (amd, arm store.Image) {
		t.Helper()
		if rep := d.RunCycle(context.Background(), d.Sources); rep.Errors != 0 || rep.Images != 2 {
			t.Fatalf("cycle: %+v", rep)
		}
		imgs, err := st.Images()
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			switch img.Platform {
			case "linux/amd64":
				amd = img
			case "linux/arm64":
				arm = img
			}
		}
		return amd, arm
	}
	amd, arm := cycle()
	if amd.Baseline != i1 || arm.Baseline != i1 || amd.Update != "none" || arm.Update != "none" {
		t.Fatalf("first cycle: amd64 %+v\narm64 %+v", amd, arm)
	}

	// Only arm64 rebuilt.
	i2 := reg.PushIndex(t, "team/multi:latest", regtest.IndexOf(t, both, []string{"a1", "r2"})).String()
	amd, arm = cycle()
	if amd.Update != "none" || amd.Baseline != i2 || amd.Digest != i2 {
		t.Errorf("amd64, unchanged in a rebuilt index: update=%q baseline=%q digest=%q; want none, the baseline moved to %s", amd.Update, amd.Baseline, amd.Digest, i2)
	}
	if arm.Update != "digest" || arm.Baseline != i1 || arm.LatestDigest != i2 {
		t.Errorf("arm64, rebuilt: update=%q baseline=%q latestDigest=%q; want digest from %s to %s", arm.Update, arm.Baseline, arm.LatestDigest, i1, i2)
	}

	// Now amd64.
	i3 := reg.PushIndex(t, "team/multi:latest", regtest.IndexOf(t, both, []string{"a2", "r2"})).String()
	amd, arm = cycle()
	if amd.Update != "digest" || amd.Baseline != i2 || amd.Digest != i2 || amd.LatestDigest != i3 {
		t.Errorf("amd64, rebuilt: update=%q baseline=%q latestDigest=%q; want digest from %s to %s", amd.Update, amd.Baseline, amd.LatestDigest, i2, i3)
	}
	if arm.Update != "digest" || arm.Baseline != i1 || arm.LatestDigest != i3 {
		t.Errorf("arm64 still waits: update=%q baseline=%q latestDigest=%q", arm.Update, arm.Baseline, arm.LatestDigest)
	}
}

// TestAcceptDuringCycle: an accept that lands while a cycle is reading the
// image (its check compares with the old baseline) is not undone when the
// cycle stores its result.
func TestAcceptDuringCycle(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "team/app:latest", regtest.Image(t, "one"))
	target, _ := url.Parse(reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var gate chan struct{} // while set, manifest requests wait for it to close
	held := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		g := gate
		mu.Unlock()
		if g != nil && strings.Contains(r.URL.Path, "/manifests/") {
			held <- struct{}{}
			<-g
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	st := storetest.Open(t)
	d := listedDaemon(t, st, static(t, host+"/team/app:latest", watcher.TagOptions{}))
	ctx := context.Background()
	d.RunCycle(ctx, d.Sources)
	two := reg.Push(t, "team/app:latest", regtest.Image(t, "two")).String()
	d.RunCycle(ctx, d.Sources)
	img := byReference(t, st)[host+"/team/app:latest"]
	if img.Update != "digest" || img.LatestDigest != two {
		t.Fatalf("before the accept: %+v", img)
	}

	g := make(chan struct{})
	mu.Lock()
	gate = g
	mu.Unlock()
	done := make(chan watcher.CycleReport)
	go func() { done <- d.RunCycle(ctx, d.Sources) }()
	select {
	case <-held: // the check has read the old baseline and waits for the registry
	case <-time.After(30 * time.Second):
		t.Fatal("the cycle never asked for the manifest")
	}
	at := time.Now().UTC()
	if acc, err := st.AcceptDigests([]string{img.Key}, at); err != nil || len(acc) != 1 {
		t.Fatalf("accept: %+v, %v", acc, err)
	}
	mu.Lock()
	gate = nil
	mu.Unlock()
	close(g)
	if rep := <-done; rep.Errors != 0 {
		t.Fatalf("cycle: %+v", rep)
	}
	img = byReference(t, st)[host+"/team/app:latest"]
	if img.Update != "none" || img.Baseline != two || !img.AcceptedAt.Equal(at) {
		t.Errorf("after a cycle that ran across the accept: update=%q baseline=%q acceptedAt=%v; want none, %s, %v", img.Update, img.Baseline, img.AcceptedAt, two, at)
	}
	d.RunCycle(ctx, d.Sources)
	if img = byReference(t, st)[host+"/team/app:latest"]; img.Update != "none" || img.Baseline != two {
		t.Errorf("the cycle after: update=%q baseline=%q", img.Update, img.Baseline)
	}
}

// TestCheckOnce: one check of a few images against a store (tagwatch
// check --state) compares with their baselines, records new updates once,
// and leaves the store's other images alone.
func TestCheckOnce(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	first := reg.Push(t, "team/app:latest", regtest.Image(t, "one")).String()
	st := storetest.Open(t)
	other := store.Image{Key: "other", Reference: "example.com/other:1", Update: "none", Where: []store.Location{{Watcher: "local"}}}
	if err := st.PutImages([]store.Image{other}); err != nil {
		t.Fatal(err)
	}
	d := listedDaemon(t, st)
	img, err := registries.ParseImage(reg.Host + "/team/app:latest")
	if err != nil {
		t.Fatal(err)
	}
	target := watcher.Target{Image: img, Track: true}
	ctx := context.Background()

	rs, added, err := d.CheckOnce(ctx, []watcher.Target{target, target})
	if err != nil || len(rs) != 2 || len(added) != 0 || rs[0].Baseline != first || rs[1] != rs[0] || rs[0].Update != watcher.UpdateNone {
		t.Fatalf("first run: %+v, %+v, %v", rs, added, err)
	}
	second := reg.Push(t, "team/app:latest", regtest.Image(t, "two")).String()
	for run := range 2 {
		rs, added, err = d.CheckOnce(ctx, []watcher.Target{target})
		if err != nil || rs[0].Update != watcher.UpdateDigest || rs[0].Digest != first || rs[0].LatestDigest != second || rs[0].Baseline != first {
			t.Fatalf("run %d after the push: %+v, %v", run+2, rs, err)
		}
		if want := 1 - run; len(added) != want {
			t.Errorf("run %d added %d history entries, want %d", run+2, len(added), want)
		}
	}
	imgs, err := st.Images()
	if err != nil || len(imgs) != 2 || imgs[1].Key != "other" {
		t.Errorf("the store holds %+v, %v; want app's record and other's", imgs, err)
	}
	if imgs[0].Key != watcher.RecordKey(watcher.Target{Image: img, Platform: d.Platform}) {
		t.Errorf("app's record is under %q", imgs[0].Key)
	}
}

// TestBaselineFromOlderRecord: a record stored before baselines existed
// (the digest its last check saw, no baseline) gives the baseline, so an
// image pushed between that check and the first one after an upgrade is
// still reported.
func TestBaselineFromOlderRecord(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	old := reg.Push(t, "team/app:latest", regtest.Image(t, "old")).String()
	si := static(t, reg.Host+"/team/app:latest", watcher.TagOptions{})
	st := storetest.Open(t)
	d := listedDaemon(t, st, si)
	rec := store.Image{
		Key: watcher.RecordKey(watcher.Target{Image: si.Image, Platform: d.Platform}), Image: si.Image.Given, Reference: si.Image.String(),
		Registry: "custom." + reg.Host, Platform: "linux/amd64", Where: []store.Location{{Watcher: "config", Kind: "config"}},
		Tag: "latest", Digest: old, LatestTag: "latest", LatestDigest: old, Update: "none", LastChecked: time.Now().UTC(),
	}
	if err := st.PutImages([]store.Image{rec}); err != nil {
		t.Fatal(err)
	}
	pushed := reg.Push(t, "team/app:latest", regtest.Image(t, "new")).String()
	if rep := d.RunCycle(context.Background(), d.Sources); rep.Errors != 0 || len(rep.Updates) != 1 {
		t.Fatalf("cycle: %+v", rep)
	}
	img := byReference(t, st)[si.Image.String()]
	if img.Key != rec.Key || img.Update != "digest" || img.Baseline != old || img.Digest != old || img.LatestDigest != pushed {
		t.Errorf("after the upgrade's first cycle: %+v; want digest from %s to %s", img, old, pushed)
	}
}
