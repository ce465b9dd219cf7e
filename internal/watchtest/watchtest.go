// Package watchtest builds the daemon the tests of the sources (watcher,
// watcher/containerd, watcher/kubernetes, web) run their cycles with: real
// registries, a real store, and the small pieces around them that every such
// test needs, so that each test says only what is its own.
package watchtest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Daemon is a daemon over sources, each on the default schedule, as serve
// builds one: the default registries (anonymous), checks for linux/amd64,
// results into st, and a log that goes nowhere (the tests read the store
// and the cycle's report, not the log).
func Daemon(t testing.TB, st watcher.Store, sources ...watcher.Source) *watcher.Daemon {
	t.Helper()
	set, err := registries.NewSet(registries.DefaultCatalog(), nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return DaemonOn(st, set, sources...)
}

// DaemonOn is Daemon checking through set (instances, limits of the
// test's own).
func DaemonOn(st watcher.Store, set *registries.Set, sources ...watcher.Source) *watcher.Daemon {
	scheduled := make([]watcher.Scheduled, len(sources))
	for i, s := range sources {
		scheduled[i] = watcher.Scheduled{Source: s}
	}
	return &watcher.Daemon{
		Sources:  scheduled,
		Checker:  &watcher.Checker{Registries: func() *registries.Set { return set }},
		Store:    st,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Platform: regtest.Platform("linux/amd64"),
	}
}

// Images parses refs (host/repository:tag) into the config list's images.
func Images(t testing.TB, refs ...string) []watcher.StaticImage {
	t.Helper()
	var imgs []watcher.StaticImage
	for _, r := range refs {
		img, err := registries.ParseImage(r)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, watcher.StaticImage{Image: img})
	}
	return imgs
}

// ByReference maps the store's records by reference.
func ByReference(t testing.TB, st *store.Store) map[string]store.Image {
	t.Helper()
	imgs, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Image{}
	for _, img := range imgs {
		out[img.Reference] = img
	}
	return out
}

// OnlyHost keeps the images of Source that come from one registry Host:
// the engines the tests list are shared with other tests.
type OnlyHost struct {
	watcher.Source
	Host string
}

// Kind is Source's kind: the watcher list shows it before any listing.
func (o OnlyHost) Kind() string {
	if k, ok := o.Source.(watcher.Kinder); ok {
		return k.Kind()
	}
	return ""
}

func (o OnlyHost) List(ctx context.Context) ([]watcher.Found, error) {
	all, err := o.Source.List(ctx)
	var out []watcher.Found
	for _, f := range all {
		if f.Target.Image.Host == o.Host {
			out = append(out, f)
		}
	}
	return out, err
}
