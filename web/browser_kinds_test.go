package web_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserKinds adds a Harbor registry through Settings → Registries in
// headless Chromium: a robot account (its $ intact from the form to the
// token server), through a proxy typed into the form. The registry is the
// real distribution registry behind a Front shaped like Harbor, which
// serves its token service at /service/token. The tile tests ok; with the
// $ lost, as an unescaped compose file loses it, the tile says which login
// Harbor expects.
func TestBrowserKinds(t *testing.T) {
	requireChromium(t)
	const robot, secret = "robot$library+tagwatch", "Harbor-r0bot-Secret"
	reg := regtest.Start(t, regtest.Options{Token: true, Users: map[string]string{robot: secret}})
	reg.Push(t, "library/app:1.0.0", regtest.Image(t, "harbor-1.0.0"))
	reg.Push(t, "library/app:1.1.0", regtest.Image(t, "harbor-1.1.0"))
	harbor := reg.Front(t, regtest.FrontOptions{TokenPath: "/service/token"})
	proxy := regtest.StartProxy(t)

	st := storetest.Open(t)
	ts := serve(t, &web.Server{Store: st, Registries: defaultLive(t), Log: testLog(t, slog.LevelWarn)})
	b := newBrowser(t, ts.URL, 50*time.Second)

	// Every kind has a card to add it; the new anonymous defaults have tiles.
	b.open("/settings/registries")
	b.waitText("#tiles", "hub.public")
	for _, kind := range registries.DefaultCatalog().Kinds() {
		if got := b.eval(`(() => { const a = document.querySelector('a.kind[href$="/new/` + kind + `"] .mark'); return a ? a.className + " " + a.innerText : ""; })()`); !strings.Contains(got, "k-"+kind) {
			t.Errorf("no card with its mark to add a %s registry: %q", kind, got)
		}
	}
	for _, id := range []string{"codeberg.public", "elastic.public", "mcr.public", "k8s.public", "trueforge.public"} {
		tile := `article[data-id="` + id + `"]`
		b.waitText(tile, "anonymous")
		b.waitText(tile, "default")
	}
	b.waitText(".intro", "Microsoft Artifact Registry")
	b.screenshot("kinds")

	// Add Harbor with the robot account, testing from the form first.
	b.click(`a.kind[href$="/new/harbor"]`)
	b.waitText("h1", "Add Harbor")
	b.fill("#f-name", "lab")
	b.fill("#f-url", harbor.URL)
	b.fill("#f-login", robot)
	b.fill("#f-password", secret)
	b.fill("#f-proxy", proxy.URL)
	b.fill("#f-image", harbor.Host+"/library/app")
	b.click("#test-button")
	b.waitText("#test-result", "Connection ok")
	b.waitText("#test-result", "2 tags")
	b.screenshot("harbor-form")
	b.click(`button[value="save"]`)
	lab := `article[data-id="harbor.lab"]`
	b.waitText(lab, "harbor.lab")
	b.waitText(lab, "authenticated")
	txt := b.text(lab)
	for _, s := range []string{"Harbor", harbor.Host, robot, proxy.URL} {
		if !strings.Contains(txt, s) {
			t.Errorf("the tile lacks %q:\n%s", s, txt)
		}
	}
	// The form's test was kept on save, so the tile says "Connection ok"
	// already: wait for this test's own flash, not for a page in flight.
	b.click(lab + ` form[action$="/test"] button`)
	b.waitText(".flash", "Tested harbor.lab: the connection works.")
	b.waitText(lab, "Connection ok")
	b.screenshot("harbor-tile")
	if recs, err := st.Registries(); err != nil || len(recs) != 1 || recs[0].Values["login"] != robot {
		t.Errorf("stored: %+v, %v; want the login %s", recs, err, robot)
	}
	// The token server saw the robot, and every request went through the proxy.
	var users []string
	for _, r := range reg.Issuer.Log() {
		users = append(users, r.User)
	}
	if !slices.Contains(users, robot) {
		t.Errorf("the token server saw %q; want %s", users, robot)
	}
	if got := proxy.Targets(); !slices.Equal(got, []string{harbor.Host}) {
		t.Errorf("the proxy was asked for %v; want only %s", got, harbor.Host)
	}

	// The $ lost: the test fails and the tile names the login Harbor expects.
	b.click(lab + ` a[href$="/edit"]`)
	b.waitText("h1", "Edit harbor.lab")
	b.fill("#f-login", "robotlibrary+tagwatch")
	b.click(`button[value="save"]`)
	b.waitText(lab, "Not tested yet")
	b.click(lab + ` form[action$="/test"] button`)
	b.waitText(lab, "Connection failed")
	b.waitText(lab, "Harbor expects")
	b.waitText(lab, "robot$<project>+<name>")
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, secret) {
		t.Error("the page holds the robot's secret")
	}
	b.screenshot("harbor-hint")
}
