package web_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserShowsWhatACheckWaitsFor presses Check now in headless Chromium
// while the real daemon's cycle is held by a registry that sends its tag
// list a byte a second: the progress line and the page's summary name that
// registry and what it is doing, and the check then ends (at the request
// deadline) with the healthy image's update shown.
func TestBrowserShowsWhatACheckWaitsFor(t *testing.T) {
	requireChromium(t)
	reg := regtest.Start(t, regtest.Options{})
	d0 := reg.Push(t, "team/app:1.0.0", regtest.Image(t, "a"))
	reg.Tag(t, "team/app", d0, "1.1.0")
	slow := regtest.StartHostile(t, regtest.SlowBody)

	st := storetest.Open(t)
	live, err := registries.NewLive(registries.DefaultCatalog(), nil, nil, registries.Options{Limits: registries.Limits{Request: 4 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []watcher.StaticImage
	for _, ref := range []string{reg.Host + "/team/app:1.0.0", slow.Host + "/slow/app:1.0.0"} {
		img, err := registries.ParseImage(ref)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, watcher.StaticImage{Image: img})
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d := &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: imgs}, Cron: "0 0 1 1 *"}},
		Checker:  &watcher.Checker{Registries: live.Set, ImageTimeout: 8 * time.Second, CycleTimeout: 10 * time.Second},
		Store:    st,
		Log:      log,
		Platform: regtest.Platform("linux/amd64"),
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(runCtx); err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	ts := httptest.NewServer((&web.Server{Store: st, Registries: live, Daemon: d, Auth: config.WebAuth{}, Log: log}).Handler())
	t.Cleanup(ts.Close)

	// The start-up cycle is under way, held by the slow registry.
	deadline := time.Now().Add(30 * time.Second)
	for s := d.Status(); !s.Running || len(s.Waiting) == 0 || s.Waiting[0].Host != slow.Host; s = d.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("the start-up cycle is not waiting for %s: %+v", slow.Host, s)
		}
		time.Sleep(20 * time.Millisecond)
	}

	b := newBrowser(t, ts.URL, 50*time.Second)
	b.open("/")
	b.waitText("#summary", "checking now:")
	b.waitText("#summary", "waiting for "+slow.Host)
	b.click("#check-now")
	b.waitText("#check-text", slow.Host+" (1 image for ")
	b.waitText("#check-text", "list tags of slow/app")
	b.screenshot("check-waiting")
	t.Logf("the progress line said: %s", b.text("#check-text"))
	b.waitText("#check-text", "Done")
	b.waitText(`#image-rows tr[data-update="minor"]`, "1.1.0")
	b.waitText("#image-rows", "did not complete within the 4s request deadline")
}
