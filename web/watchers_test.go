package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	"github.com/tagwatch/tagwatch/web"
)

// TestUnreachableWatcherShown: a real Docker engine behind a proxy that
// goes down, the config list beside it, a real daemon and store. The API
// lists the watcher's error and the images' stale marks, and the dashboard,
// in real Chromium, shows the watcher's line and the stale mark on the row.
func TestUnreachableWatcherShown(t *testing.T) {
	requireChromium(t)
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{})
	name := fmt.Sprintf("twweb%d", time.Now().UnixNano())
	ref := reg.Ref("team/web:1.0.0")
	reg.Push(t, "team/web:1.0.0", regtest.Image(t, name))
	dockertest.Pull(t, host, ref)
	dockertest.Create(t, host, name, ref, nil)
	listed, err := registries.ParseImage(reg.Ref("team/listed:1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "team/listed:1.0.0", regtest.Image(t, name+"listed"))

	proxy := dockertest.NewProxy(t, host)
	src := &watcher.DockerSource{Watcher: "nas", Host: proxy.Host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	st := storetest.Open(t)
	live := defaultLive(t)
	log := testLog(t, slog.LevelError)
	d := &watcher.Daemon{
		Sources: []watcher.Scheduled{
			{Source: watchtest.OnlyHost{Source: src, Host: reg.Host}},
			{Source: watcher.StaticSource{Images: []watcher.StaticImage{{Image: listed}}}},
		},
		Checker:  &watcher.Checker{Registries: live.Set},
		Store:    st,
		Log:      log,
		Platform: regtest.Platform("linux/amd64"),
	}
	ctx := context.Background()
	d.RunCycle(ctx, d.Sources)
	proxy.SetDown(true)
	d.RunCycle(ctx, d.Sources)

	ts := serve(t, &web.Server{Store: st, Registries: live, Daemon: d, Log: log})
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v\n%s", path, res.Status, err, b)
		}
		return string(b)
	}
	body := get("/api/v1/watchers")
	ws := decode[struct {
		Watchers []store.WatcherState `json:"watchers"`
	}](t, body).Watchers
	if len(ws) != 2 || ws[0].Name != "config" || ws[0].Error != "" || ws[1].Name != "nas" {
		t.Fatalf("watchers %+v", ws)
	}
	nas := ws[1]
	if nas.Kind != "docker" || !strings.Contains(nas.Error, "listing containers") || nas.FailingSince.IsZero() || nas.LastListed.IsZero() || nas.Images != 1 {
		t.Errorf("nas: %+v", nas)
	}

	body = get("/api/v1/images")
	var seen bool
	for _, img := range decode[struct {
		Images []store.Image `json:"images"`
	}](t, body).Images {
		if img.Reference != ref {
			continue
		}
		seen = true
		if l := img.Where; len(l) != 1 || l[0].Kind != "docker" || l[0].Place != name || !l[0].StaleSince.Equal(nas.FailingSince) {
			t.Errorf("where %+v, want nas · %s stale since %v", l, name, nas.FailingSince)
		}
	}
	if !seen {
		t.Fatalf("%s vanished from the API: %s", ref, body)
	}
	if !strings.Contains(body, `"staleSince"`) || !strings.Contains(body, `"place": "`+name+`"`) {
		t.Errorf("the API's where lacks place or staleSince:\n%s", body)
	}

	b := newBrowser(t, ts.URL, 30*time.Second)
	b.open("/")
	b.waitText(`#watchers-down [data-watcher="nas"]`, "nas docker cannot be listed since")
	b.waitText(`#watchers-down [data-watcher="nas"]`, "listing containers")
	b.waitText("#image-rows", "nas · "+name+" docker stale since")
	b.waitText("#image-rows", "config list")
	if txt := b.text("#watchers-down"); strings.Contains(txt, "config") {
		t.Errorf("the config list is shown as down: %s", txt)
	}
	b.screenshot("watcher-down")
}
