package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"html"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// marker is what a hostile target writes in every body and header it can.
// It must never come back from tagwatch: not in a response, a page, a
// stored tile or a log line above debug.
const marker = "MARKER-7d1e3f9a"

// hostileRegistry answers like a registry that wants to make tagwatch
// relay what it says. mode picks the way it fails.
func hostileRegistry(t *testing.T, mode string) *httptest.Server {
	t.Helper()
	errBody := `{"errors":[{"code":"` + marker + `","message":"` + marker + ` message","detail":{"` + marker + `":"` + marker + `"}}]}`
	var srv *httptest.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Marker", marker)
		hd.Set("Server", marker)
		hd.Set("Warning", `299 - "`+marker+`"`)
		hd.Set("Docker-Distribution-Api-Version", "registry/2.0")
		hd.Set("Content-Type", "application/json")
		bearer := `Bearer realm="` + srv.URL + `/token/` + marker + `",service="` + marker + `",scope="` + marker + `",error="` + marker + `"`
		token := strings.HasPrefix(r.URL.Path, "/token/")
		switch {
		case mode == "basic-401":
			hd.Set("WWW-Authenticate", `Basic realm="`+marker+`"`)
			w.WriteHeader(http.StatusUnauthorized)
		case mode == "bearer-401" && token:
			w.WriteHeader(http.StatusUnauthorized)
		case mode == "token-garbage" && token:
			hd.Set("Content-Type", "text/plain")
			fmt.Fprint(w, marker+" is not a token")
			return
		case mode == "token-500" && token:
			w.WriteHeader(http.StatusInternalServerError)
		case mode == "bearer-401" || mode == "token-garbage" || mode == "token-500":
			hd.Set("WWW-Authenticate", bearer)
			w.WriteHeader(http.StatusUnauthorized)
		case mode == "realm-nxdomain":
			hd.Set("WWW-Authenticate", `Bearer realm="http://`+strings.ToLower(marker)+`.invalid/token",service="`+marker+`"`)
			w.WriteHeader(http.StatusUnauthorized)
		case mode == "404" && r.URL.Path != "/v2/":
			w.WriteHeader(http.StatusNotFound)
		case mode == "500":
			w.WriteHeader(http.StatusInternalServerError)
		case mode == "garbage" && r.URL.Path != "/v2/":
			hd.Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>"+marker+"</body></html>")
			return
		case mode == "tags" && strings.HasSuffix(r.URL.Path, "/tags/list"):
			fmt.Fprint(w, `{"name":"`+marker+`","tags":["`+marker+`","1.0.0"]}`)
			return
		case mode == "tags" && r.Method == http.MethodHead:
			hd.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("ab", 32))
			hd.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			return
		case mode == "redirect" && r.URL.Path != "/v2/":
			// To the cloud metadata service, as a hostile registry would.
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/"+marker, http.StatusFound)
			return
		case mode == "tls":
			// Reached only with verification off; the certificate is the point.
		default:
			fmt.Fprint(w, "{}")
			return
		}
		fmt.Fprint(w, errBody)
	})
	if mode == "tls" {
		srv = httptest.NewUnstartedServer(h)
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes tagwatch refuses
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{markerCert(t)}}
		srv.StartTLS()
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// markerCert is a self-signed certificate whose names are the marker: Go's
// x509 errors quote them ("certificate is valid for …, not …").
func markerCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: marker, Organization: []string{marker}},
		DNSNames:     []string{strings.ToLower(marker) + ".invalid"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestHostileRegistryNeverRelayed points a saved registry at a server that
// writes a marker in every body and header, failing in each way a registry
// can, and goes through every place tagwatch reports on it: the saved
// test (API and form), the test of unsaved settings, the tile and its API,
// a real check cycle's dashboard row and /api/v1/images. The marker never
// comes back, and the reason still says what is wrong.
func TestHostileRegistryNeverRelayed(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		class string
		says  string // in the reason, after the host
	}{
		{"basic-401", "credentials", " refused the credentials of custom."},
		{"bearer-401", "credentials", " refused the credentials of custom."},
		{"token-garbage", "protocol", " sent an answer tagwatch cannot read (custom."},
		{"token-500", "server-error", " failed with a server error (500 Internal Server Error) for custom."},
		{"realm-nxdomain", "dns", " sent tagwatch to has a name that does not resolve (custom."},
		{"404", "not-found", "404: no such repository team/app on "},
		{"500", "server-error", " failed with a server error (500 Internal Server Error) for custom."},
		{"garbage", "protocol", " sent an answer tagwatch cannot read (custom."},
		// go-containerregistry refuses a redirect to a link-local address
		// itself; tagwatch's dial guard would have too.
		{"redirect", "blocked", " redirected tagwatch to a private or link-local address (custom."},
		{"tls", "tls", " is not valid for 127.0.0.1 (custom."},
		{"tags", "", ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			hostile := hostileRegistry(t, tc.mode)
			host := strings.TrimPrefix(strings.TrimPrefix(hostile.URL, "http://"), "https://")
			img, err := registries.ParseImage(host + "/team/app:1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			var d *watcher.Daemon
			f := newFixtureWith(t, config.WebAuth{}, nil, nil, func(f *fixture) {
				d = listDaemon(f.st, f.live, f.srv.Log, watcher.StaticImage{Image: img})
				f.srv.Daemon = d
			})
			defer checkNoMarker(t, f)
			values := map[string]string{"url": hostile.URL, "login": "alice", "password": alicePassword}
			res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "hostile", "values": values})
			want(t, res, body, http.StatusCreated)

			var reasons []apiTest
			for _, req := range []struct {
				path string
				body any
			}{
				{"/api/v1/registries/custom/hostile/test", nil},
				{"/api/v1/registries/custom/hostile/test", map[string]string{"image": host + "/team/app"}},
				{"/api/v1/registries/test", map[string]any{"kind": "custom", "values": values, "image": host + "/team/app"}},
			} {
				res, body := f.do("POST", req.path, req.body)
				want(t, res, body, http.StatusOK)
				reasons = append(reasons, decode[apiTest](t, body))
			}
			res, body = f.do("POST", "/settings/registries/custom/hostile/test", url.Values{})
			if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusOK {
				t.Errorf("the form's test: %d %s", res.StatusCode, body)
			}
			res, body = f.do("GET", "/api/v1/registries/custom/hostile", nil)
			want(t, res, body, http.StatusOK)
			tile := decode[apiRegistry](t, body)
			res, tilePage := f.do("GET", "/settings/registries", nil)
			want(t, res, tilePage, http.StatusOK)

			// A real cycle: the dashboard and the images API.
			runDaemon(t, d)
			row := checkedOne(t, f.st)
			res, body = f.do("GET", "/api/v1/images", nil)
			want(t, res, body, http.StatusOK)
			res, dash := f.do("GET", "/", nil)
			want(t, res, dash, http.StatusOK)

			if tc.mode == "tags" {
				for _, r := range reasons[1:] {
					if !r.OK || r.TagCount == nil || *r.TagCount != 2 {
						t.Errorf("a registry that answers: %+v", r)
					}
				}
				return
			}
			for i, r := range reasons {
				if i == 0 && (tc.mode == "404" || tc.mode == "garbage" || tc.mode == "redirect") {
					// The /v2/ handshake answers well in these modes; only
					// the repository's calls fail.
					continue
				}
				if r.OK || r.Class != tc.class || !strings.Contains(r.Error, tc.says) || !strings.Contains(r.Error, host) && tc.mode != "redirect" ||
					!strings.HasPrefix(r.ErrorDetail, r.Error) || r.TookMS == nil {
					t.Errorf("test %d: %+v\nwant class %s, a reason saying %q", i, r, tc.class, tc.says)
				}
			}
			// The tile keeps the last test: the form's, without an image.
			if tile.Test == nil || (tile.Test.Error == "") != (tc.mode == "404" || tc.mode == "garbage" || tc.mode == "redirect") ||
				!strings.Contains(tilePage, html.EscapeString(tile.Test.Error)) {
				t.Errorf("the tile: %+v", tile.Test)
			}
			if row.Error == "" || !strings.Contains(row.Error, tc.says) || !strings.Contains(dash, html.EscapeString(row.Error)) || !strings.HasPrefix(row.ErrorDetail, row.Error) {
				t.Errorf("the dashboard row: %q / %q", row.Error, row.ErrorDetail)
			}
			t.Logf("%s: %s", tc.mode, row.ErrorDetail)
		})
	}
}

// checkNoMarker fails when the marker is in a response the fixture saw, or
// in a log line above debug (the debug log may quote the target: that is
// where what it said goes).
func checkNoMarker(t *testing.T, f *fixture) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bodies {
		if strings.Contains(b, marker) || strings.Contains(b, strings.ToLower(marker)) {
			t.Errorf("a response holds the target's marker:\n%s", b)
		}
	}
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), strings.ToLower(marker)) && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("a log line holds the target's marker:\n%s", line)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", f.logs.String())
	}
}

// hostileReceiver is a notification endpoint that refuses every message
// with the marker in its body and headers.
func hostileReceiver(t *testing.T, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Marker", marker)
		w.Header().Set("WWW-Authenticate", `Basic realm="`+marker+`"`)
		if status == http.StatusFound {
			http.Redirect(w, r, "/"+marker, status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"`+marker+`","message":"`+marker+` `+r.URL.String()+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHostileReceiverNeverRelayed: a notifier's test against a receiver
// that answers with the marker (webhook, Apprise, ntfy and Gotify through
// shoutrrr) reports a status and a reason, never the marker: not in the
// test's answer, the notifiers API, the page or the log above debug.
func TestHostileReceiverNeverRelayed(t *testing.T) {
	r500 := hostileReceiver(t, http.StatusInternalServerError)
	r401 := hostileReceiver(t, http.StatusUnauthorized)
	r404 := hostileReceiver(t, http.StatusNotFound)
	r302 := hostileReceiver(t, http.StatusFound)
	hostOf := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	cases := []struct {
		name, url, typ, says string
		status               int
	}{
		{"hook500", r500.URL + "/hook", "webhook", hostOf(r500) + " failed with a server error (500 Internal Server Error) for notifier hook500", 500},
		{"hook401", r401.URL + "/hook", "webhook", hostOf(r401) + " refused the message of notifier hook401 (401). Check the token or password in its url.", 401},
		{"apprise404", r404.URL + "/notify/key", "apprise", "404: " + hostOf(r404) + " has nothing at that url (notifier apprise404)", 404},
		{"hook302", r302.URL + "/hook", "webhook", hostOf(r302) + " answered 302 Found, a redirect tagwatch does not follow (notifier hook302). Check the url.", 302},
		// ntfy and Gotify (through shoutrrr) read the receiver's JSON error
		// as their own answer, the status lost: the reason says so without
		// quoting what the receiver wrote.
		{"ntfy500", "ntfy://" + hostOf(r500) + "/topic?scheme=http", "", hostOf(r500) + " did not take the message of notifier ntfy500; the daemon's debug log has what it said.", 0},
		{"gotify401", "gotify://" + hostOf(r401) + "/AbCdEfGhIjKlMnO?disabletls=yes", "", hostOf(r401) + " did not take the message of notifier gotify401; the daemon's debug log has what it said.", 0},
	}
	var specs []*notify.Spec
	for _, c := range cases {
		v := map[string]string{"url": c.url}
		if c.typ != "" {
			v["type"] = c.typ
		}
		sp, err := notify.Parse(c.name, v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		specs = append(specs, sp)
	}
	n := runNotifiers(t, specs, notify.Options{Timeout: 5 * time.Second})
	f := newFixtureWith(t, config.WebAuth{}, nil, n)
	for _, c := range cases {
		res, body := f.do("POST", "/api/v1/notifiers/"+c.name+"/test", nil)
		want(t, res, body, http.StatusBadGateway)
		got := decode[struct {
			OK     bool   `json:"ok"`
			Status int    `json:"status"`
			Error  string `json:"error"`
			TookMS *int64 `json:"tookMs"`
		}](t, body)
		if got.OK || !strings.Contains(got.Error, c.says) || (c.status != 0 && got.Status != c.status) || got.TookMS == nil {
			t.Errorf("%s: %s\nwant a reason saying %q", c.name, body, c.says)
		}
		res, body = f.do("POST", "/settings/notifications/"+c.name+"/test", url.Values{})
		if res.StatusCode != http.StatusSeeOther {
			t.Errorf("%s: the form's test: %d %s", c.name, res.StatusCode, body)
		}
	}
	res, body := f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	res, page := f.do("GET", "/settings/notifications", nil)
	want(t, res, page, http.StatusOK)
	if !strings.Contains(page, "failed with a server error (500 Internal Server Error) for notifier hook500") {
		t.Error("the page does not show the reason")
	}
	checkNoMarker(t, f)
}
