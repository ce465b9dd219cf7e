package web_test

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/web"
)

// TestRegistryRepositoriesAPI: the API takes an instance's repositories
// as a variable, refuses a bad pattern with the field named, and answers
// them as a list too; the tile lists them.
func TestRegistryRepositoriesAPI(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)
	res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "hub", "name": "work",
		"values": map[string]string{"login": "acmebot", "password": "pat", "repositories": "acmecorp/*, AcmeCorp/**"}})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "repositories"); msg != `"AcmeCorp/**" has capitals; repository paths are lower-case` {
		t.Errorf("repositories error = %q", msg)
	}
	res, body = f.do("POST", "/api/v1/registries", map[string]any{"kind": "hub", "name": "work",
		"values": map[string]string{"login": "acmebot", "password": "pat", "repositories": "acmecorp/*, acmecorp/team/**"}})
	want(t, res, body, http.StatusCreated)
	res, body = f.do("GET", "/api/v1/registries/hub/work", nil)
	want(t, res, body, http.StatusOK)
	got := decode[struct {
		Values       map[string]string `json:"values"`
		Repositories []string          `json:"repositories"`
	}](t, body)
	if !slices.Equal(got.Repositories, []string{"acmecorp/*", "acmecorp/team/**"}) || got.Values["repositories"] != "acmecorp/*, acmecorp/team/**" {
		t.Errorf("GET hub.work = %s", body)
	}
	res, body = f.do("GET", "/api/v1/registries/hub/public", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[struct {
		Repositories *[]string `json:"repositories"`
	}](t, body).Repositories; r == nil || len(*r) != 0 {
		t.Errorf("hub.public's repositories are not an empty list: %s", body)
	}
	_, body = f.do("GET", "/settings/registries", nil)
	if !strings.Contains(body, `<dt>Repositories</dt><dd class="repositories"><code>acmecorp/*</code>, <code>acmecorp/team/**</code></dd>`) {
		t.Error("the tile of hub.work does not list its repositories")
	}
}

// TestBrowserInstances adds two instances of one registry in headless
// Chromium, each with another account and its own repositories: a bad
// pattern is marked on its field, the tiles list the patterns, and after a
// check the dashboard shows which instance read each image. The registry
// (real, htpasswd, behind a Front that reads each request's user) saw each
// repository read with the account of its instance.
func TestBrowserInstances(t *testing.T) {
	requireChromium(t)
	users := map[string]string{"alpha": "Alpha-pw-1", "beta": "Beta-pw-2"}
	reg := regtest.Start(t, regtest.Options{Users: users})
	reg.Push(t, "team-a/app:1.0.0", regtest.Image(t, "inst-a-1"))
	reg.Push(t, "team-a/app:1.1.0", regtest.Image(t, "inst-a-2"))
	reg.Push(t, "team-b/app:2.0.0", regtest.Image(t, "inst-b-1"))
	reg.Push(t, "team-b/app:3.0.0", regtest.Image(t, "inst-b-2"))
	front := reg.Front(t, regtest.FrontOptions{})

	st := storetest.Open(t)
	live := defaultLive(t)
	log := testLog(t, slog.LevelWarn)
	d := listDaemon(st, live, log, watchtest.Images(t, front.Host+"/team-a/app:1.0.0", front.Host+"/team-b/app:2.0.0")...)
	ts := serve(t, &web.Server{Store: st, Registries: live, Daemon: d, Log: log})
	b := newBrowser(t, ts.URL, 50*time.Second)

	add := func(name, user, repos string) {
		b.open("/settings/registries")
		b.click(`a.kind[href$="/new/custom"]`)
		b.waitText("h1", "Add Custom registry")
		b.fill("#f-name", name)
		b.fill("#f-url", front.URL)
		b.fill("#f-login", user)
		b.fill("#f-password", users[user])
		b.fill("#f-repositories", repos)
		b.click(`button[value="save"]`)
	}
	add("alpha", "alpha", "Team-A/*")
	b.waitText(`[data-error-for="repositories"]`, `"Team-A/*" has capitals; repository paths are lower-case`)
	b.screenshot("instances-bad-pattern")
	b.fill("#f-password", users["alpha"]) // typed secrets are never sent back
	b.fill("#f-repositories", "team-a/*")
	b.click(`button[value="save"]`)
	alpha := `article[data-id="custom.alpha"]`
	b.waitText(alpha, "Repositories")
	add("beta", "beta", "team-b/*, team-b/**")
	beta := `article[data-id="custom.beta"]`
	b.waitText(beta, "Repositories")
	if got := b.text(alpha + " dd.repositories"); got != "team-a/*" {
		t.Errorf("custom.alpha's tile lists %q", got)
	}
	if got := b.text(beta + " dd.repositories"); got != "team-b/*, team-b/**" {
		t.Errorf("custom.beta's tile lists %q", got)
	}
	b.screenshot("instances-tiles")

	runDaemon(t, d)
	b.open("/")
	b.waitText("h1", "Images")
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	b.waitText(`#image-rows tr[data-update="minor"]`, "via custom.alpha")
	b.waitText(`#image-rows tr[data-update="major"]`, "via custom.beta")
	// The first rows replace the empty page's message.
	b.waitGone("#no-images")
	b.screenshot("instances-dashboard")

	readers := map[string][]string{}
	for _, q := range front.Log() {
		if repo, ok := strings.CutSuffix(strings.TrimPrefix(q.Path, "/v2/"), "/tags/list"); ok && q.User != regtest.Admin {
			if !slices.Contains(readers[repo], q.User) {
				readers[repo] = append(readers[repo], q.User)
			}
		}
	}
	if !slices.Equal(readers["team-a/app"], []string{"alpha"}) || !slices.Equal(readers["team-b/app"], []string{"beta"}) {
		t.Errorf("the registry saw the tags read by %v; want team-a/app by alpha, team-b/app by beta", readers)
	}
}
