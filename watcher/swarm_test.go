package watcher_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestSwarmServices runs against a real Swarm manager (a dockerd of its
// own, `swarm init` on loopback) whose services were created from a real
// registry as `docker service create` does (the tag's digest pinned in the
// spec): a stack's service, one scaled to 0, one switched off and one with
// a bad label. Then the daemon: cycles into a real bbolt file, a newer tag
// and a rebuilt tag pushed, a service removed.
func TestSwarmServices(t *testing.T) {
	host := dockertest.Swarm(t)
	reg := regtest.Start(t, regtest.Options{})
	b := make([]byte, 4)
	rand.Read(b)
	p := "tw" + hex.EncodeToString(b)
	img := func(seed string) v1.Image { return regtest.Image(t, p+"-"+seed) }

	webDigest := reg.Push(t, "team/jellyfin:10.9.1", img("jf")).String()
	zeroDigest := reg.Push(t, "team/zero:latest", img("zero")).String()
	reg.Push(t, "team/off:1", img("off"))

	web := dockertest.CreateService(t, host, p+"_jellyfin", reg.Ref("team/jellyfin:10.9.1"), 1, map[string]string{
		"com.docker.stack.namespace": p,
		watcher.LabelDisplayName:     "Jellyfin",
		watcher.LabelInclude:         `^\d+\.\d+\.\d+$`,
		watcher.LabelPolicy:          "minor",
	})
	dockertest.CreateService(t, host, p+"-zero", reg.Ref("team/zero:latest"), 0, nil)
	dockertest.CreateService(t, host, p+"-off", reg.Ref("team/off:1"), 0, map[string]string{watcher.LabelEnable: "false"})
	dockertest.CreateService(t, host, p+"-bad", reg.Ref("team/off:1"), 0, map[string]string{watcher.LabelPolicy: "sideways"})
	taskID := waitTaskContainer(t, host, web)

	src := &watcher.DockerSource{Watcher: "cluster", Host: host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	found, bad := listPrefixed(t, src, p)

	jf, ok := found[p+"/jellyfin"]
	if !ok {
		t.Fatalf("the stack's service is not found as %s/jellyfin: %v", p, keys(found))
	}
	if want := (store.Location{Watcher: "cluster", Kind: "swarm", Place: p + "/jellyfin", Container: p + "_jellyfin", ContainerID: web}); jf.Location != want {
		t.Errorf("location %+v, want %+v", jf.Location, want)
	}
	if jf.Target.Digest != webDigest || jf.Target.Pinned || jf.Target.Image.Digest != "" || jf.Target.Image.Tag != "10.9.1" {
		t.Errorf("target %+v: want the digest Docker pinned (%s) in use, the tag compared", jf.Target, webDigest)
	}
	if jf.DisplayName != "Jellyfin" || jf.Target.Options.Include == nil || jf.Target.Options.Policy != watcher.UpdateMinor {
		t.Errorf("options from the service labels not applied: %+v", jf)
	}
	if z, ok := found[p+"-zero"]; !ok || z.Target.Digest != zeroDigest || z.Location.Kind != "swarm" {
		t.Errorf("the service scaled to 0: %v %+v", ok, z)
	}
	if _, ok := found[p+"-off"]; ok {
		t.Error("a service labelled tagwatch.enable=false is watched")
	}
	for place, f := range found {
		if f.Location.ContainerID == taskID || f.Location.Kind != "swarm" {
			t.Errorf("%s: a task container is listed besides its service: %+v", place, f.Location)
		}
	}
	if len(found) != 2 {
		t.Errorf("found %v, want the two services", keys(found))
	}
	if e := bad[p+"-bad"]; e == nil || !strings.Contains(e.Error(), "service "+p+"-bad: label tagwatch.tag.policy") {
		t.Errorf("the bad label is not reported by service: %v", bad)
	}

	t.Run("swarm false lists containers only", func(t *testing.T) {
		off := false
		src := &watcher.DockerSource{Watcher: "cluster", Host: host, WatchByDefault: true, WatchStopped: true, Swarm: &off}
		defer src.Close()
		found, _ := listPrefixed(t, src, p)
		for _, f := range found {
			if f.Location.Kind != "docker" {
				t.Errorf("a service is listed with swarm: false: %+v", f.Location)
			}
		}
		var task *watcher.Found
		for _, f := range found {
			if f.Location.ContainerID == taskID {
				task = &f
			}
		}
		if task == nil {
			t.Fatalf("the task container is not listed as a container: %v", keys(found))
		}
		// As on a worker: the digest Docker pinned is the one in use, not
		// a pin of the admin's.
		if task.Target.Digest != webDigest || task.Target.Pinned || task.Target.Image.Tag != "10.9.1" || strings.Contains(task.Target.Image.Given, "@") {
			t.Errorf("task container's target: %+v", task.Target)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		proxy := dockertest.NewProxy(t, host)
		src := &watcher.DockerSource{Watcher: "cluster2", Host: proxy.Host, WatchByDefault: true, WatchStopped: true}
		defer src.Close()
		checkUnreachable(t, reg, proxy, watchtest.OnlyHost{Source: src, Host: reg.Host}, "docker", "swarm",
			reg.Ref("team/jellyfin:10.9.1"), reg.Ref("team/zero:latest"))
	})

	t.Run("daemon", func(t *testing.T) {
		st := storetest.Open(t)
		d := watchtest.Daemon(t, st, watchtest.OnlyHost{Source: src, Host: reg.Host})
		ctx := context.Background()
		if rep := d.RunCycle(ctx, d.Sources); rep.Images != 2 || rep.Errors != 0 {
			t.Fatalf("first cycle: %+v", rep)
		}
		newer := reg.Push(t, "team/jellyfin:10.10.0", img("jf2")).String()
		reg.Push(t, "team/jellyfin:11.0.0", img("jf3")) // beyond policy minor
		rebuilt := reg.Push(t, "team/zero:latest", img("zero2")).String()
		rep := d.RunCycle(ctx, d.Sources)
		if len(rep.Updates) != 2 {
			t.Fatalf("second cycle: %+v", rep)
		}
		got := byReference(t, st)
		j := got[reg.Ref("team/jellyfin:10.9.1")]
		if j.Update != "minor" || j.LatestTag != "10.10.0" || j.LatestDigest != newer || j.Digest != webDigest || len(j.Where) != 1 || j.Where[0].Place != p+"/jellyfin" {
			t.Errorf("jellyfin: %+v", j)
		}
		if z := got[reg.Ref("team/zero:latest")]; z.Update != "digest" || z.LatestDigest != rebuilt || z.Digest != zeroDigest {
			t.Errorf("zero (still running the old latest): %+v", z)
		}

		dockertest.RemoveService(t, host, web)
		rep = d.RunCycle(ctx, d.Sources)
		got = byReference(t, st)
		if _, ok := got[reg.Ref("team/jellyfin:10.9.1")]; ok || rep.Images != 1 {
			t.Errorf("the removed service is still watched: %+v", got)
		}
	})
}

// TestSwarmRequiredButNotManager: swarm: true on an engine that is no
// Swarm manager fails the listing and says what to do.
func TestSwarmRequiredButNotManager(t *testing.T) {
	host := dockertest.Host(t)
	on := true
	src := &watcher.DockerSource{Watcher: "plain", Host: host, Swarm: &on}
	defer src.Close()
	_, err := src.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "swarm is true, but the engine is not a Swarm manager") {
		t.Errorf("List: %v", err)
	}
}

// listPrefixed lists src and keeps the services and containers whose place
// starts with prefix (the engine holds other tests' too), by place; the
// left-out ones by place too.
func listPrefixed(t *testing.T, src *watcher.DockerSource, prefix string) (map[string]watcher.Found, map[string]error) {
	t.Helper()
	all, bad := listEngine(t, src)
	found := map[string]watcher.Found{}
	for _, f := range all {
		if strings.HasPrefix(f.Location.Place, prefix) || strings.HasPrefix(f.Location.Container, prefix) {
			found[f.Location.Place] = f
		}
	}
	left := map[string]error{}
	for _, e := range bad {
		name := e.Service
		if name == "" {
			name = e.Container
		}
		if strings.HasPrefix(name, prefix) {
			left[name] = e
		}
	}
	return found, left
}

// waitTaskContainer waits for the engine to make a container for one of the
// service's tasks, and returns its ID.
func waitTaskContainer(t *testing.T, host, serviceID string) string {
	t.Helper()
	cli := dockertest.Client(t, host)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+serviceID))})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 {
			return cs[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task container for service %s in a minute", serviceID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
