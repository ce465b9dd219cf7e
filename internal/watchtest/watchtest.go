// Package watchtest builds the daemon the tests of the sources (watcher,
// watcher/containerd, watcher/kubernetes, web) run their cycles with: real
// registries, a real store, and the small pieces around them that every such
// test needs, so that each test says only what is its own.
package watchtest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
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

// CheckUnreachable runs a cycle over src, which cannot be reached (its
// error says why), and the config list (one image of a real registry), on a
// real store that holds an image src listed before at loc: the cycle reports
// src's error and no error of the config list, the config list's image is
// checked, and src's image is kept.
func CheckUnreachable(t *testing.T, src watcher.Source, loc store.Location, why string) {
	t.Helper()
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "home/app:1.0.0", regtest.Image(t, loc.Kind+"-unreachable"))
	app := reg.Host + "/home/app:1.0.0"
	st := storetest.Open(t)
	kept := store.Image{Key: "kept", Reference: reg.Host + "/home/kept:1.0.0", Where: []store.Location{loc}}
	if err := st.PutImages([]store.Image{kept}); err != nil {
		t.Fatal(err)
	}
	d := Daemon(t, st, src, watcher.StaticSource{Images: Images(t, app)})
	rep := d.RunCycle(context.Background(), d.Sources)
	if !strings.Contains(rep.Sources[src.Name()], why) || rep.Sources[watcher.StaticWatcher] != "" || rep.Images != 1 {
		t.Errorf("cycle: %+v", rep)
	}
	recs := ByReference(t, st)
	if r := recs[app]; r.Update != "none" {
		t.Errorf("the other source's image: %+v", r)
	}
	if r, ok := recs[kept.Reference]; !ok || r.Key != kept.Key {
		t.Errorf("the unreachable %s's image was dropped: %+v", src.Name(), recs)
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
