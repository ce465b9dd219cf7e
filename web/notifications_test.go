package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/notify"
)

// The notifiers' secrets: a token in a webhook's path, a password in
// another's userinfo and a token in its path. None may come back.
const (
	hookToken      = "HookT0kenAbcdef0123456789xyz"
	brokenPassword = "br0ken-Pa55"
	brokenToken    = "BrokenT0ken9876543210abcdefg"
)

// receiver is a webhook endpoint that records what it is sent, or fails.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []notify.Payload
}

func startReceiver(t *testing.T, fail bool) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if fail {
			// Echo the request path, token included, as careless services do.
			http.Error(w, "upstream exploded handling "+req.URL.String(), http.StatusInternalServerError)
			return
		}
		var p notify.Payload
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.payloads = append(r.payloads, p)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []notify.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Payload(nil), r.payloads...)
}

// startNotifiers runs notifiers (name → settings) on a store of their own,
// without retries.
func startNotifiers(t *testing.T, settings map[string]map[string]string) *notify.Notifiers {
	t.Helper()
	var specs []*notify.Spec
	for _, name := range []string{"hook", "broken"} {
		v, ok := settings[name]
		if !ok {
			continue
		}
		sp, err := notify.Parse(name, v)
		if err != nil {
			t.Fatalf("notifier %s: %v", name, err)
		}
		specs = append(specs, sp)
	}
	return runNotifiers(t, specs, notify.Options{Timeout: 5 * time.Second})
}

// runNotifiers runs specs with o on a store of their own, without retries
// or a log, until the test ends.
func runNotifiers(t *testing.T, specs []*notify.Spec, o notify.Options) *notify.Notifiers {
	t.Helper()
	o.Log, o.Backoff = slog.New(slog.DiscardHandler), []time.Duration{}
	n, err := notify.New(specs, storetest.Open(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// hookSettings is a webhook with a token in its path, at the receiver.
func hookSettings(r *receiver) map[string]string {
	return map[string]string{"url": r.URL + "/hook/" + hookToken, "type": "webhook", "threshold": "minor", "images": "^team/", "batch": "true"}
}

type apiNotifier struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Service   string `json:"service"`
	Source    string `json:"source"`
	URL       string `json:"url"`
	Threshold string `json:"threshold"`
	Images    string `json:"images"`
	Batch     bool   `json:"batch"`
	Sent      int64  `json:"sent"`
	Failed    int64  `json:"failed"`
	Queued    int    `json:"queued"`
	Test      *struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"test"`
}

func TestNotifiersAPIAndPage(t *testing.T) {
	good, bad := startReceiver(t, false), startReceiver(t, true)
	badURL, _ := url.Parse(bad.URL)
	n := startNotifiers(t, map[string]map[string]string{
		"hook":   hookSettings(good),
		"broken": {"url": "http://user:" + brokenPassword + "@" + badURL.Host + "/x/" + brokenToken, "type": "webhook"},
	})
	f := newFixtureWith(t, config.WebAuth{}, nil, n)

	// The list: settings and state, urls redacted.
	res, body := f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	list := decode[struct {
		Notifiers []apiNotifier `json:"notifiers"`
	}](t, body).Notifiers
	if len(list) != 2 || list[0].Name != "hook" || list[1].Name != "broken" {
		t.Fatalf("notifiers: %s", body)
	}
	h := list[0]
	if h.Type != "webhook" || h.Service != "webhook" || h.Source != "file" || h.Threshold != "minor" || h.Images != "^team/" || !h.Batch || h.Test != nil {
		t.Errorf("hook: %+v", h)
	}
	if wantURL := good.URL + "/***"; h.URL != wantURL {
		t.Errorf("hook url %q, want %q", h.URL, wantURL)
	}
	if !strings.Contains(list[1].URL, "***@") || list[1].Threshold != "all" || list[1].Batch {
		t.Errorf("broken: %+v", list[1])
	}

	// Test: the receiver gets the sample update, marked a test.
	res, body = f.do("POST", "/api/v1/notifiers/hook/test", nil)
	want(t, res, body, http.StatusOK)
	if got := decode[map[string]any](t, body); got["ok"] != true || len(got) != 1 {
		t.Errorf("test answer: %s", body)
	}
	got := good.got()
	if len(got) != 1 || !got[0].Test || got[0].Notifier != "hook" || !strings.HasPrefix(got[0].Title, "[test]") {
		t.Fatalf("the receiver got %+v", got)
	}

	// A failing receiver: 502 and its error, secrets removed.
	res, body = f.do("POST", "/api/v1/notifiers/broken/test", nil)
	want(t, res, body, http.StatusBadGateway)
	if e := decode[apiError](t, body); !strings.Contains(e.Error, "failed with a server error (500 Internal Server Error) for notifier broken") {
		t.Errorf("failed test error: %s", body)
	} else {
		t.Logf("failed test: %s", e.Error)
	}

	// An unknown notifier.
	res, body = f.do("POST", "/api/v1/notifiers/nope/test", nil)
	want(t, res, body, http.StatusNotFound)
	if decode[apiError](t, body).Error == "" {
		t.Errorf("404 without an error: %s", body)
	}

	// The outcomes show in the list, and the counters are left alone.
	_, body = f.do("GET", "/api/v1/notifiers", nil)
	list = decode[struct {
		Notifiers []apiNotifier `json:"notifiers"`
	}](t, body).Notifiers
	if list[0].Test == nil || !list[0].Test.OK || list[1].Test == nil || list[1].Test.OK || list[1].Test.Error == "" {
		t.Errorf("tests not recorded: %s", body)
	}
	if list[0].Sent != 0 || list[1].Failed != 0 {
		t.Errorf("a test changed the counters: %s", body)
	}

	// Cross-origin posts are refused before anything is sent.
	res, body = f.do("POST", "/api/v1/notifiers/hook/test", nil, "Sec-Fetch-Site", "cross-site")
	want(t, res, body, http.StatusForbidden)
	res, body = f.do("POST", "/settings/notifications/hook/test", url.Values{}, "Origin", "https://evil.example")
	want(t, res, body, http.StatusForbidden)
	if len(good.got()) != 1 {
		t.Error("a cross-origin test reached the receiver")
	}

	// The page: a tile per notifier, the outcomes, no inline script.
	res, body = f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`id="notifier-hook"`, `id="notifier-broken"`, "Webhook (JSON)", "config file", "read-only",
		good.URL + "/***", "^team/", "minor", "Test ok", "Test failed", `action="/settings/notifications/hook/test"`,
		`<a href="/settings/notifications" aria-current="page">Notifications</a>`} {
		if !strings.Contains(body, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("inline script")
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	_, body = f.do("GET", "/settings/registries", nil)
	if !strings.Contains(body, `<a href="/settings/notifications">Notifications</a>`) {
		t.Error("the Registries tab does not link to Notifications")
	}

	// The Test button without JavaScript: post, redirect, flash.
	res, body = f.do("POST", "/settings/notifications/hook/test", url.Values{})
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/settings/notifications?tested=hook#notifier-hook" {
		t.Errorf("redirect to %q", loc)
	}
	if len(good.got()) != 2 {
		t.Errorf("the receiver got %d messages, want 2", len(good.got()))
	}
	_, body = f.do("GET", "/settings/notifications?tested=hook", nil)
	if !strings.Contains(body, "Tested hook: the test message was sent.") {
		t.Error("no flash after the test")
	}
	res, body = f.do("POST", "/settings/notifications/broken/test", url.Values{})
	want(t, res, body, http.StatusSeeOther)
	_, body = f.do("GET", "/settings/notifications?tested=broken", nil)
	if !strings.Contains(body, "the test message was not sent") {
		t.Error("no failure flash")
	}
	res, body = f.do("POST", "/settings/notifications/nope/test", url.Values{})
	want(t, res, body, http.StatusNotFound)
	// Secrets: checked in every body and the log by the fixture's cleanup.
}

func TestNotifiersEmptyAndUnavailable(t *testing.T) {
	f := newFixtureWith(t, config.WebAuth{}, nil, startNotifiers(t, nil))
	res, body := f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	if strings.Join(strings.Fields(body), "") != `{"notifiers":[]}` {
		t.Errorf("empty list: %s", body)
	}
	res, body = f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{"No notifier is configured", "notifiers:", `url: "ntfy://ntfy.sh/mytopic"`, "threshold: minor"} {
		if !strings.Contains(body, s) {
			t.Errorf("the empty state lacks %q", s)
		}
	}

	// A server without notifiers.
	f = newFixture(t, config.WebAuth{}, nil)
	res, body = f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "Notifications are not available") {
		t.Errorf("no unavailable notice:\n%s", body)
	}
	res, body = f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusServiceUnavailable)
	res, body = f.do("POST", "/api/v1/notifiers/hook/test", nil)
	want(t, res, body, http.StatusServiceUnavailable)
}
