package watcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestUnreachableDockerEngine: a real engine behind a proxy that goes
// down, next to the config list. See checkUnreachable.
func TestUnreachableDockerEngine(t *testing.T) {
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{})
	prefix := uniquePrefix()
	web := reg.Ref("team/web:1.0.0")
	reg.Push(t, "team/web:1.0.0", regtest.Image(t, prefix+"web"))
	dockertest.Pull(t, host, web)
	dockertest.Create(t, host, prefix+"-web", web, nil)

	proxy := dockertest.NewProxy(t, host)
	src := &watcher.DockerSource{Watcher: "nas", Host: proxy.Host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	checkUnreachable(t, reg, proxy, watchtest.OnlyHost{Source: src, Host: reg.Host}, "docker", "docker", web)
}

// checkUnreachable runs a daemon over src (whose engine is behind proxy)
// and the config list (one image of reg), into a real bbolt file:
//
//  1. both listed: src's images (wantRefs) found, not stale;
//  2. the proxy drops every connection, and a newer tag of the config
//     list's image is pushed: the cycle goes on, the config image's update
//     is found, src's images are kept with a stale mark since this failure,
//     and the watcher's state (in the daemon and in the store) says why;
//  3. still down: the stale mark keeps its first time;
//  4. back up: the marks and the error are gone.
//
// The watcher is of kind watcherKind, its locations of kind locKind.
func checkUnreachable(t *testing.T, reg *regtest.Registry, proxy *dockertest.Proxy, src watcher.Source, watcherKind, locKind string, wantRefs ...string) {
	t.Helper()
	reg.Push(t, "team/listed:1.0.0", regtest.Image(t, uniquePrefix()+"listed"))
	listed, err := registries.ParseImage(reg.Ref("team/listed:1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t)
	d := watchtest.Daemon(t, st, src, watcher.StaticSource{Images: []watcher.StaticImage{{Image: listed}}})
	ctx := context.Background()
	name := src.Name()

	rep := d.RunCycle(ctx, d.Sources)
	if rep.Images != len(wantRefs)+1 {
		t.Fatalf("first cycle: %+v", rep)
	}
	first := byReference(t, st)
	for _, ref := range wantRefs {
		img, ok := first[ref]
		if !ok || len(img.Where) == 0 || img.Where[0].Kind != locKind || !img.Where[0].StaleSince.IsZero() {
			t.Fatalf("%s after the first cycle: %v %+v", ref, ok, img)
		}
	}
	up := watcherState(t, d, name)
	if up.Error != "" || up.Kind != watcherKind || up.LastListed.IsZero() || up.Images < len(wantRefs) {
		t.Errorf("state after a listing that worked: %+v", up)
	}

	proxy.SetDown(true)
	reg.Push(t, "team/listed:1.1.0", regtest.Image(t, uniquePrefix()+"listed-2"))
	before := time.Now().UTC()
	rep = d.RunCycle(ctx, d.Sources)
	if rep.Sources[name] == "" || rep.Sources[watcher.StaticWatcher] != "" {
		t.Fatalf("cycle with %s down: %+v", name, rep.Sources)
	}
	got := byReference(t, st)
	if l := got[listed.String()]; l.Update != "minor" || l.LatestTag != "1.1.0" {
		t.Errorf("the config list's image was not checked while %s was down: %+v", name, l)
	}
	down := watcherState(t, d, name)
	if down.Error == "" || down.FailingSince.Before(before) || !down.LastListed.Equal(up.LastListed) || down.Images != up.Images {
		t.Errorf("state while down: %+v (before %v)", down, before)
	}
	for _, ref := range wantRefs {
		img, ok := got[ref]
		if !ok {
			t.Errorf("%s vanished while %s was down", ref, name)
			continue
		}
		for _, l := range img.Where {
			if !l.StaleSince.Equal(down.FailingSince) {
				t.Errorf("%s: location %+v not stale since %v", ref, l, down.FailingSince)
			}
		}
		if !img.LastChecked.Equal(first[ref].LastChecked) {
			t.Errorf("%s was checked again from a stale listing", ref)
		}
	}
	stored, err := st.Watchers()
	if err != nil {
		t.Fatal(err)
	}
	if !hasState(stored, down) {
		t.Errorf("stored states %+v lack %+v", stored, down)
	}

	rep = d.RunCycle(ctx, d.Sources)
	again := watcherState(t, d, name)
	if rep.Sources[name] == "" || !again.FailingSince.Equal(down.FailingSince) || !again.LastTried.After(down.LastTried) {
		t.Errorf("still down: %+v, was %+v", again, down)
	}
	for _, ref := range wantRefs {
		if img := byReference(t, st)[ref]; len(img.Where) == 0 || !img.Where[0].StaleSince.Equal(down.FailingSince) {
			t.Errorf("%s: stale mark moved: %+v", ref, img.Where)
		}
	}

	proxy.SetDown(false)
	rep = d.RunCycle(ctx, d.Sources)
	back := watcherState(t, d, name)
	if back.Error != "" || !back.FailingSince.IsZero() || !back.LastListed.After(up.LastListed) {
		t.Errorf("back up: %+v, %+v", rep.Sources, back)
	}
	for _, ref := range wantRefs {
		img := byReference(t, st)[ref]
		for _, l := range img.Where {
			if !l.StaleSince.IsZero() {
				t.Errorf("%s: still stale after a listing that worked: %+v", ref, l)
			}
		}
	}
}

func watcherState(t *testing.T, d *watcher.Daemon, name string) store.WatcherState {
	t.Helper()
	for _, w := range d.Status().Watchers {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no watcher %s in %+v", name, d.Status().Watchers)
	return store.WatcherState{}
}

func hasState(states []store.WatcherState, want store.WatcherState) bool {
	for _, s := range states {
		if s.Name == want.Name && s.Error == want.Error && s.FailingSince.Equal(want.FailingSince) && s.LastListed.Equal(want.LastListed) {
			return true
		}
	}
	return false
}

func uniquePrefix() string {
	return "tw" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
}
