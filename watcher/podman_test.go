package watcher_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/podmantest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestPodman runs against Debian's podman serving its API on a private
// socket, with containers pulled from a real registry and running for real
// (one in a pod, whose infra container must not be watched), one created
// from a multi-arch tag (Podman pairs every name with every digest), one
// switched off, one from a local image. Then the daemon: an update and a
// digest change after pushes, a removed container dropped, and the service
// unreachable while the config list goes on.
func TestPodman(t *testing.T) {
	pm := podmantest.Start(t)
	reg := regtest.Start(t, regtest.Options{})
	p := uniquePrefix()
	runnable := func(seed string) v1.Image { return podmantest.RunnableImage(t, regtest.Image(t, p+seed)) }

	appRef := reg.Ref("team/app:1.0.0")
	appDigest := reg.Push(t, "team/app:1.0.0", runnable("app")).String()
	multiRef := reg.Ref("team/multi:latest")
	amd64, arm64 := runnable("multi-amd64"), regtest.Image(t, p+"multi-arm64")
	idxDigest := reg.PushIndex(t, "team/multi:latest", index(t, amd64, arm64))
	amdDigest, err := amd64.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pm.Pull(t, appRef)
	pm.Pull(t, multiRef)
	// The same image by a single manifest, pulled after the list: Podman
	// then pairs single with the list's digest too.
	singleRef := reg.Ref("team/single:latest")
	reg.Push(t, "team/single:latest", amd64)
	pm.Pull(t, singleRef)
	pm.Podman(t, "tag", appRef, "localhost/"+p+"-local:dev")

	pm.Podman(t, "run", "-d", "--network", "none", "--name", p+"-web",
		"--label", watcher.LabelDisplayName+"=Web", "--label", watcher.LabelPolicy+"=minor", appRef)
	pm.Podman(t, "pod", "create", "--network", "none", "--name", p+"-pod")
	pm.Podman(t, "run", "-d", "--pod", p+"-pod", "--name", p+"-side", appRef)
	pm.Podman(t, "create", "--name", p+"-multi", multiRef)
	pm.Podman(t, "create", "--name", p+"-single", singleRef)
	pm.Podman(t, "create", "--name", p+"-off", "--label", watcher.LabelEnable+"=false", appRef)
	pm.Podman(t, "create", "--name", p+"-local", "localhost/"+p+"-local:dev")

	src := &watcher.DockerSource{Watcher: "pods", Engine: watcher.KindPodman, Host: pm.Host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	if src.Kind() != "podman" {
		t.Errorf("kind %q", src.Kind())
	}
	found, bad := listPrefixed(t, src, p)
	if len(bad) > 0 {
		t.Errorf("left out: %v", bad)
	}

	web := found[p+"-web"]
	if want := (store.Location{Watcher: "pods", Kind: "podman", Place: p + "-web", Container: p + "-web", ContainerID: web.Location.ContainerID}); web.Location != want || want.ContainerID == "" {
		t.Errorf("web location %+v, want %+v", web.Location, want)
	}
	if web.Target.Digest != appDigest || web.Target.Pinned || web.DisplayName != "Web" || web.Target.Options.Policy != watcher.UpdateMinor {
		t.Errorf("web: %+v", web)
	}
	side, ok := found[p+"-pod/"+p+"-side"]
	if !ok || side.Target.Digest != appDigest || side.Location.Container != p+"-side" {
		t.Errorf("the pod's container is not placed in its pod: %v", keys(found))
	}
	for _, name := range []string{"multi", "single"} {
		tg := found[p+"-"+name].Target
		all := append([]string{tg.Digest}, tg.SameImage...)
		if !slices.Contains(all, amdDigest.String()) || !slices.Contains(all, idxDigest.String()) || len(all) != 2 {
			t.Errorf("%s: digests in use %v, want the list's %s and the platform manifest's %s", name, all, idxDigest, amdDigest)
		}
	}
	for place := range found {
		if strings.Contains(place, "infra") || strings.Contains(place, "-off") || strings.Contains(place, "-local") {
			t.Errorf("%s is watched", place)
		}
	}
	if len(found) != 4 {
		t.Errorf("found %v, want web, the pod's side, multi and single", keys(found))
	}

	t.Run("running only", func(t *testing.T) {
		src := &watcher.DockerSource{Watcher: "pods", Engine: watcher.KindPodman, Host: pm.Host, WatchByDefault: true}
		defer src.Close()
		found, _ := listPrefixed(t, src, p)
		if got := strings.Join(keys(found), " "); got != p+"-pod/"+p+"-side "+p+"-web" {
			t.Errorf("running containers found: %s", got)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		proxy := dockertest.NewProxy(t, pm.Host)
		src := &watcher.DockerSource{Watcher: "pods2", Engine: watcher.KindPodman, Host: proxy.Host, WatchByDefault: true, WatchStopped: true}
		defer src.Close()
		checkUnreachable(t, reg, proxy, watchtest.OnlyHost{Source: src, Host: reg.Host}, "podman", "podman", appRef, multiRef, singleRef)
	})

	t.Run("daemon", func(t *testing.T) {
		st := storetest.Open(t)
		d := watchtest.Daemon(t, st, watchtest.OnlyHost{Source: src, Host: reg.Host})
		ctx := context.Background()
		rep := d.RunCycle(ctx, d.Sources)
		got := byReference(t, st)
		if rep.Images != 3 || rep.Errors != 0 || got[appRef].Update != "none" || got[multiRef].Update != "none" || got[singleRef].Update != "none" {
			t.Fatalf("first cycle: %+v\n%+v", rep, got)
		}
		if len(got[appRef].Where) != 2 {
			t.Errorf("app runs in %+v, want web and the pod's side", got[appRef].Where)
		}
		newer := reg.Push(t, "team/app:1.1.0", runnable("app-1.1")).String()
		amd64b := runnable("multi-amd64-b")
		reg.PushIndex(t, "team/multi:latest", index(t, amd64b, arm64))
		rebuilt, _ := amd64b.Digest()

		rep = d.RunCycle(ctx, d.Sources)
		got = byReference(t, st)
		if a := got[appRef]; a.Update != "minor" || a.LatestDigest != newer {
			t.Errorf("app: %+v", a)
		}
		if m := got[multiRef]; m.Update != "digest" {
			t.Errorf("multi (its amd64 image rebuilt, want %s): %+v", rebuilt, m)
		}
		if s := got[singleRef]; s.Update != "none" {
			t.Errorf("single (unchanged): %+v", s)
		}
		if len(rep.Updates) != 2 {
			t.Errorf("updates %+v", rep.Updates)
		}

		pm.Podman(t, "rm", "--force", p+"-multi")
		d.RunCycle(ctx, d.Sources)
		if _, ok := byReference(t, st)[multiRef]; ok {
			t.Error("the removed container's image is still watched")
		}
	})
}

// index is a manifest list of a linux/amd64 and a linux/arm64 image.
func index(t *testing.T, amd64, arm64 v1.Image) v1.ImageIndex {
	t.Helper()
	add := func(img v1.Image, arch string) mutate.IndexAddendum {
		return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.DockerManifestSchema2, Platform: &v1.Platform{OS: "linux", Architecture: arch}}}
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList), add(amd64, "amd64"), add(arm64, "arm64"))
}

// TestPodmanBadAnswers: a podman watcher whose engine answers the libpod
// listing with something that is not one. A Docker engine (real, on its
// private socket) has no libpod API; a hostile or broken engine on loopback
// answers the Docker-compatible listing but sends garbage, or more than a
// listing could ever be, for the libpod one. Each fails the listing with an
// error naming the watcher, its host and the call, and the huge answer is
// not read past its cap.
func TestPodmanBadAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list := func(t *testing.T, host string) error {
		t.Helper()
		src := &watcher.DockerSource{Watcher: "pods", Engine: watcher.KindPodman, Host: host, WatchByDefault: true}
		defer src.Close()
		found, err := src.List(ctx)
		var bad watcher.ContainerErrors
		if found != nil || err == nil || errors.As(err, &bad) {
			t.Fatalf("List = %v, %v; want the listing to fail", found, err)
		}
		if want := "watcher pods (" + host + "): listing pods' containers: libpod /containers/json"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		return err
	}

	t.Run("a Docker engine", func(t *testing.T) {
		err := list(t, dockertest.Host(t))
		if !strings.Contains(err.Error(), "404 Not Found: is this Podman (4.0 or newer)? A Docker engine is kind docker") {
			t.Errorf("error %q does not say the engine may not be Podman", err)
		}
	})

	// engine answers the Docker-compatible API as an empty Podman would,
	// and the libpod listing with libpod.
	engine := func(t *testing.T, libpod http.HandlerFunc) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/_ping"):
				w.Header().Set("Api-Version", "1.41")
				w.Write([]byte("OK"))
			case strings.Contains(r.URL.Path, "/libpod/containers/json"):
				libpod(w, r)
			case strings.HasSuffix(r.URL.Path, "/containers/json"):
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte("[]"))
			default:
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
	}

	t.Run("not JSON", func(t *testing.T) {
		host := engine(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("<html>502 Bad Gateway</html>"))
		})
		if err := list(t, host); !strings.Contains(err.Error(), "invalid character '<'") {
			t.Errorf("error %q does not say what was wrong with the answer", err)
		}
	})

	t.Run("huge", func(t *testing.T) {
		var sent atomic.Int64
		host := engine(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("["))
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range 1 << 10 { // 1 GiB, unless the reader hangs up
				n, err := w.Write(chunk)
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
		err := list(t, host)
		if !strings.Contains(err.Error(), "answer larger than 64 MB") {
			t.Errorf("error %q does not say the answer was too large", err)
		}
		if n := sent.Load(); n > 256<<20 {
			t.Errorf("the engine sent %d MB before the watcher hung up", n>>20)
		}
	})
}
