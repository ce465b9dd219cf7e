package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// TestNotifierOutboxAPI: a message the receiver fails is listed in the
// notifier's outbox, its error without the url's secrets (the receiver
// echoes its path, token and all); Retry now answers how many messages go
// again, through the API and the form.
func TestNotifierOutboxAPI(t *testing.T) {
	bad := startReceiver(t, true)
	badURL, _ := url.Parse(bad.URL)
	n := startNotifiers(t, map[string]map[string]string{
		"broken": {"url": "http://user:" + brokenPassword + "@" + badURL.Host + "/x/" + brokenToken, "type": "webhook"},
	})
	f := newFixtureWith(t, config.WebAuth{}, nil, n)
	n.Notify([]store.HistoryEntry{{At: time.Now().UTC(), Key: "k", Reference: "team/app:1.0.0", Update: "minor", FromTag: "1.0.0", ToTag: "1.1.0"}})
	deadline := time.Now().Add(10 * time.Second)
	for n.Status()[0].Undelivered != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", n.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}

	res, body := f.do("GET", "/api/v1/notifiers/broken/outbox", nil)
	want(t, res, body, http.StatusOK)
	msgs := decode[struct {
		Messages []store.OutboxMessage `json:"messages"`
	}](t, body).Messages
	if len(msgs) != 1 || msgs[0].State != store.OutboxFailed || msgs[0].Tries != 1 || !strings.Contains(msgs[0].LastError, "500") ||
		len(msgs[0].Updates) != 1 || msgs[0].Updates[0].ToTag != "1.1.0" {
		t.Fatalf("outbox: %s", body)
	}
	res, body = f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, `"undelivered": 1`) || !strings.Contains(body, `"queued": 0`) {
		t.Errorf("the list does not count the outbox: %s", body)
	}
	res, body = f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`class="outbox"`, "team/app:1.0.0 → 1.1.0", `action="/settings/notifications/broken/retry"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the tile lacks %q", s)
		}
	}

	res, body = f.do("POST", "/api/v1/notifiers/broken/outbox/retry", nil)
	want(t, res, body, http.StatusOK)
	if got := decode[map[string]int](t, body); got["messages"] != 1 {
		t.Errorf("retry answer: %s", body)
	}
	res, body = f.do("POST", "/settings/notifications/broken/retry", url.Values{})
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/settings/notifications?retried=broken#notifier-broken" {
		t.Errorf("redirect to %q", loc)
	}
	_, body = f.do("GET", "/settings/notifications?retried=broken", nil)
	if !strings.Contains(body, "Retrying the notifications of broken now.") {
		t.Error("no flash after Retry now")
	}
	for _, p := range []string{"/api/v1/notifiers/nope/outbox/retry", "/settings/notifications/nope/retry"} {
		res, body = f.do("POST", p, nil)
		want(t, res, body, http.StatusNotFound)
	}
	res, body = f.do("GET", "/api/v1/notifiers/nope/outbox", nil)
	want(t, res, body, http.StatusNotFound)
	res, body = f.do("POST", "/api/v1/notifiers/broken/outbox/retry", nil, "Sec-Fetch-Site", "cross-site")
	want(t, res, body, http.StatusForbidden)

	// A server without notifiers.
	f = newFixture(t, config.WebAuth{}, nil)
	res, body = f.do("GET", "/api/v1/notifiers/broken/outbox", nil)
	want(t, res, body, http.StatusServiceUnavailable)
	// Secrets: checked in every body and the log by the fixtures' cleanup.
}

// TestBackupAPI: the download is the data file, whole, as an attachment,
// behind the API's authentication.
func TestBackupAPI(t *testing.T) {
	f := newFixture(t, config.WebAuth{Token: "backup-token-abcdef"}, nil)
	if err := f.st.PutImages([]store.Image{{Key: "k", Reference: "team/app:1.0.0"}}); err != nil {
		t.Fatal(err)
	}
	res, body := f.do("GET", "/api/v1/backup", nil)
	want(t, res, body, http.StatusUnauthorized)
	f.header.Set("Authorization", "Bearer backup-token-abcdef")
	res, body = f.do("GET", "/api/v1/backup", nil)
	want(t, res, body, http.StatusOK)
	size, err := f.st.Size()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(body)) != size || res.ContentLength != size || res.Header.Get("Cache-Control") != "no-store" ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), `attachment; filename="tagwatch-`) {
		t.Errorf("download: %d bytes of %d, headers %v", len(body), size, res.Header)
	}
	res, body = f.do("GET", "/settings/backup", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`href="/api/v1/backup"`, "tagwatch store backup FILE", "To restore", `aria-current="page">Backup`,
		"<dt>Secret key</dt><dd>" + store.KeyFile(f.st.Path()) + ": not in the backup", "· about " + registries.Bytes(size)} {
		if !strings.Contains(body, s) {
			t.Errorf("the Backup page lacks %q", s)
		}
	}
}
