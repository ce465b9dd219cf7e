package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/web"
)

// chromiumPath is Debian's Chromium.
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv names a directory to keep the screenshots in (they go to
// t.TempDir() otherwise, removed with the test).
const screenshotsEnv = "TAGWATCH_SCREENSHOTS"

// TestBrowser drives the UI in headless Chromium against a real server, a
// real daemon and a real registry with htpasswd auth: add a registry, test
// it, break it, reset Docker Hub, delete and re-add, then check for updates
// from the dashboard.
func TestBrowser(t *testing.T) {
	requireChromium(t)
	start := time.Now()

	reg := startRegistry(t) // team/app:1.0.0, alice's password
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "newer"))

	st := storetest.Open(t)
	live := defaultLive(t)
	imgs := watchtest.Images(t, reg.Host+"/team/app:1.0.0")
	imgs[0].DisplayName = "Team app"
	log := testLog(t, slog.LevelWarn)
	d := listDaemon(st, live, log, imgs...)
	runDaemon(t, d)

	ts := serve(t, &web.Server{Store: st, Registries: live, Daemon: d, Auth: config.WebAuth{}, Log: log})

	b := newBrowser(t, ts.URL, 50*time.Second)
	mine := `article[data-id="custom.mine"]`
	hub := `article[data-id="hub.public"]`

	// Settings → Registries: the defaults are there.
	b.open("/settings/registries")
	b.waitText("#tiles", "hub.public")
	b.waitText(hub, "anonymous")
	b.waitText(hub, "default")

	// Add a custom registry with alice's credentials.
	b.click(`a.kind[href$="/new/custom"]`)
	b.waitText("h1", "Add Custom registry")
	b.fill("#f-name", "mine")
	b.fill("#f-url", reg.URL)
	b.fill("#f-login", "alice")
	// Saved without the password: the server's error shows beside it.
	b.click(`button[value="save"]`)
	b.waitText(`[data-error-for="password"]`, "must be defined when login is defined")
	if got := b.eval(`document.querySelector("#f-url").value`); got != reg.URL {
		t.Errorf("the url typed in was lost: %q", got)
	}
	b.screenshot("add-form-errors")
	b.fill("#f-password", alicePassword)
	b.click(`button[value="save"]`)
	b.waitText(mine, "custom.mine")
	b.waitText(mine, "authenticated")
	b.waitText(".flash", "Saved custom.mine")

	// Test connection on its tile.
	b.click(mine + ` form[action$="/test"] button`)
	b.waitText(mine, "Connection ok")

	// Edit with a wrong password: the test fails and the tile says why.
	b.click(mine + ` a[href$="/edit"]`)
	b.waitText("h1", "Edit custom.mine")
	b.fill("#f-password", wrongPassword)
	b.click(`button[value="save"]`)
	b.waitText(mine, "Not tested yet")
	b.click(mine + ` form[action$="/test"] button`)
	b.waitText(mine, "Connection failed")
	b.waitText(mine, "refused the credentials of custom.mine (401). Check login and password. Use what docker login accepts for this registry: often a username or e-mail with an access token as the password.")
	b.screenshot("registries-failed-test")

	// Give Docker Hub credentials, then reset it to anonymous.
	b.click(hub + ` a[href$="/edit"]`)
	b.waitText("h1", "Edit hub.public")
	b.fill("#f-login", "alice")
	b.fill("#f-password", hubToken)
	b.click(`button[value="save"]`)
	b.waitText(hub, "authenticated")
	b.waitText(hub, "UI")
	b.click(hub + ` details.confirm summary`)
	b.waitText(hub+` .confirm-box`, "go back to anonymous access?")
	b.click(hub + ` .confirm-box button`)
	b.waitText(".flash", "Reset hub.public")
	b.waitText(hub, "anonymous")
	if txt := b.text(hub); strings.Contains(txt, "authenticated") || !strings.Contains(txt, "default") {
		t.Errorf("hub.public after reset:\n%s", txt)
	}

	// Delete the custom registry, confirming in the page.
	b.click(mine + ` details.confirm summary`)
	b.waitText(mine+` .confirm-box`, "Delete custom.mine and its saved credentials?")
	b.click(mine + ` .confirm-box button`)
	b.waitText(".flash", "Deleted custom.mine")
	b.waitGone(mine)

	// Add it again with the right password, testing from the form first.
	b.click(`a.kind[href$="/new/custom"]`)
	b.waitText("h1", "Add Custom registry")
	b.fill("#f-name", "mine")
	b.fill("#f-url", reg.URL)
	b.fill("#f-login", "alice")
	b.fill("#f-password", alicePassword)
	b.fill("#f-image", reg.Host+"/team/app")
	b.click(`#test-button`)
	b.waitText("#test-result", "Connection ok")
	b.waitText("#test-result", " tags · ")
	b.screenshot("add-form")
	b.click(`button[value="save"]`)
	b.waitText(mine, "custom.mine")
	b.waitText(mine, "Connection ok") // the form's test, kept on save
	b.click(mine + ` form[action$="/test"] button`)
	b.waitText(".flash", "Tested custom.mine: the connection works.")
	b.waitText(mine, "Connection ok")
	b.screenshot("registries")

	// The saved password never comes back to the page, not even hidden.
	b.click(mine + ` a[href$="/edit"]`)
	b.waitText("h1", "Edit custom.mine")
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, alicePassword) {
		t.Error("the edit page holds the saved password")
	}
	if v := b.eval(`document.querySelector("#f-password").value`); v != "" {
		t.Errorf("the password field holds %q", v)
	}

	// Dashboard: check now, watch the progress, see the update.
	b.open("/")
	b.waitText("h1", "Images")
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	row := `#image-rows tr[data-update="minor"]`
	b.waitText(row, "Team app")
	txt := b.text(row)
	for _, s := range []string{"1.0.0", "1.1.0", "minor", "config list"} {
		if !strings.Contains(txt, s) {
			t.Errorf("the dashboard row lacks %q:\n%s", s, txt)
		}
	}
	b.screenshot("dashboard")

	// History has the update.
	b.open("/history")
	b.waitText("table", "1.1.0")
	b.waitText("table", "minor")
	b.screenshot("history")

	t.Logf("the browser flow took %v", time.Since(start))
}

// requireChromium skips the test without Chromium, except in CI.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is not installed at %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("Chromium is not installed at %s (apt-get install chromium); skipping the browser test", chromiumPath)
	}
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("%s is not executable: %v", chromiumPath, err)
	}
}

// newBrowser starts headless Chromium for one test, bounded by timeout;
// screenshots go to t.TempDir() (or $TAGWATCH_SCREENSHOTS).
func newBrowser(t *testing.T, base string, timeout time.Duration) *browser {
	t.Helper()
	shots := t.TempDir()
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		shots = dir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return &browser{t: t, ctx: bctx, base: base, shots: shots}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// browser runs bounded steps in one tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

// stepTimeout bounds every step.
const stepTimeout = 15 * time.Second

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, b.body())
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.run("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func (b *browser) fill(sel, value string) {
	b.t.Helper()
	clear := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { document.querySelector(%q).value = ""; return true; })()`, sel))(ctx, t)
		return err
	})
	b.run("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), clear, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// visibleText is the element's rendered text ("" when it is not there),
// which is what a user reads: hidden elements and markup do not count.
func visibleText(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return b.eval(visibleText(sel))
}

// eval evaluates a JavaScript expression that gives a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

func (b *browser) body() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// waitText waits until the element's visible text contains want. Pages
// change under it (form posts navigate), so errors mid-navigation retry.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	b.waitFor(sel+" shows "+want, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](visibleText(sel)))
		return err == nil && strings.Contains(s, want)
	})
}

func (b *browser) waitGone(sel string) {
	b.t.Helper()
	b.waitFor(sel+" is gone", func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.readyState === "complete" && !document.querySelector(%q)`, sel)))
		return err == nil && gone
	})
}

func (b *browser) waitFor(what string, ok func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for !ok() {
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.t.Fatalf("waiting until %s: timed out\npage text:\n%s", what, b.body())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the whole page as a PNG.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// TestBrowserNotifications opens Settings → Notifications with a webhook
// notifier, tests it from its tile, and checks that the receiver got the
// test message and that the url's token is not in the page; then adds a
// webhook notifier through the form, tests it, and deletes it.
func TestBrowserNotifications(t *testing.T) {
	requireChromium(t)
	start := time.Now()

	recv := startReceiver(t, false)
	n := startNotifiers(t, map[string]map[string]string{"hook": hookSettings(recv)})
	st := storetest.Open(t)
	ts := serve(t, &web.Server{Store: st, Registries: defaultLive(t), Log: testLog(t, slog.LevelWarn), Notifiers: n})

	b := newBrowser(t, ts.URL, 30*time.Second)
	hook := `article[data-name="hook"]`

	// From the Registries tab to Notifications.
	b.open("/settings/registries")
	b.click(`nav.tabs a[href="/settings/notifications"]`)
	b.waitText(hook, "hook")
	txt := b.text(hook)
	for _, s := range []string{"Webhook (JSON)", "config file", "read-only", recv.URL + "/***", "minor", "^team/", "Not tested yet"} {
		if !strings.Contains(txt, s) {
			t.Errorf("the tile lacks %q:\n%s", s, txt)
		}
	}

	// Test: the tile says ok, the receiver has the message.
	b.click(hook + ` form[action$="/test"] button`)
	b.waitText(".flash", "Tested hook: the test message was sent.")
	b.waitText(hook+" .test-line.ok", "Test ok")
	got := recv.got()
	if len(got) != 1 || !got[0].Test || !strings.HasPrefix(got[0].Title, "[test]") {
		t.Errorf("the receiver got %+v", got)
	}
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, hookToken) {
		t.Error("the page holds the webhook's token")
	}
	b.screenshot("notifications")

	// Add a webhook notifier through the form: a mistake first, shown
	// beside its field, then saved.
	uiRecv := startReceiver(t, false)
	b.click("#add-notifier")
	b.fill("#f-name", "team")
	b.fill("#f-url", uiRecv.URL+"/team/"+uiToken)
	b.click(`#notifier-form button[type="submit"]`)
	b.waitText(`[data-error-for="type"]`, "an http(s) url needs type")
	b.screenshot("notifier-form")
	b.fill("#f-url", uiRecv.URL+"/team/"+uiToken)
	b.eval(`(() => { document.querySelector("#f-type").value = "webhook"; document.querySelector("#f-threshold").value = "major"; return ""; })()`)
	b.click(`#notifier-form button[type="submit"]`)
	team := `article[data-name="team"]`
	b.waitText(".flash", "Saved team")
	txt = b.text(team)
	for _, s := range []string{"Webhook (JSON)", "UI", "major", uiRecv.URL + "/***", "Not tested yet"} {
		if !strings.Contains(txt, s) {
			t.Errorf("the new tile lacks %q:\n%s", s, txt)
		}
	}
	if strings.Contains(txt, "read-only") {
		t.Error("the UI notifier is read-only")
	}

	// Test it from its tile.
	b.click(team + ` form[action$="/test"] button`)
	b.waitText(team+" .test-line.ok", "Test ok")
	if got := uiRecv.got(); len(got) != 1 || got[0].Notifier != "team" || !got[0].Test {
		t.Errorf("the new notifier's receiver got %+v", got)
	}
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, uiToken) {
		t.Error("the page holds the new notifier's token")
	}

	// Delete it, confirming inside the page.
	b.click(team + ` details.confirm summary`)
	b.click(team + ` form[action$="/delete"] button`)
	b.waitText(".flash", "Deleted team.")
	b.waitGone(team)
	if recs, err := st.Notifiers(); err != nil || len(recs) != 0 {
		t.Errorf("stored after delete: %+v, %v", recs, err)
	}

	t.Logf("the notifications browser flow took %v", time.Since(start))
}
