package config_test

import (
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

// twoHubAccounts is the README's example: one's own account, and another
// for a private organisation's repositories.
const twoHubAccounts = `registries:
  hub:
    public:
      login: johndoe
      password: "<access token>"
    work:
      login: acmebot
      password: "<access token>"
      repositories: acmecorp/*
images:
  - image: acmecorp/api:2.0.0
  - image: nginx:1.27.0
  - image: acmecorp/legacy:1.0.0
    registry: hub.public
`

// TestImagesNameTheirRegistry: registry: in an images: entry becomes the
// image's option, and a hub instance's repositories are read as its
// variable, from the file and the environment alike.
func TestImagesNameTheirRegistry(t *testing.T) {
	c, err := config.Load(write(t, twoHubAccounts+"  - image: acmecorp/web:1\n    registry: hub.home\n"),
		[]string{"TAGWATCH_REGISTRY_HUB_WORK_REPOSITORIES=acmecorp/*, acmecorp/team/**"}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if got := registry(t, c, "hub.work").Values["repositories"]; got != "acmecorp/*, acmecorp/team/**" {
		t.Errorf("hub.work's repositories = %q", got)
	}
	want := []string{"", "", "hub.public", "hub.home"} // hub.home may be saved in the UI: serve checks it
	for i, img := range c.Images {
		if img.Options.Registry != want[i] || img.Registry != want[i] {
			t.Errorf("images[%d] (%s) names %q (option %q), want %q", i, img.Image, img.Registry, img.Options.Registry, want[i])
		}
	}
}

// TestNamedRegistryErrors: a registry an image names that cannot serve it
// is an error at load, at the line of registry:, naming the image and the
// instance; every one of them in one run.
func TestNamedRegistryErrors(t *testing.T) {
	body := twoHubAccounts + `  - image: ghcr.io/acmecorp/tool:1.0.0
    registry: hub.work
  - image: redis:7
    registry: hub.work
  - image: redis:7
    registry: work
  - image: redis:7
    registry: dockerhub.work
`
	p, err := loadError(t, body, nil)
	for _, want := range []string{
		":16: images[3].registry: ghcr.io/acmecorp/tool:1.0.0 names the registry hub.work, which does not serve ghcr.io (it serves docker.io). Name an instance of ghcr.io, or none.",
		":18: images[4].registry: redis:7 names the registry hub.work, which serves only acmecorp/* on docker.io. Add library/redis to its repositories, or name another instance.",
		`:20: images[5].registry: "work" is not a registry instance: write kind.name, e.g. hub.work`,
		":22: images[6].registry: redis:7 names the registry dockerhub.work, but there is no registry kind dockerhub (known: acr,",
	} {
		mentions(t, err, p, want)
	}
	if n := len(config.Errors(err)); n != 4 {
		t.Errorf("%d errors, want 4:\n%v", n, err)
	}

	// Bad patterns are the instance's errors, at their line.
	p, err = loadError(t, "registries:\n  hub:\n    work:\n      login: a\n      password: b\n      repositories: acmecorp/*, AcmeCorp/**\n", nil)
	mentions(t, err, p, `:6: registries.hub.work.repositories: "AcmeCorp/**" has capitals; repository paths are lower-case`)
	if strings.Contains(err.Error(), `"acmecorp/*"`) {
		t.Errorf("a good pattern is reported: %v", err)
	}
}
