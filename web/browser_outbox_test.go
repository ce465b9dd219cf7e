package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserOutboxAndBackup: a notification the receiver refused shows on
// its tile as undelivered, with the status and reason (never the
// receiver's words); Retry now sends it
// once the receiver takes it. Then Settings → Backup downloads a copy of
// the data file from the page.
func TestBrowserOutboxAndBackup(t *testing.T) {
	requireChromium(t)
	var refuse atomic.Bool
	refuse.Store(true)
	var accepted atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			http.Error(w, "payload too large for this channel", http.StatusRequestEntityTooLarge)
			return
		}
		accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	st := storetest.Open(t)
	spec, err := notify.Parse("hook", map[string]string{"url": recv.URL + "/hook/" + hookToken, "type": "webhook"})
	if err != nil {
		t.Fatal(err)
	}
	log := testLog(t, slog.LevelWarn)
	n, err := notify.New([]*notify.Spec{spec}, st, notify.Options{Log: log, Backoff: []time.Duration{}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	e := store.HistoryEntry{At: time.Now().UTC(), Key: "k", Reference: "docker.io/library/nginx:1.25.3", Registry: "hub.public",
		Update: "minor", FromTag: "1.25.3", ToTag: "1.26.0"}
	if _, err := st.AppendHistory([]store.HistoryEntry{e}, store.WithOutbox(n.Route)); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for n.Status()[0].Undelivered != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the refused message was not given up: %+v", n.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}

	ts := serve(t, &web.Server{Store: st, Registries: defaultLive(t), Log: log, Notifiers: n})
	b := newBrowser(t, ts.URL, 40*time.Second)
	hook := `article[data-name="hook"]`

	b.open("/settings/notifications")
	b.waitText(hook+" .undelivered", "1")
	txt := b.text(hook + " .outbox")
	for _, s := range []string{"undelivered", "docker.io/library/nginx:1.25.3 → 1.26.0", "1 try", "refused the message of notifier hook (413 Request Entity Too Large)"} {
		if !strings.Contains(txt, s) {
			t.Errorf("the tile's outbox lacks %q:\n%s", s, txt)
		}
	}
	// The reason, never what the receiver wrote (it goes to the debug log).
	if strings.Contains(b.eval(`document.documentElement.outerHTML`), "payload too large for this channel") {
		t.Error("the page relays the receiver's answer")
	}
	if strings.Contains(b.eval(`document.documentElement.outerHTML`), hookToken) {
		t.Error("the page holds the webhook's token")
	}
	b.screenshot("notifications-undelivered")

	refuse.Store(false)
	b.click(hook + ` form[action$="/retry"] button`)
	b.waitText(".flash", "Retrying the notifications of hook now.")
	b.waitFor("the retried message to be sent", func() bool { return accepted.Load() == 1 })
	b.open("/settings/notifications")
	b.waitText(hook+" .sent", "1")
	if got := b.text(hook + " .undelivered"); got != "0" {
		t.Errorf("undelivered after the retry: %q", got)
	}
	if b.eval(`String(document.querySelector('`+hook+` form[action$="/retry"]') === null)`) != "true" {
		t.Error("Retry now is still offered with an empty outbox")
	}

	// Settings → Backup: the page's link downloads the data file.
	b.click(`nav.tabs a[href="/settings/backup"]`)
	b.waitText("h1", "Settings")
	b.waitText("#backup", "To restore")
	href := b.eval(`document.querySelector("#download-backup").getAttribute("href")`)
	if href != "/api/v1/backup" {
		t.Fatalf("the download link goes to %q", href)
	}
	b.screenshot("backup")
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	// What the browser gets from the link: a bbolt file (its magic at
	// offset 16 of the first meta page), as an attachment, whole.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector("#download-backup").href).then(async r => {
		const buf = await r.arrayBuffer();
		const magic = new DataView(buf).getUint32(16, true).toString(16);
		return [r.status, r.headers.get("content-disposition").split(";")[0], r.headers.get("content-length") == buf.byteLength, magic].join(" ");
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != "200 attachment true ed0cdaed" {
		t.Errorf("the download: %q, want status 200, an attachment, whole, with bbolt's magic", got)
	}
}
