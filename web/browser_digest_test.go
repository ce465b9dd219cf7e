package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserMarkAsCurrent: a listed floating tag gets a new image in a
// real registry; after Check now the dashboard shows the digest update with
// a Mark as current button (and none on the row whose update is a newer
// tag). Clicking it clears the update in place, it stays cleared through
// the next check and a reload, and the next push is an update again, which
// a phone-sized screen can mark as current too.
func TestBrowserMarkAsCurrent(t *testing.T) {
	requireChromium(t)
	reg := regtest.Start(t, regtest.Options{})
	first := reg.Push(t, "team/app:latest", regtest.Image(t, "first")).String()
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "v1"))
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "v1.1"))

	st := storetest.Open(t)
	live, err := registries.NewLive(registries.DefaultCatalog(), nil, nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []watcher.StaticImage
	for _, ref := range []string{"/team/app:latest", "/team/app:1.0.0"} {
		img, err := registries.ParseImage(reg.Host + ref)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, watcher.StaticImage{Image: img})
	}
	imgs[0].DisplayName, imgs[1].DisplayName = "Rolling app", "Versioned app"
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d := &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: imgs}, Cron: "0 0 1 1 *"}},
		Checker:  &watcher.Checker{Registries: live.Set},
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
	rolling := func() store.Image {
		t.Helper()
		imgs, err := st.Images()
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			if img.Tag == "latest" {
				return img
			}
		}
		return store.Image{}
	}
	// The start-up cycle records the first image as the baseline.
	deadline := time.Now().Add(30 * time.Second)
	for rolling().Baseline != first {
		if time.Now().After(deadline) {
			t.Fatalf("the start-up cycle recorded no baseline: %+v", rolling())
		}
		time.Sleep(50 * time.Millisecond)
	}

	srv := &web.Server{Store: st, Registries: live, Daemon: d, Auth: config.WebAuth{}, Log: log}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	b := newBrowser(t, ts.URL, 90*time.Second)

	second := reg.Push(t, "team/app:latest", regtest.Image(t, "second")).String()
	b.open("/")
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	row := `#image-rows tr[data-update="digest"]`
	b.waitText(row, "Rolling app")
	txt := b.text(row)
	for _, s := range []string{"latest", second[:19], first[:19], "digest", "Mark as current"} {
		if !strings.Contains(txt, s) {
			t.Errorf("the digest row lacks %q:\n%s", s, txt)
		}
	}
	if got := b.eval(`String(document.querySelectorAll('#image-rows tr[data-update="minor"] form.accept').length)`); got != "0" {
		t.Errorf("the row with a newer tag offers Mark as current (%s forms)", got)
	}
	b.waitText("#summary", "2 with an update")
	b.screenshot("digest-update")

	b.click(row + " form.accept button")
	b.waitText("#accept-flash", "Marked Rolling app as current: "+second[:19])
	b.waitGone(row)
	b.waitText(`#image-rows tr[data-update="none"]`, "Rolling app")
	b.waitText("#summary", "1 with an update")
	b.screenshot("digest-accepted")
	if img := rolling(); img.Update != "none" || img.Baseline != second || img.AcceptedAt.IsZero() {
		t.Fatalf("stored after Mark as current: %+v", img)
	}

	// The next check finds the accepted image: no update, after a reload too.
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	b.open("/")
	b.waitText(`#image-rows tr[data-update="none"]`, "Rolling app")
	if got := b.eval(`String(document.querySelectorAll("form.accept").length)`); got != "0" {
		t.Errorf("after a check and a reload %s rows offer Mark as current", got)
	}

	// The next image is news again; on a phone the button is on screen.
	third := reg.Push(t, "team/app:latest", regtest.Image(t, "third")).String()
	b.run("phone viewport", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile))
	b.open("/")
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	b.waitText(row, "Mark as current")
	rect := b.eval(`(() => { const r = document.querySelector('` + row + ` form.accept button').getBoundingClientRect();
		return r.left + " " + r.right + " " + r.width + " " + document.documentElement.scrollWidth; })()`)
	var left, right, width, scroll float64
	if _, err := fmt.Sscan(rect, &left, &right, &width, &scroll); err != nil || left < 0 || right > phoneWidth || width == 0 || scroll > phoneWidth {
		t.Errorf("on a phone the button is at %q (left right width, page width); want within 0..%d", rect, phoneWidth)
	}
	b.screenshot("digest-update-phone")
	b.click(row + " form.accept button")
	b.waitText("#accept-flash", "Marked Rolling app as current: "+third[:19])
	b.waitGone(row)
	if img := rolling(); img.Update != "none" || img.Baseline != third {
		t.Fatalf("stored after Mark as current on the phone: %+v", img)
	}
}
