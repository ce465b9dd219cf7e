package web_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserShowsWhatACheckWaitsFor presses Check now in headless Chromium
// while the real daemon's cycle is held by a registry that sends its tag
// list a byte a second (with deadlines longer than the test, so the cycle
// is still held whatever the machine's load): the progress line and the
// page's summary name that registry and what it is doing, and the healthy
// registry's image already shows its update.
func TestBrowserShowsWhatACheckWaitsFor(t *testing.T) {
	requireChromium(t)
	reg := regtest.Start(t, regtest.Options{})
	d0 := reg.Push(t, "team/app:1.0.0", regtest.Image(t, "a"))
	reg.Tag(t, "team/app", d0, "1.1.0")
	slow := regtest.StartHostile(t, regtest.SlowBody)

	st := storetest.Open(t)
	live, err := registries.NewLive(registries.DefaultCatalog(), nil, nil, registries.Options{Limits: registries.Limits{Request: 5 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	log := testLog(t, slog.LevelWarn)
	d := listDaemon(st, live, log, watchtest.Images(t, reg.Host+"/team/app:1.0.0", slow.Host+"/slow/app:1.0.0")...)
	d.Checker.ImageTimeout, d.Checker.CycleTimeout = 5*time.Minute, 10*time.Minute
	ts := serve(t, &web.Server{Store: st, Registries: live, Daemon: d, Auth: config.WebAuth{}, Log: log})
	b := newBrowser(t, ts.URL, 50*time.Second)
	b.open("/")
	b.waitText("h1", "Images")

	// The daemon starts now: its start-up cycle is held by the slow registry.
	runDaemon(t, d)

	b.click("#check-now")
	b.waitText("#check-text", "waiting for "+slow.Host+" (1 image for ")
	b.waitText("#check-text", "list tags of slow/app")
	t.Logf("the progress line says: %s", b.text("#check-text"))
	b.screenshot("check-waiting")

	// The page itself, loaded during the stuck cycle once the healthy
	// registry's result is stored, says the same and shows that result.
	b.waitFor("the healthy image's result in the store", func() bool {
		imgs, err := st.Images()
		return err == nil && len(imgs) == 1 && imgs[0].Update == "minor"
	})
	b.open("/")
	b.waitText("#summary", "checking now: 1 of 2 checked; waiting for "+slow.Host)
	b.waitText(`#image-rows tr[data-update="minor"]`, "1.1.0")
	t.Logf("the page's summary says: %s", b.text("#summary"))
	if s := d.Status(); !s.Running {
		t.Errorf("the cycle ended during the test: %+v", s)
	}
}
