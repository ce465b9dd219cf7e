package watcher

import (
	"context"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// A Source lists the images to watch: a Docker engine, or the config
// file's images: list.
//
// When List fails, the source's images are kept as last listed, marked
// stale, and the watcher shows the error (states.go): a source only returns
// the error.
type Source interface {
	Name() string
	List(ctx context.Context) ([]Found, error)
}

// A Kinder says what kind of source it is (KindDocker, KindPodman,
// "kubernetes"…), for the watcher list and the metrics before, or without,
// any listing that worked. A source that is not one is known by the kinds
// of the locations it lists.
type Kinder interface {
	Kind() string
}

// Found is one image a source watches, with where it runs.
type Found struct {
	Target       Target
	Location     store.Location
	DisplayName  string // tagwatch.display.name
	LinkTemplate string // tagwatch.link.template
}

// StaticSource is the config file's images: list, for images that run
// where tagwatch cannot look.
type StaticSource struct {
	Images []StaticImage
}

// StaticImage is one entry of the list, already validated.
type StaticImage struct {
	Image        registries.Image
	Options      TagOptions
	Platform     string // os/arch; empty: the daemon's default
	DisplayName  string
	LinkTemplate string
}

// StaticWatcher is the watcher name of the config list's images.
const StaticWatcher = "config"

func (StaticSource) Name() string { return StaticWatcher }

// Kind is KindConfig.
func (StaticSource) Kind() string { return KindConfig }

func (s StaticSource) List(context.Context) ([]Found, error) {
	out := make([]Found, 0, len(s.Images))
	for _, img := range s.Images {
		// Nothing tells which image runs a listed reference: unless it
		// is pinned, its baseline stands for the digest in use.
		t := Target{Image: img.Image, Digest: img.Image.Digest, Pinned: img.Image.Digest != "", Options: img.Options, Track: img.Image.Digest == ""}
		if img.Platform != "" {
			p, err := parsePlatform(img.Platform)
			if err != nil {
				return nil, err
			}
			t.Platform = p
		}
		out = append(out, Found{
			Target:       t,
			Location:     store.Location{Watcher: StaticWatcher, Kind: KindConfig},
			DisplayName:  img.DisplayName,
			LinkTemplate: img.LinkTemplate,
		})
	}
	return out, nil
}
