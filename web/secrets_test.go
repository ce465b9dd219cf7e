package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/store"
)

// recorder is a receiving server on loopback that records the
// Authorization header of every request before passing it on to a real
// server (a registry, a token server): the attacker's host that a changed
// url points at.
type recorder struct {
	URL string

	mu    sync.Mutex
	auths []string
	hits  int
}

func startRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	r := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		if a := req.Header.Get("Authorization"); a != "" {
			r.auths = append(r.auths, a)
		}
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// saw reports whether any request carried secret in its Authorization
// header, as sent or inside Basic credentials.
func (r *recorder) saw(secret string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.auths {
		if strings.Contains(a, secret) {
			return true
		}
		req := http.Request{Header: http.Header{"Authorization": {a}}}
		if user, pass, ok := req.BasicAuth(); ok && (pass == secret || user == secret) {
			return true
		}
	}
	return false
}

func (r *recorder) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// writeCA writes a CA certificate an attacker might offer as cafile.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not your CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "evil-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretStaysWithItsEndpointAPI changes where a saved custom registry
// points, through the API's save and test, with the password left blank:
// each is refused with the password named, and the receiving server (a
// real registry behind a recorder) never sees the password. With the
// password typed in, it does: the recorder would catch a leak.
func TestSecretStaysWithItsEndpointAPI(t *testing.T) {
	reg := startRegistry(t)
	evilReg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "evil's own"}})
	evil := startRecorder(t, evilReg.URL)
	caFile := writeCA(t)
	f := newFixture(t, config.WebAuth{}, nil)

	res, body := f.do("POST", "/api/v1/registries", map[string]any{
		"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword},
	})
	want(t, res, body, http.StatusCreated)

	for _, tc := range []struct {
		name   string
		values map[string]string
		msg    string
	}{
		{"url to another host", map[string]string{"url": evil.URL, "login": "alice", "password": ""}, "the url changed; enter the password again"},
		{"url and login", map[string]string{"url": evil.URL, "login": "mallory"}, "the url changed; enter the password again"},
		{"url and a CA", map[string]string{"url": evil.URL, "login": "alice", "cafile": caFile}, "the url and cafile changed; enter the password again"},
		{"certificate checks off", map[string]string{"url": reg.URL, "login": "alice", "insecure": "true"}, "the insecure changed; enter the password again"},
		{"a CA of the attacker's", map[string]string{"url": reg.URL, "login": "alice", "cafile": caFile}, "the cafile changed; enter the password again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range []struct{ method, path string }{
				{"POST", "/api/v1/registries/test"},
				{"PUT", "/api/v1/registries/custom/vendor"},
			} {
				b := map[string]any{"values": tc.values}
				if op.method == "POST" {
					b["kind"], b["name"] = "custom", "vendor"
				}
				res, body := f.do(op.method, op.path, b)
				want(t, res, body, http.StatusBadRequest)
				if msg := fieldMsg(t, body, "password"); msg != tc.msg {
					t.Errorf("%s %s: password error %q; want %q", op.method, op.path, msg, tc.msg)
				}
			}
		})
	}
	if evil.saw(alicePassword) {
		t.Fatal("the receiving server saw the saved password")
	}

	// The saved instance is untouched and still works.
	res, body = f.do("GET", "/api/v1/registries/custom/vendor", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Values["url"] != reg.URL || r.Values["cafile"] != "" || r.Values["insecure"] != "" {
		t.Errorf("after the refusals = %+v", r)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/vendor/test", map[string]string{"image": reg.Host + "/team/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("the saved instance after the refusals: %+v", tr)
	}
	// Unchanged endpoint, blank password: still reused.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": reg.URL, "login": "alice"}, "image": reg.Host + "/team/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("unchanged url, blank password: %+v", tr)
	}
	// Clearing the password while moving is fine: nothing is reused.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": evil.URL}, "clear": []string{"password"}})
	want(t, res, body, http.StatusOK)
	if evil.saw(alicePassword) {
		t.Fatal("the receiving server saw the saved password")
	}

	// The control: typed in, the password does reach the new url (and
	// the recorder sees it), so its silence above means something.
	n := evil.requests()
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": evil.URL, "login": "alice", "password": alicePassword}})
	want(t, res, body, http.StatusOK)
	if evil.requests() == n || !evil.saw(alicePassword) {
		t.Fatal("the recorder did not see a password sent to it on purpose")
	}
}

// TestSecretStaysWithItsEndpointForm does the same through the form,
// without JavaScript: Test connection and Save with a changed url and a
// blank password are refused, the error stands under the password, and
// the input no longer offers to keep the saved one.
func TestSecretStaysWithItsEndpointForm(t *testing.T) {
	reg := startRegistry(t)
	evilReg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "evil's own"}})
	evil := startRecorder(t, evilReg.URL)
	f := newFixture(t, config.WebAuth{}, nil)
	res, body := f.do("POST", "/settings/registries/new/custom", url.Values{"name": {"vendor"}, "v.url": {reg.URL},
		"v.login": {"alice"}, "v.password": {alicePassword}, "action": {"save"}})
	want(t, res, body, http.StatusSeeOther)

	// The edit form marks the fields that bind the password, with their saved values.
	res, body = f.do("GET", "/settings/registries/custom/vendor/edit", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`data-endpoint="url" data-saved="` + reg.URL + `"`, `data-endpoint="cafile" data-saved=""`,
		`data-endpoint="insecure"`, `data-stored="password"`, `placeholder="saved · leave blank to keep"`} {
		if !strings.Contains(body, s) {
			t.Errorf("edit form lacks %s", s)
		}
	}
	if strings.Contains(body, `data-endpoint="login"`) {
		t.Error("login is marked as an endpoint")
	}

	errUnderPassword := regexp.MustCompile(`data-error-for="password">the url changed; enter the password again</p>`)
	for _, action := range []string{"test", "save"} {
		res, body := f.do("POST", "/settings/registries/custom/vendor/edit", url.Values{"v.url": {evil.URL},
			"v.login": {"alice"}, "v.password": {""}, "action": {action}})
		want(t, res, body, http.StatusBadRequest)
		if !errUnderPassword.MatchString(body) {
			t.Errorf("%s: no error under the password:\n%s", action, body)
		}
		if strings.Contains(body, "leave blank to keep") {
			t.Errorf("%s: the re-rendered form still offers to keep the saved password", action)
		}
		if !strings.Contains(body, `value="`+evil.URL+`"`) {
			t.Errorf("%s: the typed url was lost", action)
		}
	}
	if evil.requests() != 0 || evil.saw(alicePassword) {
		t.Fatalf("the receiving server was reached (%d requests)", evil.requests())
	}
	// The saved instance still works, and keeps its url.
	res, body = f.do("POST", "/settings/registries/custom/vendor/test", nil)
	want(t, res, body, http.StatusSeeOther)
	res, body = f.do("GET", "/api/v1/registries/custom/vendor", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Values["url"] != reg.URL || r.Test == nil || !r.Test.OK {
		t.Errorf("after the refusals = %+v", r)
	}

	// The control: with the password typed, the form's test reaches the new url.
	res, body = f.do("POST", "/settings/registries/custom/vendor/edit", url.Values{"v.url": {evil.URL},
		"v.login": {"alice"}, "v.password": {alicePassword}, "action": {"test"}})
	want(t, res, body, http.StatusOK)
	if !evil.saw(alicePassword) {
		t.Fatal("the recorder did not see a password sent to it on purpose")
	}
}

// TestGitLabTokenStaysWithItsAuthURL: GitLab's token goes to authurl, for a
// JWT. A changed authurl (to a real token server behind a recorder) with a
// blank token is refused; the token never reaches it.
func TestGitLabTokenStaysWithItsAuthURL(t *testing.T) {
	const pat = "glpat-Sav3d-T0ken-4417"
	reg := regtest.Start(t, regtest.Options{Token: true})
	reg.Issuer.Check = func(_, password string) bool { return password == pat }
	reg.Push(t, "group/app:1.0.0", regtest.Image(t, "gitlab"))
	evilIssuer := regtest.NewIssuer(t, map[string]string{"anyone": "anything"})
	evil := startRecorder(t, evilIssuer.URL)
	f := newFixture(t, config.WebAuth{}, nil)

	res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "gitlab", "name": "work",
		"values": map[string]string{"url": reg.URL, "authurl": reg.Issuer.URL, "token": pat}})
	want(t, res, body, http.StatusCreated)
	res, body = f.do("POST", "/api/v1/registries/gitlab/work/test", map[string]string{"image": reg.Host + "/group/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Fatalf("the saved GitLab instance does not work: %+v", tr)
	}

	moved := map[string]string{"url": reg.URL, "authurl": evil.URL}
	for _, op := range []struct{ method, path string }{{"POST", "/api/v1/registries/test"}, {"PUT", "/api/v1/registries/gitlab/work"}} {
		b := map[string]any{"values": moved, "image": reg.Host + "/group/app"}
		if op.method == "POST" {
			b["kind"], b["name"] = "gitlab", "work"
		} else {
			delete(b, "image")
		}
		res, body := f.do(op.method, op.path, b)
		want(t, res, body, http.StatusBadRequest)
		if msg := fieldMsg(t, body, "token"); msg != "the authurl changed; enter the token again" {
			t.Errorf("%s %s: token error %q", op.method, op.path, msg)
		}
	}
	res, body = f.do("POST", "/settings/registries/gitlab/work/edit", url.Values{"v.url": {reg.URL}, "v.authurl": {evil.URL},
		"v.token": {""}, "action": {"test"}, "image": {reg.Host + "/group/app"}})
	want(t, res, body, http.StatusBadRequest)
	if !strings.Contains(body, `data-error-for="token">the authurl changed; enter the token again</p>`) {
		t.Errorf("form: no error under the token:\n%s", body)
	}
	if evil.requests() != 0 || evil.saw(pat) {
		t.Fatalf("the other token server was reached (%d requests)", evil.requests())
	}
	res, body = f.do("POST", "/api/v1/registries/gitlab/work/test", map[string]string{"image": reg.Host + "/group/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("the saved instance after the refusals: %+v", tr)
	}

	// The control: typed in, the token reaches the other token server.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "gitlab", "name": "work",
		"values": map[string]string{"url": reg.URL, "authurl": evil.URL, "token": pat}, "image": reg.Host + "/group/app"})
	want(t, res, body, http.StatusOK)
	if !evil.saw(pat) {
		t.Fatal("the recorder did not see a token sent to it on purpose")
	}
}

// restToken is a notifier's token the at-rest tests save.
const restToken = "AtRestT0ken-5f0c2e9a71d4"

// TestSecretsNotInTheStoreFile saves a registry and a notifier through
// the API of a running server, then greps the bbolt file's bytes: neither
// secret is there, though the records are.
func TestSecretsNotInTheStoreFile(t *testing.T) {
	reg := startRegistry(t)
	recv := startReceiver(t, false)
	f := newFixtureWith(t, config.WebAuth{}, nil, startNotifiers(t, nil))
	res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword}})
	want(t, res, body, http.StatusCreated)
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "team",
		"settings": map[string]string{"url": recv.URL + "/team/" + restToken, "type": "webhook"}})
	want(t, res, body, http.StatusCreated)
	// Both work, so the daemon reads them back.
	res, body = f.do("POST", "/api/v1/registries/custom/vendor/test", map[string]string{"image": reg.Host + "/team/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Fatalf("registry test: %+v", tr)
	}
	res, body = f.do("POST", "/api/v1/notifiers/team/test", nil)
	want(t, res, body, http.StatusOK)

	raw, err := os.ReadFile(f.st.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{alicePassword, restToken, "alice:" + alicePassword} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the store file holds %q", secret)
		}
	}
	for _, plain := range []string{reg.URL, `"login":"alice"`, `"type":"webhook"`} {
		if !strings.Contains(string(raw), plain) {
			t.Errorf("the store file lacks %q: is the grep looking at the right file?", plain)
		}
	}
}

// TestSecretsNeededAgain: a store copied without its key file. The server
// runs; the registry and notifier whose secrets do not decrypt are marked
// as needing them, in the API, on the tiles and in the forms; saving them
// without the secret says why; entering it again brings them back.
func TestSecretsNeededAgain(t *testing.T) {
	reg := startRegistry(t)
	recv := startReceiver(t, false)
	orig := storetest.Open(t)
	if err := orig.PutRegistry(store.Registry{Kind: "custom", Name: "vendor", Values: map[string]string{"url": reg.URL, "login": "alice"},
		Secrets: map[string]string{"password": alicePassword}}); err != nil {
		t.Fatal(err)
	}
	if err := orig.PutRegistry(store.Registry{Kind: "hub", Name: "public", Values: map[string]string{"login": "alice"},
		Secrets: map[string]string{"password": hubToken}}); err != nil {
		t.Fatal(err)
	}
	if err := orig.PutNotifier(store.Notifier{Name: "team", Settings: map[string]string{"type": "webhook"},
		Secrets: map[string]string{"url": recv.URL + "/team/" + restToken}}); err != nil {
		t.Fatal(err)
	}
	orig.Close()
	copyPath := filepath.Join(t.TempDir(), "tagwatch.db")
	raw, err := os.ReadFile(orig.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(copyPath)
	if err != nil {
		t.Fatalf("a copy without its key does not open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CheckSecrets(); err == nil || !strings.Contains(err.Error(), "were encrypted with another key") {
		t.Fatalf("CheckSecrets = %v", err)
	}
	f := newFixtureOn(t, st, nil, config.WebAuth{}, nil, startNotifiers(t, nil))

	type needs struct {
		apiRegistry
		NeedsSecrets []string `json:"needsSecrets"`
	}
	res, body := f.do("GET", "/api/v1/registries/custom/vendor", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[needs](t, body); r.Active || r.Anonymous || len(r.Secrets) != 0 || strings.Join(r.NeedsSecrets, ",") != "password" || r.Values["url"] != reg.URL {
		t.Errorf("custom.vendor = %s", body)
	}
	// hub.public runs anonymously meanwhile, and its saved override can be reset.
	res, body = f.do("GET", "/api/v1/registries/hub/public", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[needs](t, body); !r.Active || !r.Anonymous || r.Source != "default" || strings.Join(r.NeedsSecrets, ",") != "password" {
		t.Errorf("hub.public = %s", body)
	}
	res, body = f.do("GET", "/settings/registries", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`id="needs-secrets"`, "Saved secrets of 2 registries cannot be decrypted", "secret needed",
		"The saved password cannot be decrypted with this daemon's key", "/settings/registries/hub/public/reset"} {
		if !strings.Contains(body, s) {
			t.Errorf("registries page lacks %q:\n%s", s, body)
		}
	}
	res, body = f.do("GET", "/settings/registries/custom/vendor/edit", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, `data-error-for="password">The saved password cannot be decrypted`) || strings.Contains(body, "leave blank to keep") {
		t.Errorf("edit form does not ask for the password:\n%s", body)
	}
	res, body = f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, `"needsSecrets": [`) || !strings.Contains(body, `"url"`) {
		t.Errorf("notifiers: %s", body)
	}
	res, body = f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "secret needed") || !strings.Contains(body, "Its saved url cannot be decrypted") {
		t.Errorf("notifications page lacks the mark:\n%s", body)
	}

	// Saved without the secret: refused, naming it.
	res, body = f.do("PUT", "/api/v1/registries/custom/vendor", map[string]any{"values": map[string]string{"url": reg.URL, "login": "alice"}})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "password"); !strings.Contains(msg, "cannot be decrypted with this daemon's key") {
		t.Errorf("password error %q", msg)
	}
	res, body = f.do("PUT", "/api/v1/notifiers/team", map[string]any{"settings": map[string]string{"type": "webhook"}})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "url"); !strings.Contains(msg, "cannot be decrypted with this daemon's key") {
		t.Errorf("url error %q", msg)
	}

	// Entered again: saved under this store's key, running, working.
	res, body = f.do("PUT", "/api/v1/registries/custom/vendor", map[string]any{"values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword}})
	want(t, res, body, http.StatusOK)
	if r := decode[needs](t, body); !r.Active || len(r.NeedsSecrets) != 0 {
		t.Errorf("after entering the password: %s", body)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/vendor/test", map[string]string{"image": reg.Host + "/team/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("test after entering the password: %+v", tr)
	}
	res, body = f.do("PUT", "/api/v1/notifiers/team", map[string]any{"settings": map[string]string{"type": "webhook", "url": recv.URL + "/team/" + restToken}})
	want(t, res, body, http.StatusOK)
	res, body = f.do("POST", "/api/v1/notifiers/team/test", nil)
	want(t, res, body, http.StatusOK)
	if got := recv.got(); len(got) != 1 {
		t.Errorf("the receiver got %d messages", len(got))
	}
	if err := st.CheckSecrets(); err == nil || strings.Contains(err.Error(), "custom.vendor") || strings.Contains(err.Error(), "notifier team") {
		t.Errorf("after entering them again, CheckSecrets = %v (only hub.public should be left)", err)
	}
	// Reset drops the unreadable override.
	res, body = f.do("POST", "/api/v1/registries/hub/public/reset", nil)
	want(t, res, body, http.StatusOK)
	if err := st.CheckSecrets(); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}

// TestSecretStaysWithDefaultOverride: a default instance given keys in the
// UI (ecr.public with a region) keeps them only for its region; once reset
// to anonymous access, nothing saved is carried into new settings.
func TestSecretStaysWithDefaultOverride(t *testing.T) {
	const secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	f := newFixture(t, config.WebAuth{}, nil)
	keys := map[string]string{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE", "secretaccesskey": secretKey}
	res, body := f.do("PUT", "/api/v1/registries/ecr/public", map[string]any{"values": keys})
	want(t, res, body, http.StatusOK)

	// Same region, blank secret: kept.
	res, body = f.do("PUT", "/api/v1/registries/ecr/public", map[string]any{"values": map[string]string{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE"}})
	want(t, res, body, http.StatusOK)
	// Another region: asked again, for save and test, API and form.
	moved := map[string]string{"region": "us-east-1", "accesskey": "AKIAIOSFODNN7EXAMPLE"}
	res, body = f.do("PUT", "/api/v1/registries/ecr/public", map[string]any{"values": moved})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "secretaccesskey"); msg != "the region changed; enter the secretaccesskey again" {
		t.Errorf("secretaccesskey error %q", msg)
	}
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "ecr", "name": "public", "values": moved,
		"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app"})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "secretaccesskey")
	res, body = f.do("POST", "/settings/registries/ecr/public/edit", url.Values{"v.region": {"us-east-1"},
		"v.accesskey": {"AKIAIOSFODNN7EXAMPLE"}, "v.secretaccesskey": {""}, "action": {"save"}})
	want(t, res, body, http.StatusBadRequest)
	if !strings.Contains(body, `data-error-for="secretaccesskey">the region changed; enter the secretaccesskey again</p>`) {
		t.Errorf("form: no error under secretaccesskey:\n%s", body)
	}
	saved, err := f.st.Registries()
	if err != nil || len(saved) != 1 || saved[0].Values["region"] != "eu-west-1" || saved[0].Secrets["secretaccesskey"] != secretKey {
		t.Fatalf("stored after the refusals: %+v, %v", saved, err)
	}

	// Reset: the override and its secret are gone; new settings start empty.
	res, body = f.do("POST", "/api/v1/registries/ecr/public/reset", nil)
	want(t, res, body, http.StatusOK)
	res, body = f.do("PUT", "/api/v1/registries/ecr/public", map[string]any{"values": map[string]string{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE"}})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "secretaccesskey"); msg != "is required" {
		t.Errorf("after the reset, secretaccesskey error %q (nothing saved may be reused)", msg)
	}
	if strings.Contains(f.logs.String(), secretKey) {
		t.Error("the log holds the secret access key")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bodies {
		if strings.Contains(b, secretKey) {
			t.Errorf("a response holds the secret access key:\n%s", b)
		}
	}
}
