package web_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

// What the tests that run a real server (and a real daemon behind it) set
// up the same way: a browser test says only what its page needs.

// testLog logs through t.Log from level up: a browser test's server and
// daemon say what went wrong beside the test's own lines.
func testLog(t *testing.T, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

// defaultLive is the registries of a fresh install: the anonymous defaults.
func defaultLive(t testing.TB) *registries.Live {
	t.Helper()
	live, err := registries.NewLive(registries.DefaultCatalog(), nil, nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return live
}

// serve serves srv's handler until the test ends.
func serve(t testing.TB, srv *web.Server) *httptest.Server {
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// listDaemon is the daemon serve runs over the config list imgs, checking
// linux/amd64 through live's registries into st. Its schedule is a year
// away: its cycles are the start-up one and those Check now asks for.
func listDaemon(st *store.Store, live *registries.Live, log *slog.Logger, imgs ...watcher.StaticImage) *watcher.Daemon {
	return &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: imgs}, Cron: "0 0 1 1 *"}},
		Checker:  &watcher.Checker{Registries: live.Set},
		Store:    st,
		Log:      log,
		Platform: regtest.Platform("linux/amd64"),
	}
}

// runDaemon runs d (its start-up cycle first) until the test ends.
func runDaemon(t *testing.T, d *watcher.Daemon) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
}

// checkedOne waits up to a minute for the store's one image to be checked,
// and returns it.
func checkedOne(t *testing.T, st *store.Store) store.Image {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		imgs, err := st.Images()
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) == 1 && !imgs[0].LastChecked.IsZero() {
			return imgs[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no check result within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
