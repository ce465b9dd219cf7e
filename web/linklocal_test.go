package web_test

import (
	"context"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// linkLocal is a link-local address no cloud uses for its metadata
// service: a test may try to reach it when allowed without asking any real
// metadata service for anything.
const linkLocal = "169.254.77.1:5000"

func startNotifier(t *testing.T, name string, settings map[string]string, o notify.Options) *notify.Notifiers {
	t.Helper()
	sp, err := notify.Parse(name, settings)
	if err != nil {
		t.Fatal(err)
	}
	return runNotifiers(t, []*notify.Spec{sp}, o)
}

// TestTestsRefuseLinkLocal: a connection test (registry, saved or not, and
// notifier) to a link-local or cloud metadata address is refused by
// tagwatch when it connects, and says which setting allows it; with
// web.allowlinklocal the test goes out (whatever answers, tagwatch does
// not refuse it).
func TestTestsRefuseLinkLocal(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "refused", true: "allowed"}[allow], func(t *testing.T) {
			t.Parallel()
			n := startNotifier(t, "meta", map[string]string{"url": "http://" + linkLocal + "/hook", "type": "webhook"},
				notify.Options{AllowLinkLocalTests: allow, Timeout: 3 * time.Second})
			f := newFixtureWith(t, config.WebAuth{}, nil, n, func(f *fixture) { f.srv.AllowLinkLocal = allow })
			targets := []string{"http://" + linkLocal, "http://[fe80::1]:5000", "http://[fd00:ec2::254]", "http://100.100.100.200", "http://169.254.169.254"}
			if allow {
				targets = targets[:1] // the one address safe to try
			}
			for _, u := range targets {
				res, body := f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "values": map[string]string{"url": u}})
				want(t, res, body, http.StatusOK)
				tr := decode[apiTest](t, body)
				switch {
				case tr.OK:
					t.Errorf("%s: the test passed: %+v", u, tr)
				case !allow && (tr.Class != "blocked" || !strings.Contains(tr.Error, "is a link-local or cloud metadata address, which tests may not reach") ||
					!strings.Contains(tr.Error, "web.allowlinklocal: true")):
					t.Errorf("%s: %+v, want a refusal naming web.allowlinklocal", u, tr)
				case allow && tr.Class == "blocked":
					t.Errorf("%s: refused though allowed: %+v", u, tr)
				}
				t.Logf("%s: %s", u, tr.Error)
			}
			// A saved registry's test, as the tile's button does it.
			res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "meta", "values": map[string]string{"url": "http://" + linkLocal}})
			want(t, res, body, http.StatusCreated)
			res, body = f.do("POST", "/api/v1/registries/custom/meta/test", nil)
			want(t, res, body, http.StatusOK)
			if tr := decode[apiTest](t, body); tr.OK || (tr.Class == "blocked") == allow {
				t.Errorf("saved: %+v", tr)
			}
			// A notifier's test.
			res, body = f.do("POST", "/api/v1/notifiers/meta/test", nil)
			want(t, res, body, http.StatusBadGateway)
			if tr := decode[apiTest](t, body); (tr.Class == "blocked") == allow || !allow && !strings.Contains(tr.Error, "web.allowlinklocal") {
				t.Errorf("notifier: %s", body)
			}
		})
	}
}

// TestScheduledChecksReachLinkLocal: the guard is for tests only; the
// daemon's checks of a registry on a link-local address go out.
func TestScheduledChecksReachLinkLocal(t *testing.T) {
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{
		{Kind: "custom", Name: "ll", Source: registries.SourceFile, Values: registries.Values{"url": "http://" + linkLocal}},
	}, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := registries.ParseImage(linkLocal + "/team/app:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rs := (&watcher.Checker{Registries: func() *registries.Set { return set }}).Run(ctx, []watcher.Target{{Image: img}})
	if rs[0].Error == "" || strings.Contains(rs[0].Error, "link-local") {
		t.Errorf("a scheduled check: %q, want a failure that is not tagwatch's refusal", rs[0].Error)
	}
	t.Logf("scheduled check: %s", rs[0].Error)
}

// TestSameWordsEverywhere: one failed registry, one sentence, in every
// place a person reads it: the check's dashboard row and /api/v1/images
// (from a real cycle of the daemon), the tile's test (API and page).
// cmd/tagwatch's TestCheckSameWords shows `tagwatch check` says it too.
func TestSameWordsEverywhere(t *testing.T) {
	reg := startRegistry(t)
	img, err := registries.ParseImage(reg.Host + "/team/app:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var d *watcher.Daemon
	f := newFixtureWith(t, config.WebAuth{}, nil, nil, func(f *fixture) {
		d = listDaemon(f.st, f.live, f.srv.Log, watcher.StaticImage{Image: img})
		f.srv.Daemon = d
	})
	res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "mine",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": wrongPassword}})
	want(t, res, body, http.StatusCreated)
	sentence := reg.Host + " refused the credentials of custom.mine (401). Check login and password. Use what docker login accepts for this registry: often a username or e-mail with an access token as the password."

	runDaemon(t, d)
	checkedOne(t, f.st)
	res, body = f.do("GET", "/api/v1/images", nil)
	want(t, res, body, http.StatusOK)
	row := decode[struct{ Images []store.Image }](t, body).Images[0]
	if row.Error != sentence || !strings.HasPrefix(row.ErrorDetail, sentence+" (list tags of "+reg.Host+"/team/app via custom.mine after ") ||
		!strings.HasSuffix(row.ErrorDetail, ": GET /v2/team/app/tags/list answered 401 Unauthorized [UNAUTHORIZED])") {
		t.Errorf("API image:\n error  %q\n detail %q\nwant    %q", row.Error, row.ErrorDetail, sentence)
	}
	res, dash := f.do("GET", "/", nil)
	want(t, res, dash, http.StatusOK)
	if !strings.Contains(dash, html.EscapeString(sentence)) {
		t.Errorf("the dashboard row lacks %q", sentence)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", nil)
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); tr.Error != sentence || tr.Status != 401 {
		t.Errorf("the tile's test: %+v", tr)
	}
	res, tiles := f.do("GET", "/settings/registries", nil)
	want(t, res, tiles, http.StatusOK)
	if !strings.Contains(tiles, html.EscapeString(sentence)) {
		t.Errorf("the tile lacks %q", sentence)
	}
}
