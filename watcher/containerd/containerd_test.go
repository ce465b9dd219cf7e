package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/containerdtest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/watcher/containerd"
)

func byPlace(found []watcher.Found) map[string][]watcher.Found {
	m := map[string][]watcher.Found{}
	for _, f := range found {
		m[f.Location.Place] = append(m[f.Location.Place], f)
	}
	return m
}

// TestSourceAgainstContainerd lists a real containerd's containers, made
// with ctr from images pulled from a real registry (one a single manifest,
// one a multi-platform index), then runs the daemon over them: digests in
// use, options from labels, places from nerdctl's and the CRI's labels, an
// update and a digest change after pushes, and a removed container dropped.
func TestSourceAgainstContainerd(t *testing.T) {
	ctrd := containerdtest.Start(t)
	reg := regtest.Start(t, regtest.Options{})
	ns := fmt.Sprintf("tw-%d", time.Now().UnixNano()%1e9)
	k8s := ns + "-k8s.io"

	appV1 := reg.Push(t, "home/app:1.0.0", regtest.Image(t, ns+"app-1")).String()
	reg.Push(t, "home/app:1.1.0-beta", regtest.Image(t, ns+"app-beta"))
	multiV1 := reg.PushIndex(t, "home/multi:latest", regtest.Index(t, ns+"multi-1",
		regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64"))).String()
	app, multi := reg.Ref("home/app:1.0.0"), reg.Ref("home/multi:latest")
	ctrd.Pull(t, ns, app)
	ctrd.Pull(t, ns, multi)
	ctrd.Pull(t, k8s, multi)

	ctrd.Create(t, ns, app, "web-1a2b", map[string]string{"nerdctl/name": "web", watcher.LabelDisplayName: "Web", watcher.LabelExclude: "beta"})
	ctrd.Create(t, ns, app, "web2-3c4d", map[string]string{"nerdctl/name": "web2"})
	ctrd.Create(t, ns, multi, "cache", nil)
	ctrd.Create(t, ns, app, "off", map[string]string{watcher.LabelEnable: "false"})
	ctrd.Create(t, ns, app, "typo", map[string]string{"tagwatch.tag.polcy": "minor"})
	// What k3s's CRI makes of a pod: a sandbox (pause) and its container.
	ctrd.Create(t, k8s, multi, "0f1e2d", map[string]string{"io.cri-containerd.kind": "sandbox"})
	ctrd.Create(t, k8s, multi, "9a8b7c", map[string]string{"io.cri-containerd.kind": "container",
		"io.kubernetes.pod.namespace": "media", "io.kubernetes.pod.name": "cache-5d8f9c-abcde", "io.kubernetes.container.name": "cache"})

	src := &containerd.Source{Watcher: "node", Address: "unix://" + ctrd.Address, Namespaces: []string{ns, k8s},
		WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	ctx := context.Background()
	found, err := src.List(ctx)
	var bad watcher.ContainerErrors
	if !errors.As(err, &bad) || len(bad) != 1 || bad[0].Container != ns+"/typo" || !strings.Contains(err.Error(), "unknown label tagwatch.tag.polcy") {
		t.Fatalf("List error = %v; want the typo container named", err)
	}
	got := byPlace(found)
	want := map[string]string{ // place → digest in use
		ns + "/web":                             appV1,
		ns + "/web2":                            appV1,
		ns + "/cache":                           multiV1, // the index, as pulled
		k8s + "/media/cache-5d8f9c-abcde/cache": multiV1,
	}
	if len(found) != len(want) {
		t.Errorf("found %d, want %d (no sandbox, no turned-off container):", len(found), len(want))
		for _, f := range found {
			t.Logf("  %s %s %s", f.Location.Place, f.Target.Image, f.Target.Digest)
		}
	}
	for place, digest := range want {
		fs := got[place]
		if len(fs) != 1 || fs[0].Target.Digest != digest || fs[0].Location.Kind != "containerd" || fs[0].Location.Watcher != "node" {
			t.Errorf("%s: %+v, want digest %s", place, fs, digest)
		}
	}
	if w := got[ns+"/web"]; len(w) == 1 && (w[0].DisplayName != "Web" || w[0].Target.Options.Exclude == nil) {
		t.Errorf("web's options from its labels: %+v", w[0])
	}

	// Without watchstopped, only containers with a running task: none here.
	stopped := &containerd.Source{Watcher: "node", Address: ctrd.Address, Namespaces: []string{ns}, WatchByDefault: true}
	t.Cleanup(func() { stopped.Close() })
	if found, err := stopped.List(ctx); err != nil || len(found) != 0 {
		t.Errorf("without watchstopped: %v, %+v", err, found)
	}

	// All namespaces when none are listed.
	all := &containerd.Source{Watcher: "node", Address: ctrd.Address, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { all.Close() })
	found, _ = all.List(ctx)
	if got := byPlace(found); len(got[ns+"/web"]) != 1 || len(got[k8s+"/media/cache-5d8f9c-abcde/cache"]) != 1 {
		t.Errorf("all namespaces: %+v", found)
	}

	// The daemon over it, into a real bbolt file.
	st := storetest.Open(t)
	d := watchtest.Daemon(t, st, src)
	rep := d.RunCycle(ctx, d.Sources)
	if rep.Errors != 0 || rep.Images != 2 {
		t.Fatalf("first cycle: %+v", rep)
	}
	recs := watchtest.ByReference(t, st)
	if r := recs[app]; r.Update != "none" || r.Digest != appV1 || len(r.Where) != 2 || r.DisplayName != "Web" {
		t.Errorf("app after the first cycle (beta excluded): %+v", r)
	}
	if r := recs[multi]; r.Update != "none" || r.Digest != multiV1 || len(r.Where) != 2 {
		t.Errorf("multi after the first cycle: %+v", r)
	}

	appV2 := reg.Push(t, "home/app:1.1.0", regtest.Image(t, ns+"app-2")).String()
	multiV2 := reg.PushIndex(t, "home/multi:latest", regtest.Index(t, ns+"multi-2",
		regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64"))).String()
	d.RunCycle(ctx, d.Sources)
	recs = watchtest.ByReference(t, st)
	if r := recs[app]; r.Update != "minor" || r.LatestTag != "1.1.0" || r.LatestDigest != appV2 {
		t.Errorf("app after a release: %+v", r)
	}
	if r := recs[multi]; r.Update != "digest" || r.LatestDigest != multiV2 || r.Digest != multiV1 {
		t.Errorf("multi after a rebuild: %+v", r)
	}

	// The k8s.io container goes (its pod was deleted): its location goes;
	// the image stays for the other container that runs it.
	ctrd.Remove(t, k8s, "9a8b7c")
	d.RunCycle(ctx, d.Sources)
	if r := watchtest.ByReference(t, st)[multi]; len(r.Where) != 1 || r.Where[0].Place != ns+"/cache" {
		t.Errorf("multi after a container was removed: %+v", r.Where)
	}
	ctrd.Remove(t, ns, "cache")
	d.RunCycle(ctx, d.Sources)
	if r, ok := watchtest.ByReference(t, st)[multi]; ok {
		t.Errorf("multi is still watched with no container running it: %+v", r)
	}
}

// TestUnreachable: a socket nothing serves is reported within the deadline,
// naming the watcher and the socket, while another source goes on and the
// unreachable one's last known images stay.
func TestUnreachable(t *testing.T) {
	sock := containerdtest.Unreachable(t)
	src := &containerd.Source{Watcher: "node", Address: sock, Timeout: 5 * time.Second}
	t.Cleanup(func() { src.Close() })
	start := time.Now()
	_, err := src.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "watcher node ("+sock+")") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error = %v; want the watcher, its socket and why", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("List took %s with a 5s timeout", took)
	}

	if _, err := (&containerd.Source{Watcher: "node", Address: "tcp://node.lan:1234"}).List(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "unix socket") {
		t.Errorf("a tcp address: %v", err)
	}

	watchtest.CheckUnreachable(t, src, store.Location{Watcher: "node", Kind: "containerd", Place: "default/kept"}, "connection refused")
}
