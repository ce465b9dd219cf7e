package watcher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestDaemonWatchesDockerEngine is the daemon as admins run it: a real
// Docker engine whose containers were created from images pulled from a
// real registry, a cycle into a real bbolt file, then a newer tag and a new
// digest pushed and a second cycle whose history shows both.
func TestDaemonWatchesDockerEngine(t *testing.T) {
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{})
	prefix := fmt.Sprintf("tw-daemon-%d", time.Now().UnixNano())

	reg.Push(t, "team/web:1.0.0", regtest.Image(t, prefix+"web-1.0.0"))
	reg.Push(t, "team/db:latest", regtest.Image(t, prefix+"db-1"))
	web, db := reg.Host+"/team/web:1.0.0", reg.Host+"/team/db:latest"
	dockertest.Pull(t, host, web)
	dockertest.Pull(t, host, db)
	dockertest.Create(t, host, prefix+"-web", web, map[string]string{"tagwatch.display.name": "Web front"})
	dockertest.Create(t, host, prefix+"-web2", web, nil) // same image: one check, two locations
	dockertest.Create(t, host, prefix+"-db", db, nil)
	dockertest.Create(t, host, prefix+"-off", web, map[string]string{"tagwatch.enable": "false"})

	st := storetest.Open(t)
	src := &watcher.DockerSource{Watcher: "local", Host: host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	// The engine is shared with other tests: watch only this test's images.
	d := watchtest.Daemon(t, st, watchtest.OnlyHost{Source: src, Host: reg.Host})
	ctx := context.Background()

	rep := d.RunCycle(ctx, d.Sources)
	if rep.Images != 2 || rep.Errors != 0 || rep.Sources["local"] != "" {
		t.Fatalf("first cycle: %+v", rep)
	}
	got := byReference(t, st)
	w := got[web]
	if w.Update != "none" || w.DisplayName != "Web front" || len(w.Where) != 2 || w.Digest == "" {
		t.Fatalf("web after the first cycle: %+v", w)
	}
	for _, loc := range w.Where {
		if loc.Watcher != "local" || (loc.Container != prefix+"-web" && loc.Container != prefix+"-web2") {
			t.Errorf("web runs in %+v", loc)
		}
	}
	if got[db].Update != "none" || got[db].Digest == "" {
		t.Fatalf("db after the first cycle: %+v", got[db])
	}

	newer := reg.Push(t, "team/web:1.1.0", regtest.Image(t, prefix+"web-1.1.0")).String()
	rebuilt := reg.Push(t, "team/db:latest", regtest.Image(t, prefix+"db-2")).String()

	rep = d.RunCycle(ctx, d.Sources)
	if len(rep.Updates) != 2 || rep.Errors != 0 {
		t.Fatalf("second cycle: %+v", rep)
	}
	got = byReference(t, st)
	if got[web].Update != "minor" || got[web].LatestTag != "1.1.0" || got[web].LatestDigest != newer {
		t.Errorf("web: %+v", got[web])
	}
	if got[db].Update != "digest" || got[db].LatestDigest != rebuilt {
		t.Errorf("db (running the old digest of latest): %+v", got[db])
	}
	hist, err := st.History(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history: %+v", hist)
	}
	for _, h := range hist {
		switch h.Reference {
		case web:
			if h.Update != "minor" || h.FromTag != "1.0.0" || h.ToTag != "1.1.0" {
				t.Errorf("web history %+v", h)
			}
		case db:
			if h.Update != "digest" || h.ToDigest != rebuilt || h.FromDigest == rebuilt {
				t.Errorf("db history %+v", h)
			}
		default:
			t.Errorf("unexpected history %+v", h)
		}
	}
}
