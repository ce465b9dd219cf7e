package metrics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/metrics"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestWatcherMetrics: a real Docker engine (behind a proxy that goes down)
// and the config list, cycles into a real store. The metrics say which
// watcher is up, what it found, and where each update runs.
func TestWatcherMetrics(t *testing.T) {
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{})
	name := "twmetrics" + time.Now().Format("150405000000")
	web := reg.Ref("team/web:1.0.0")
	reg.Push(t, "team/web:1.0.0", regtest.Image(t, name+"web"))
	dockertest.Pull(t, host, web)
	dockertest.Create(t, host, name, web, nil)
	listed := reg.Ref("team/listed:1.0.0")
	reg.Push(t, "team/listed:1.0.0", regtest.Image(t, name+"listed"))

	proxy := dockertest.NewProxy(t, host)
	src := &watcher.DockerSource{Watcher: "nas", Host: proxy.Host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	st := storetest.Open(t)
	var d *watcher.Daemon
	m := metrics.New(metrics.Options{Store: st, Log: slog.New(slog.DiscardHandler), Watchers: func() []store.WatcherState { return d.Watchers() }})
	d = watchtest.Daemon(t, st, src, watcher.StaticSource{Images: watchtest.Images(t, listed)})
	d.OnCycle = m.ObserveCycle
	ctx := context.Background()
	before := time.Now()
	d.RunCycle(ctx, d.Sources)
	reg.Push(t, "team/web:1.1.0", regtest.Image(t, name+"web2"))
	reg.Push(t, "team/listed:2.0.0", regtest.Image(t, name+"listed2"))
	d.RunCycle(ctx, d.Sources)

	fams := scrape(t, metrics.Handler(m))
	if v := value(t, fams, "tagwatch_watcher_up", "watcher", "nas", "kind", "docker"); v != 1 {
		t.Errorf("nas up = %v", v)
	}
	if v := value(t, fams, "tagwatch_watcher_up", "watcher", "config", "kind", "config"); v != 1 {
		t.Errorf("config up = %v", v)
	}
	if v := value(t, fams, "tagwatch_watcher_images", "watcher", "nas"); v < 1 {
		t.Errorf("nas images = %v", v)
	}
	if v := value(t, fams, "tagwatch_watcher_last_listed_timestamp_seconds", "watcher", "nas"); v < float64(before.Unix()) {
		t.Errorf("nas last listed = %v", v)
	}
	if v := value(t, fams, "tagwatch_update_available_where", "watcher", "nas", "kind", "docker", "place", name,
		"reference", web, "update", "minor", "latest_tag", "1.1.0"); v != 1 {
		t.Errorf("web's update where it runs = %v", v)
	}
	if v := value(t, fams, "tagwatch_update_available_where", "watcher", "config", "kind", "config", "place", "",
		"reference", listed, "update", "major", "latest_tag", "2.0.0"); v != 1 {
		t.Errorf("the config list's update = %v", v)
	}

	proxy.SetDown(true)
	d.RunCycle(ctx, d.Sources)
	fams = scrape(t, metrics.Handler(m))
	if v := value(t, fams, "tagwatch_watcher_up", "watcher", "nas", "kind", "docker"); v != 0 {
		t.Errorf("nas up while down = %v", v)
	}
	if v := value(t, fams, "tagwatch_watcher_up", "watcher", "config"); v != 1 {
		t.Errorf("config up while nas is down = %v", v)
	}
	// Its images are kept (stale), and so is their update.
	if v := value(t, fams, "tagwatch_update_available_where", "watcher", "nas", "place", name); v != 1 {
		t.Errorf("web's update while nas is down = %v", v)
	}
}
