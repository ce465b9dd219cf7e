package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserSecretFollowsNoURL walks, in headless Chromium, the edit form
// of a saved registry whose vendor moved to another host: as soon as the
// url is changed the password input stops offering the saved one and asks
// for it; Test connection and Save without it are refused under the
// password (the new host never sees it); with the password entered again
// it saves and the tile's test passes.
func TestBrowserSecretFollowsNoURL(t *testing.T) {
	requireChromium(t)

	old := startRegistry(t)
	moved := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": alicePassword}})
	moved.Push(t, "team/app:2.0.0", regtest.Image(t, "moved"))
	newHost := startRecorder(t, moved.URL)

	st := storetest.Open(t)
	ts := serve(t, &web.Server{Store: st, Registries: defaultLive(t), Auth: config.WebAuth{}, Log: testLog(t, slog.LevelWarn)})
	body, _ := json.Marshal(map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": old.URL, "login": "alice", "password": alicePassword}})
	res, err := http.Post(ts.URL+"/api/v1/registries", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("saving custom.vendor: %s", res.Status)
	}

	b := newBrowser(t, ts.URL, 50*time.Second)
	tile := `article[data-id="custom.vendor"]`
	placeholder := `document.querySelector("#f-password").placeholder`
	note := `[data-rebind-for="password"]`
	shown := func(sel string) string {
		return b.eval(`(() => { const e = document.querySelector(` + jsQuote(sel) + `); return e && !e.hidden && e.offsetParent !== null ? "shown" : "hidden"; })()`)
	}

	b.open("/settings/registries")
	b.click(tile + ` a[href$="/edit"]`)
	b.waitText("h1", "Edit custom.vendor")
	if got := b.eval(placeholder); got != "saved · leave blank to keep" {
		t.Errorf("before any change the password input says %q", got)
	}
	if shown(note) != "hidden" || shown(`.keep-secret`) != "shown" {
		t.Error("before any change the form asks for the password again")
	}

	// The url changes: the saved password is no longer offered.
	b.fill("#f-url", newHost.URL)
	b.waitText(note, "The url changed: enter the password again.")
	if got := b.eval(placeholder); got != "" {
		t.Errorf("after changing the url the password input still says %q", got)
	}
	if shown(`.keep-secret`) != "hidden" {
		t.Error("after changing the url the form still offers to remove the saved password")
	}
	b.screenshot("edit-form-url-changed")
	// Back to the saved url: offered again.
	b.fill("#f-url", old.URL)
	b.waitFor("the note to go", func() bool { return shown(note) == "hidden" })
	if got := b.eval(placeholder); got != "saved · leave blank to keep" {
		t.Errorf("with the saved url back the password input says %q", got)
	}

	// Test connection with the new url and no password: refused by the
	// server, under the password.
	b.fill("#f-url", newHost.URL)
	b.fill("#f-image", moved.Host+"/team/app")
	b.click("#test-button")
	b.waitText(`[data-error-for="password"]`, "the url changed; enter the password again")
	b.waitText("#test-result", "Not tested")
	// Save without it: refused the same way, by the server, without script.
	b.click(`button[value="save"]`)
	b.waitText("#form-errors", "Fix the fields marked below.") // the server's page, not the script's
	b.waitText(`[data-error-for="password"]`, "the url changed; enter the password again")
	if got := b.eval(`document.querySelector("#f-url").value`); got != newHost.URL {
		t.Errorf("the refused save lost the url typed: %q", got)
	}
	if newHost.requests() != 0 || newHost.saw(alicePassword) {
		t.Fatalf("the new host was reached before the password was entered (%d requests)", newHost.requests())
	}

	// Entered again: saved, and the tile's test passes against the new host.
	b.fill("#f-password", alicePassword)
	b.click(`button[value="save"]`)
	b.waitText(".flash", "Saved custom.vendor")
	b.waitText(tile, newHost.URL[len("http://"):])
	b.click(tile + ` form[action$="/test"] button`)
	b.waitText(tile, "Connection ok")
	if !newHost.saw(alicePassword) {
		t.Error("the new host never got the password entered for it")
	}
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, alicePassword) {
		t.Error("the page holds the password")
	}
	b.screenshot("registry-moved")
}

func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
