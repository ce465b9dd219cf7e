package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

// The secrets the tests save. None may ever come back in a response body
// or a log line.
const (
	alicePassword = "s3cret"
	wrongPassword = "wr0ng-Passw0rd-71"
	hubToken      = "hub-T0ken-5521"
)

// fixture is a server on a real store and a real registry set, recording
// every response body and log line to check that no secret leaks.
type fixture struct {
	t      *testing.T
	st     *store.Store
	live   *registries.Live
	srv    *web.Server
	ts     *httptest.Server
	client *http.Client
	header http.Header // sent with every request

	mu     sync.Mutex
	bodies []string
	logs   syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fileConfigs are the config file's instances: one custom registry, read-only in the UI.
var fileConfigs = []registries.Config{
	{Kind: "custom", Name: "filed", Source: registries.SourceFile, Values: registries.Values{"url": "http://127.0.0.1:9"}},
}

func newFixture(t *testing.T, auth config.WebAuth, d web.Checker) *fixture {
	t.Helper()
	return newFixtureWith(t, auth, d, nil)
}

// newFixtureWith is newFixture with notifiers (nil: none); opts set more
// of the server's fields before it starts.
func newFixtureWith(t *testing.T, auth config.WebAuth, d web.Checker, n web.Notifiers, opts ...func(*fixture)) *fixture {
	t.Helper()
	return newFixtureOn(t, storetest.Open(t), nil, auth, d, n, opts...)
}

// newFixtureOn is newFixtureWith on a store of the test's own, with the
// registries it saved in the UI (ui) running, as serve starts them.
func newFixtureOn(t *testing.T, st *store.Store, ui []registries.Config, auth config.WebAuth, d web.Checker, n web.Notifiers, opts ...func(*fixture)) *fixture {
	t.Helper()
	live, err := registries.NewLive(registries.DefaultCatalog(), fileConfigs, ui, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, live: live, header: http.Header{}}
	f.srv = &web.Server{Store: st, Registries: live, Daemon: d, Auth: auth, Notifiers: n,
		Log: slog.New(slog.NewTextHandler(&f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(f)
	}
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	f.client = &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(f.checkNoSecrets)
	return f
}

// checkNoSecrets greps every response body and the log for the secrets.
func (f *fixture) checkNoSecrets() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, secret := range []string{alicePassword, wrongPassword, hubToken, hookToken, brokenPassword, brokenToken, uiToken, uiToken2, restToken} {
		for _, b := range f.bodies {
			if strings.Contains(b, secret) {
				f.t.Errorf("a response body holds the secret %q:\n%s", secret, b)
			}
		}
		if strings.Contains(f.logs.String(), secret) {
			f.t.Errorf("the log holds the secret %q:\n%s", secret, f.logs.String())
		}
	}
	if len(f.bodies) == 0 {
		f.t.Error("no response was recorded")
	}
}

// do sends a request. body is nil, a string sent as is, url.Values sent as
// a form, or anything else sent as JSON. hdr are header name, value pairs.
func (f *fixture) do(method, path string, body any, hdr ...string) (*http.Response, string) {
	f.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range f.header {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1] // Go's client sends req.Host, not a Host header field
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	// The headers too: nothing secret (or a target's marker) goes there either.
	f.bodies = append(f.bodies, string(b), fmt.Sprint(res.Header))
	f.mu.Unlock()
	return res, string(b)
}

// want checks a response's status, saying what came back otherwise.
func want(t *testing.T, res *http.Response, body string, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body:\n%s", res.Request.Method, res.Request.URL.Path, res.StatusCode, code, body)
	}
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return v
}

type apiError struct {
	Error  string `json:"error"`
	Fields []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"fields"`
}

// fieldMsg returns the message of a field error, or fails.
func fieldMsg(t *testing.T, body, field string) string {
	t.Helper()
	e := decode[apiError](t, body)
	for _, fe := range e.Fields {
		if fe.Field == field {
			return fe.Message
		}
	}
	t.Fatalf("no error on field %q in %s", field, body)
	return ""
}

type apiRegistry struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Source    string            `json:"source"`
	Host      string            `json:"host"`
	Anonymous bool              `json:"anonymous"`
	Active    bool              `json:"active"`
	ReadOnly  bool              `json:"readOnly"`
	Values    map[string]string `json:"values"`
	Secrets   []string          `json:"secrets"`
	Test      *apiTest          `json:"test"`
}

type apiTest struct {
	TestedAt    time.Time `json:"testedAt"`
	OK          bool      `json:"ok"`
	Status      int       `json:"status"`
	Class       string    `json:"class"`
	Error       string    `json:"error"`
	ErrorDetail string    `json:"errorDetail"`
	TookMS      *int64    `json:"tookMs"`
	TagCount    *int      `json:"tagCount"`
}

// fakeDaemon stands in for the watcher in the API tests (the browser test
// runs the real one).
type fakeDaemon struct {
	mu      sync.Mutex
	running bool
}

func (d *fakeDaemon) CheckNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return false
	}
	d.running = true
	return true
}

func (d *fakeDaemon) Status() watcher.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := watcher.Status{Running: d.running, Done: 1, Total: 3}
	if d.running {
		now := time.Now()
		s.StartedAt, s.Deadline = now.Add(-90*time.Second), now.Add(28*time.Minute+30*time.Second)
		s.Waiting = []watcher.RegistryWait{{Registry: "custom.slow", Host: "127.0.0.1:5999", InFlight: 2, Since: now.Add(-80 * time.Second), Seconds: 80, Doing: "list tags of team/slow"}}
		s.Summary = "1 of 3 checked; waiting for 127.0.0.1:5999 (2 images for 1m20s: list tags of team/slow)"
	}
	return s
}

func startRegistry(t *testing.T) *regtest.Registry {
	t.Helper()
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": alicePassword}})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "seed"))
	return reg
}

func TestRegistryLifecycle(t *testing.T) {
	reg := startRegistry(t)
	f := newFixture(t, config.WebAuth{}, &fakeDaemon{})

	// Create: the secret is saved, never answered.
	res, body := f.do("POST", "/api/v1/registries", map[string]any{
		"kind": "custom", "name": "mine",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword},
	})
	want(t, res, body, http.StatusCreated)
	if loc := res.Header.Get("Location"); loc != "/api/v1/registries/custom/mine" {
		t.Errorf("Location = %q", loc)
	}
	r := decode[apiRegistry](t, body)
	if r.ID != "custom.mine" || r.Source != "ui" || r.Anonymous || r.Host != reg.Host || !r.Active ||
		r.Values["login"] != "alice" || r.Values["url"] != reg.URL || !slices.Equal(r.Secrets, []string{"password"}) {
		t.Errorf("created registry = %+v", r)
	}
	if _, ok := r.Values["password"]; ok {
		t.Error("the password is among the values")
	}
	if in, ok := f.live.Set().Instance("custom", "mine"); !ok || in.Values["password"] != alicePassword {
		t.Error("the running set does not have custom.mine with its password")
	}

	// A second create of the same name conflicts.
	res, body = f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "mine", "values": map[string]string{"url": reg.URL}})
	want(t, res, body, http.StatusConflict)

	// Test: the /v2/ handshake, then a tag listing.
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", nil)
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK || tr.Error != "" || tr.TestedAt.IsZero() {
		t.Errorf("test = %+v", tr)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", map[string]string{"image": reg.Host + "/team/app"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK || tr.TagCount == nil || *tr.TagCount != 1 || tr.TookMS == nil {
		t.Errorf("test with image = %+v", tr)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", map[string]string{"image": "ghcr.io/someone/else"})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); tr.OK || !strings.Contains(tr.Error, "does not serve ghcr.io") {
		t.Errorf("test of another host = %+v", tr)
	}

	// PUT with the password left blank keeps it.
	res, body = f.do("PUT", "/api/v1/registries/custom/mine", map[string]any{
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": ""},
	})
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); !slices.Equal(r.Secrets, []string{"password"}) || r.Test != nil {
		t.Errorf("after a PUT with a blank password = %+v (the old test must not show)", r)
	}
	saved, err := f.st.Registries()
	if err != nil || len(saved) != 1 || saved[0].Secrets["password"] != alicePassword {
		t.Fatalf("stored = %+v, %v", saved, err)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", nil)
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("test after keeping the password = %+v", tr)
	}

	// A wrong password saves, and its test fails; the tile shows why.
	res, body = f.do("PUT", "/api/v1/registries/custom/mine", map[string]any{
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": wrongPassword},
	})
	want(t, res, body, http.StatusOK)
	res, body = f.do("POST", "/api/v1/registries/custom/mine/test", "")
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); tr.OK || tr.Status != 401 || tr.Class != "credentials" ||
		tr.Error != reg.Host+" refused the credentials of custom.mine (401). Check login and password. Use what docker login accepts for this registry: often a username or e-mail with an access token as the password." {
		t.Errorf("test with a wrong password = %+v", tr)
	}
	res, body = f.do("GET", "/api/v1/registries/custom/mine", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Test == nil || r.Test.OK || r.Test.Error == "" {
		t.Errorf("GET after a failed test = %+v", r)
	}

	// Clearing the password breaks the login rule.
	res, body = f.do("PUT", "/api/v1/registries/custom/mine", map[string]any{
		"values": map[string]string{"url": reg.URL, "login": "alice"}, "clear": []string{"password"},
	})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "password"); msg != "must be defined when login is defined" {
		t.Errorf("password error = %q", msg)
	}
	// Clearing both makes it anonymous.
	res, body = f.do("PUT", "/api/v1/registries/custom/mine", map[string]any{
		"values": map[string]string{"url": reg.URL}, "clear": []string{"password"},
	})
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); !r.Anonymous || len(r.Secrets) != 0 {
		t.Errorf("after clearing = %+v", r)
	}

	// The list has the defaults, the file's and the UI's.
	res, body = f.do("GET", "/api/v1/registries", nil)
	want(t, res, body, http.StatusOK)
	list := decode[struct{ Registries []apiRegistry }](t, body).Registries
	sources := map[string]string{}
	for _, r := range list {
		sources[r.ID] = r.Source
		if r.ID == "custom.filed" && !r.ReadOnly {
			t.Error("custom.filed is not read-only")
		}
	}
	for id, src := range map[string]string{"custom.mine": "ui", "custom.filed": "file", "hub.public": "default",
		"ghcr.public": "default", "quay.public": "default", "gcr.public": "default", "ecr.public": "default"} {
		if sources[id] != src {
			t.Errorf("%s: source %q, want %q (all: %v)", id, sources[id], src, sources)
		}
	}

	// Delete, then it is gone from the API and the running set.
	res, body = f.do("DELETE", "/api/v1/registries/custom/mine", nil)
	want(t, res, body, http.StatusNoContent)
	res, body = f.do("GET", "/api/v1/registries/custom/mine", nil)
	want(t, res, body, http.StatusNotFound)
	if _, ok := f.live.Set().Instance("custom", "mine"); ok {
		t.Error("custom.mine still runs after DELETE")
	}
	res, body = f.do("DELETE", "/api/v1/registries/custom/mine", nil)
	want(t, res, body, http.StatusNotFound)
}

func TestUnsavedTest(t *testing.T) {
	reg := startRegistry(t)
	f := newFixture(t, config.WebAuth{}, nil)

	// Settings never saved, no name yet.
	res, body := f.do("POST", "/api/v1/registries/test", map[string]any{
		"kind": "custom", "values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword},
		"image": reg.Host + "/team/app",
	})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK || tr.TagCount == nil || *tr.TagCount == 0 {
		t.Errorf("unsaved test = %+v", tr)
	}

	// A blank password is filled from the saved instance.
	res, body = f.do("POST", "/api/v1/registries", map[string]any{
		"kind": "custom", "name": "mine", "values": map[string]string{"url": reg.URL, "login": "alice", "password": alicePassword},
	})
	want(t, res, body, http.StatusCreated)
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{
		"kind": "custom", "name": "mine", "values": map[string]string{"url": reg.URL, "login": "alice", "password": ""},
	})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Errorf("unsaved test with the saved password = %+v", tr)
	}
	// A wrong one typed in is tested as typed; nothing is recorded.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{
		"kind": "custom", "name": "mine", "values": map[string]string{"url": reg.URL, "login": "alice", "password": wrongPassword},
	})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); tr.OK || tr.Error == "" {
		t.Errorf("unsaved test with a wrong password = %+v", tr)
	}
	if tests, err := f.st.RegistryTests(); err != nil || len(tests) != 0 {
		t.Errorf("an unsaved test was recorded: %+v, %v", tests, err)
	}

	// Validation is the save's.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "values": map[string]string{"login": "alice"}})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "url")
	fieldMsg(t, body, "password")
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"values": map[string]string{}})
	want(t, res, body, http.StatusBadRequest)
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "nope"})
	want(t, res, body, http.StatusNotFound)
	// Kinds that serve hosts of their own need an image.
	res, body = f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "acr", "values": map[string]string{"clientid": "id", "clientsecret": "x"}})
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); tr.OK || !strings.Contains(tr.Error, "name a test image") {
		t.Errorf("acr without an image = %+v", tr)
	}
}

func TestRegistryValidation(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)
	create := func(kind, name string, vals map[string]string) (*http.Response, string) {
		return f.do("POST", "/api/v1/registries", map[string]any{"kind": kind, "name": name, "values": vals})
	}

	// Missing required variable.
	res, body := create("custom", "a", map[string]string{"login": "alice", "password": alicePassword})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "url"); msg != "is required" {
		t.Errorf("url: %q", msg)
	}
	res, body = create("ecr", "private", map[string]string{"region": "eu-west-1"})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "accesskey")
	fieldMsg(t, body, "secretaccesskey")

	// Rules broken: login without password; auth with login.
	res, body = create("custom", "a", map[string]string{"url": "https://r.example", "login": "alice"})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "password"); msg != "must be defined when login is defined" {
		t.Errorf("password: %q", msg)
	}
	res, body = create("hub", "mine", map[string]string{"auth": "YWxpY2U6eA==", "login": "alice", "password": hubToken})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "login"); !strings.Contains(msg, "must not be defined when auth is defined") {
		t.Errorf("login: %q", msg)
	}
	fieldMsg(t, body, "password")

	// A bad value.
	res, body = create("custom", "a", map[string]string{"url": "ftp://r.example"})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "url")
	res, body = create("custom", "a", map[string]string{"url": "https://r.example", "insecure": "maybe"})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "insecure")

	// Unknown variable, unknown kind, bad names.
	res, body = create("custom", "a", map[string]string{"url": "https://r.example", "colour": "blue"})
	want(t, res, body, http.StatusBadRequest)
	if msg := fieldMsg(t, body, "colour"); !strings.Contains(msg, "is not a variable of custom registries") {
		t.Errorf("colour: %q", msg)
	}
	res, body = create("nope", "a", nil)
	want(t, res, body, http.StatusNotFound)
	if e := decode[apiError](t, body); !strings.Contains(e.Error, `unknown registry kind "nope"`) {
		t.Errorf("unknown kind: %q", e.Error)
	}
	res, body = f.do("PUT", "/api/v1/registries/nope/a", map[string]any{"values": map[string]string{}})
	want(t, res, body, http.StatusNotFound)
	for _, name := range []string{"", "Big", "a.b", "white space", strings.Repeat("x", 64)} {
		res, body = create("custom", name, map[string]string{"url": "https://r.example"})
		want(t, res, body, http.StatusBadRequest)
		fieldMsg(t, body, "name")
	}
	res, body = f.do("POST", "/api/v1/registries", map[string]any{"name": "a"})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "kind")
	res, body = f.do("PUT", "/api/v1/registries/custom/a", map[string]any{"values": map[string]string{"url": "https://r.example"}, "clear": []string{"url"}})
	want(t, res, body, http.StatusBadRequest)
	fieldMsg(t, body, "url")

	// Deprecated alias: token is folded into password.
	res, body = create("hub", "alias", map[string]string{"login": "alice", "token": hubToken})
	want(t, res, body, http.StatusCreated)
	if r := decode[apiRegistry](t, body); !slices.Equal(r.Secrets, []string{"password"}) {
		t.Errorf("alias: %+v", r)
	}

	// Config-file instances are read-only.
	res, body = f.do("PUT", "/api/v1/registries/custom/filed", map[string]any{"values": map[string]string{"url": "https://r.example"}})
	want(t, res, body, http.StatusConflict)
	if e := decode[apiError](t, body); !strings.Contains(e.Error, registries.ErrFromFile.Error()) {
		t.Errorf("file PUT: %q", e.Error)
	}
	res, body = create("custom", "filed", map[string]string{"url": "https://r.example"})
	want(t, res, body, http.StatusConflict)
	res, body = f.do("DELETE", "/api/v1/registries/custom/filed", nil)
	want(t, res, body, http.StatusConflict)
	res, body = f.do("POST", "/api/v1/registries/custom/filed/reset", nil)
	want(t, res, body, http.StatusConflict)
	res, body = f.do("GET", "/api/v1/registries/custom/filed", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Source != "file" || !r.ReadOnly {
		t.Errorf("file instance = %+v", r)
	}

	// Nothing invalid was saved.
	saved, err := f.st.Registries()
	if err != nil || len(saved) != 1 || saved[0].Name != "alias" {
		t.Errorf("stored after the failures = %+v, %v", saved, err)
	}
}

func TestDefaultResetAndDelete(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)

	// Deleting a default: reset it instead.
	res, body := f.do("DELETE", "/api/v1/registries/hub/public", nil)
	want(t, res, body, http.StatusConflict)
	if e := decode[apiError](t, body); !strings.Contains(e.Error, "reset") {
		t.Errorf("delete default: %q", e.Error)
	}

	// Give hub.public credentials, then reset it.
	res, body = f.do("PUT", "/api/v1/registries/hub/public", map[string]any{"values": map[string]string{"login": "alice", "password": hubToken}})
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Source != "ui" || r.Anonymous || r.Host != "docker.io" {
		t.Errorf("hub.public override = %+v", r)
	}
	if in, _ := f.live.Set().Instance("hub", "public"); in.Anonymous() {
		t.Error("the running hub.public is still anonymous")
	}
	res, body = f.do("DELETE", "/api/v1/registries/hub/public", nil)
	want(t, res, body, http.StatusConflict)
	res, body = f.do("POST", "/api/v1/registries/hub/public/reset", nil)
	want(t, res, body, http.StatusOK)
	if r := decode[apiRegistry](t, body); r.Source != "default" || !r.Anonymous || len(r.Secrets) != 0 {
		t.Errorf("after reset = %+v", r)
	}
	if in, _ := f.live.Set().Instance("hub", "public"); !in.Anonymous() {
		t.Error("the running hub.public still has credentials")
	}
	if saved, _ := f.st.Registries(); len(saved) != 0 {
		t.Errorf("stored after reset: %+v", saved)
	}
	// Resetting again changes nothing.
	res, body = f.do("POST", "/api/v1/registries/hub/public/reset", nil)
	want(t, res, body, http.StatusOK)

	// Only defaults are reset.
	res, body = f.do("POST", "/api/v1/registries", map[string]any{"kind": "ghcr", "name": "work", "values": map[string]string{"username": "octo", "token": hubToken}})
	want(t, res, body, http.StatusCreated)
	res, body = f.do("POST", "/api/v1/registries/ghcr/work/reset", nil)
	want(t, res, body, http.StatusConflict)
	res, body = f.do("POST", "/api/v1/registries/nope/public/reset", nil)
	want(t, res, body, http.StatusNotFound)
	res, body = f.do("POST", "/api/v1/registries/ghcr/nothere/test", nil)
	want(t, res, body, http.StatusNotFound)
	res, body = f.do("GET", "/api/v1/registries/nope/x", nil)
	want(t, res, body, http.StatusNotFound)
}

func TestRequestErrors(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)
	cases := []struct {
		method, path string
		body         any
		hdr          []string
		code         int
	}{
		{"PATCH", "/api/v1/registries/hub/public", nil, nil, http.StatusMethodNotAllowed},
		{"DELETE", "/api/v1/registries", nil, nil, http.StatusMethodNotAllowed},
		{"GET", "/api/v1/check", nil, nil, http.StatusMethodNotAllowed},
		{"GET", "/api/v1/nothing", nil, nil, http.StatusNotFound},
		{"PUT", "/api/v1/registries/hub/public", "login=alice", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"POST", "/api/v1/registries", `{"kind":"hub"}`, nil, http.StatusUnsupportedMediaType},
		{"PUT", "/api/v1/registries/hub/public", `{"values":`, []string{"Content-Type", "application/json"}, http.StatusBadRequest},
		{"PUT", "/api/v1/registries/hub/public", `{"valeus":{}}`, []string{"Content-Type", "application/json"}, http.StatusBadRequest},
		{"PUT", "/api/v1/registries/hub/public", map[string]any{"kind": "ghcr"}, nil, http.StatusBadRequest},
		{"POST", "/api/v1/registries", map[string]any{"kind": "hub", "name": "x", "image": "a/b"}, nil, http.StatusBadRequest},
		{"POST", "/api/v1/registries/hub/public/test", `{"image":1}`, []string{"Content-Type", "application/json"}, http.StatusBadRequest},
		{"POST", "/api/v1/check", nil, nil, http.StatusServiceUnavailable},
		{"GET", "/api/v1/status", nil, nil, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		res, body := f.do(c.method, c.path, c.body, c.hdr...)
		if res.StatusCode != c.code {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, res.StatusCode, c.code, body)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		if e := decode[apiError](t, body); e.Error == "" {
			t.Errorf("%s %s: no error message: %s", c.method, c.path, body)
		}
		if c.code == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
}

func TestImagesAndHistory(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)
	now := time.Now().UTC()
	imgs := []store.Image{
		{Key: "a", Image: "nginx:1.25.3", Reference: "docker.io/library/nginx:1.25.3", Registry: "hub.public", Tag: "1.25.3", LatestTag: "1.27.0",
			Update: "minor", Where: []store.Location{{Watcher: "local", Container: "web"}}, LastChecked: now},
		{Key: "b", Image: "ghcr.io/home-assistant/home-assistant:2024.10.1", Registry: "ghcr.public", Tag: "2024.10.1", LatestTag: "2024.10.1",
			Update: "none", DisplayName: "Home Assistant", Where: []store.Location{{Watcher: "config"}}, LastChecked: now},
		{Key: "c", Image: "redis:7", Registry: "hub.public", Tag: "7", Update: "unknown", Error: "registry hub.public refused", LastChecked: now},
	}
	if err := f.st.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	var hist []store.HistoryEntry
	for i := range 5 {
		hist = append(hist, store.HistoryEntry{At: now.Add(time.Duration(i) * time.Minute), Key: "a", Reference: "docker.io/library/nginx",
			Registry: "hub.public", Update: "patch", FromTag: "1.25.3", ToTag: fmt.Sprintf("1.25.%d", 4+i)})
	}
	if _, err := f.st.AppendHistory(hist); err != nil {
		t.Fatal(err)
	}

	keys := func(path string) []string {
		t.Helper()
		res, body := f.do("GET", path, nil)
		want(t, res, body, http.StatusOK)
		var out []string
		for _, img := range decode[struct{ Images []store.Image }](t, body).Images {
			out = append(out, img.Key)
		}
		return out
	}
	for path, wantKeys := range map[string][]string{
		"/api/v1/images":                                        {"a", "b", "c"},
		"/api/v1/images?update=any":                             {"a"},
		"/api/v1/images?update=minor":                           {"a"},
		"/api/v1/images?update=none":                            {"b"},
		"/api/v1/images?update=unknown":                         {"c"},
		"/api/v1/images?update=major":                           nil,
		"/api/v1/images?q=home+assistant":                       {"b"},
		"/api/v1/images?q=WEB":                                  {"a"},
		"/api/v1/images?registry=hub.public":                    {"a", "c"},
		"/api/v1/images?registry=hub.public&update=any&q=nginx": {"a"},
	} {
		if got := keys(path); !slices.Equal(got, wantKeys) {
			t.Errorf("%s: %v, want %v", path, got, wantKeys)
		}
	}
	res, body := f.do("GET", "/api/v1/images?update=huge", nil)
	want(t, res, body, http.StatusBadRequest)

	type page struct {
		History []store.HistoryEntry
		Next    uint64
	}
	res, body = f.do("GET", "/api/v1/history?limit=2", nil)
	want(t, res, body, http.StatusOK)
	p := decode[page](t, body)
	if len(p.History) != 2 || p.History[0].ToTag != "1.25.8" || p.Next != p.History[1].Seq {
		t.Fatalf("first page = %+v", p)
	}
	res, body = f.do("GET", fmt.Sprintf("/api/v1/history?limit=2&before=%d", p.Next), nil)
	want(t, res, body, http.StatusOK)
	if p2 := decode[page](t, body); len(p2.History) != 2 || p2.History[0].ToTag != "1.25.6" {
		t.Errorf("second page = %+v", p2)
	}
	res, body = f.do("GET", "/api/v1/history", nil)
	want(t, res, body, http.StatusOK)
	if p3 := decode[page](t, body); len(p3.History) != 5 || p3.Next != 0 {
		t.Errorf("all = %+v", p3)
	}
	for _, q := range []string{"limit=0", "limit=abc", "limit=5000", "before=-1"} {
		res, body = f.do("GET", "/api/v1/history?"+q, nil)
		want(t, res, body, http.StatusBadRequest)
	}

	// The pages render the same data.
	res, body = f.do("GET", "/", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{"Home Assistant", "config list", "local · web", "1.27.0", `class="badge u-minor"`, `class="badge u-error"`} {
		if !strings.Contains(body, s) {
			t.Errorf("dashboard lacks %q", s)
		}
	}
	res, body = f.do("GET", "/?updates=1", nil)
	want(t, res, body, http.StatusOK)
	if strings.Contains(body, "Home Assistant") || !strings.Contains(body, "nginx") {
		t.Error("dashboard ?updates=1 does not filter")
	}
	res, body = f.do("GET", "/history", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "1.25.8") {
		t.Error("history page lacks the newest entry")
	}
	res, body = f.do("GET", "/history?limit=abc", nil)
	want(t, res, body, http.StatusBadRequest)
}

func TestCheckStatusHealth(t *testing.T) {
	d := &fakeDaemon{}
	f := newFixture(t, config.WebAuth{}, d)
	res, body := f.do("POST", "/api/v1/check", nil)
	want(t, res, body, http.StatusAccepted)
	if a := decode[struct{ Started, Joined bool }](t, body); !a.Started || a.Joined {
		t.Errorf("first check = %+v", a)
	}
	res, body = f.do("POST", "/api/v1/check", nil)
	want(t, res, body, http.StatusAccepted)
	type answer struct {
		Started, Joined bool
		Message         string
		Waiting         []watcher.RegistryWait
	}
	// A check asked for during a cycle joins it and says what it waits for.
	if a := decode[answer](t, body); a.Started || !a.Joined || len(a.Waiting) != 1 || a.Waiting[0].Host != "127.0.0.1:5999" ||
		!strings.HasPrefix(a.Message, "joined the check running for 1m30s: 1 of 3 checked; waiting for 127.0.0.1:5999 (2 images for 1m20s: list tags of team/slow); its deadline cuts it short in 28m") {
		t.Errorf("second check = %+v", a)
	}
	res, body = f.do("GET", "/api/v1/status", nil)
	want(t, res, body, http.StatusOK)
	if s := decode[watcher.Status](t, body); !s.Running || s.Done != 1 || s.Total != 3 {
		t.Errorf("status = %+v", s)
	}
	// The page's form, without JavaScript.
	res, body = f.do("POST", "/check", nil)
	want(t, res, body, http.StatusSeeOther)

	res, body = f.do("GET", "/api/v1/healthz", nil)
	want(t, res, body, http.StatusOK)
	if h := decode[map[string]string](t, body); h["status"] != "ok" {
		t.Errorf("healthz = %v", h)
	}
	f.st.Close()
	res, body = f.do("GET", "/api/v1/healthz", nil)
	want(t, res, body, http.StatusServiceUnavailable)
}

func TestAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pass-word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, config.WebAuth{Username: "admin", Password: string(hash), Token: "api-token-1"}, &fakeDaemon{})
	basic := func(user, pass string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	cases := []struct {
		method, path, authz string
		code                int
	}{
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/static/app.css", "", http.StatusUnauthorized},
		{"GET", "/settings/registries", basic("admin", "wrong"), http.StatusUnauthorized},
		{"GET", "/settings/registries", basic("root", "pass-word"), http.StatusUnauthorized},
		{"GET", "/", basic("admin", "pass-word"), http.StatusOK},
		{"GET", "/", basic("admin", "pass-word"), http.StatusOK}, // remembered
		{"GET", "/settings/registries", basic("admin", "pass-word"), http.StatusOK},
		{"GET", "/api/v1/registries", "", http.StatusUnauthorized},
		{"GET", "/api/v1/registries", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/registries", "Bearer api-token-1", http.StatusOK},
		{"GET", "/api/v1/registries", basic("admin", "pass-word"), http.StatusOK},
		{"POST", "/api/v1/check", "", http.StatusUnauthorized},
		{"POST", "/api/v1/check", "Bearer api-token-1", http.StatusAccepted},
		{"GET", "/api/v1/openapi.json", "", http.StatusUnauthorized},
		{"GET", "/api/v1/watchers", "", http.StatusUnauthorized},
		{"GET", "/api/v1/healthz", "", http.StatusOK},
	}
	for _, c := range cases {
		var hdr []string
		if c.authz != "" {
			hdr = []string{"Authorization", c.authz}
		}
		res, body := f.do(c.method, c.path, nil, hdr...)
		if res.StatusCode != c.code {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.authz, res.StatusCode, c.code)
		}
		if res.StatusCode == http.StatusUnauthorized {
			if res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", c.method, c.path)
			}
			if strings.HasPrefix(c.path, "/api/") && decode[apiError](t, body).Error == "" {
				t.Errorf("%s %s: 401 without a JSON error", c.method, c.path)
			}
		}
	}

	// With only a token, the UI takes it as the Basic password.
	g := newFixture(t, config.WebAuth{Token: "api-token-2"}, nil)
	res, body := g.do("GET", "/", nil, "Authorization", basic("anyone", "api-token-2"))
	want(t, res, body, http.StatusOK)
	res, body = g.do("GET", "/", nil, "Authorization", basic("anyone", "nope"))
	want(t, res, body, http.StatusUnauthorized)
}

func TestCrossOriginAndHeaders(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, &fakeDaemon{})
	refused := []struct {
		method, path string
		hdr          []string
	}{
		{"POST", "/api/v1/check", []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", "/api/v1/check", []string{"Origin", "https://evil.example"}},
		{"DELETE", "/api/v1/registries/custom/x", []string{"Sec-Fetch-Site", "same-site"}},
		{"PUT", "/api/v1/registries/hub/public", []string{"Origin", "http://attacker.test"}},
		{"POST", "/settings/registries/hub/public/reset", []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", "/settings/registries/new/custom", []string{"Origin", "https://evil.example"}},
		{"POST", "/check", []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, c := range refused {
		res, body := f.do(c.method, c.path, nil, c.hdr...)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with %v: %d, want 403: %s", c.method, c.path, c.hdr, res.StatusCode, body)
		}
	}
	// Same origin passes, and so does a GET from anywhere.
	res, body := f.do("POST", "/api/v1/check", nil, "Sec-Fetch-Site", "same-origin")
	want(t, res, body, http.StatusAccepted)
	res, body = f.do("POST", "/api/v1/check", nil, "Origin", f.ts.URL)
	want(t, res, body, http.StatusAccepted)
	res, body = f.do("GET", "/api/v1/registries", nil, "Sec-Fetch-Site", "cross-site")
	want(t, res, body, http.StatusOK)

	for _, path := range []string{"/", "/history", "/settings/registries", "/api/v1/registries", "/static/app.js", "/nothing"} {
		res, _ := f.do("GET", path, nil)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, h)
		}
		if len(res.Cookies()) != 0 {
			t.Errorf("%s sets cookies", path)
		}
	}
}

func TestPagesAndForms(t *testing.T) {
	reg := startRegistry(t)
	f := newFixture(t, config.WebAuth{}, nil)

	for path, code := range map[string]int{
		"/":                                      http.StatusOK,
		"/history":                               http.StatusOK,
		"/settings/registries":                   http.StatusOK,
		"/settings/registries/new/custom":        http.StatusOK,
		"/settings/registries/new/nope":          http.StatusNotFound,
		"/settings/registries/hub/public/edit":   http.StatusOK,
		"/settings/registries/custom/filed/edit": http.StatusConflict,
		"/settings/registries/custom/none/edit":  http.StatusNotFound,
		"/static/app.css":                        http.StatusOK,
		"/static/mark.svg":                       http.StatusOK,
		"/favicon.ico":                           http.StatusMovedPermanently,
		"/nothing":                               http.StatusNotFound,
	} {
		res, body := f.do("GET", path, nil)
		if res.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, code)
		}
		if code == http.StatusOK && strings.HasSuffix(res.Header.Get("Content-Type"), "html; charset=utf-8") && strings.Contains(body, "<script>") {
			t.Errorf("GET %s: inline script", path)
		}
	}
	res, body := f.do("GET", "/nothing", nil)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "There is no page at /nothing") {
		t.Errorf("404 page: %s\n%s", res.Header.Get("Content-Type"), body)
	}
	// The form is generated from the kind's variables.
	_, body = f.do("GET", "/settings/registries/new/custom", nil)
	for _, s := range []string{`name="v.url"`, `name="v.login"`, `name="v.password" type="password"`, `name="v.auth" type="password"`, "Registry URL (e.g. http://localhost:5000)", "required"} {
		if !strings.Contains(body, s) {
			t.Errorf("custom form lacks %q", s)
		}
	}

	// Save with errors: each beside its field; the typed secret is not echoed.
	form := url.Values{"name": {"mine"}, "v.login": {"alice"}, "v.password": {alicePassword}, "action": {"save"}}
	res, body = f.do("POST", "/settings/registries/new/custom", form)
	want(t, res, body, http.StatusBadRequest)
	if !strings.Contains(body, `<p class="error" data-error-for="url">is required</p>`) {
		t.Errorf("no url error beside its field:\n%s", body)
	}
	if !strings.Contains(body, `value="alice"`) || !strings.Contains(body, "type them again") {
		t.Error("the re-rendered form lost the login or does not ask to type the password again")
	}
	// Test of unsaved values, without JavaScript.
	form.Set("v.url", reg.URL)
	form.Set("action", "test")
	res, body = f.do("POST", "/settings/registries/new/custom", form)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "Connection ok") {
		t.Errorf("form test: no ok:\n%s", body)
	}
	// Save.
	form.Set("action", "save")
	res, body = f.do("POST", "/settings/registries/new/custom", form)
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/settings/registries?saved=custom.mine") {
		t.Errorf("redirect to %q", loc)
	}
	// The edit form does not carry the secret; a blank keeps it.
	res, body = f.do("GET", "/settings/registries/custom/mine/edit", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "saved · leave blank to keep") || !strings.Contains(body, `value="alice"`) {
		t.Errorf("edit form:\n%s", body)
	}
	res, body = f.do("POST", "/settings/registries/custom/mine/edit", url.Values{"v.url": {reg.URL}, "v.login": {"alice"}, "v.password": {""}})
	want(t, res, body, http.StatusSeeOther)
	res, body = f.do("POST", "/settings/registries/custom/mine/test", nil)
	want(t, res, body, http.StatusSeeOther)
	res, body = f.do("GET", "/settings/registries", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "Connection ok") || !strings.Contains(body, `id="reg-custom.mine"`) {
		t.Errorf("tile of custom.mine:\n%s", body)
	}
	// Config-file tiles are read-only; default tiles edit and (with an override) reset.
	if !strings.Contains(body, "Defined in the config file") || strings.Contains(body, "/settings/registries/custom/filed/edit") {
		t.Error("custom.filed is not shown read-only")
	}
	res, body = f.do("POST", "/settings/registries/hub/public/edit", url.Values{"v.login": {"alice"}, "v.password": {hubToken}})
	want(t, res, body, http.StatusSeeOther)
	_, body = f.do("GET", "/settings/registries", nil)
	if !strings.Contains(body, "/settings/registries/hub/public/reset") {
		t.Error("no reset for the hub.public override")
	}
	res, body = f.do("POST", "/settings/registries/hub/public/reset", nil)
	want(t, res, body, http.StatusSeeOther)
	res, body = f.do("POST", "/settings/registries/hub/public/delete", nil)
	want(t, res, body, http.StatusConflict)
	res, body = f.do("POST", "/settings/registries/custom/filed/edit", url.Values{"v.url": {reg.URL}})
	want(t, res, body, http.StatusConflict)
	res, body = f.do("POST", "/settings/registries/custom/mine/delete", nil)
	want(t, res, body, http.StatusSeeOther)
	_, body = f.do("GET", "/settings/registries", nil)
	if strings.Contains(body, `id="reg-custom.mine"`) {
		t.Error("custom.mine still has a tile")
	}
}

func TestOpenAPI(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, nil)
	res, body := f.do("GET", "/api/v1/openapi.json", nil)
	want(t, res, body, http.StatusOK)
	doc := decode[struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}](t, body)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	// Every route is documented, with its methods.
	routes := map[string][]string{
		"/healthz": {"get"}, "/status": {"get"}, "/watchers": {"get"}, "/check": {"post"}, "/images": {"get"}, "/history": {"get"},
		"/registries": {"get", "post"}, "/registries/test": {"post"},
		"/registries/{kind}/{name}":       {"get", "put", "delete"},
		"/registries/{kind}/{name}/reset": {"post"}, "/registries/{kind}/{name}/test": {"post"},
		"/notifiers": {"get", "post"}, "/notifiers/{name}": {"get", "put", "delete"}, "/notifiers/{name}/test": {"post"},
		"/notifiers/{name}/outbox": {"get"}, "/notifiers/{name}/outbox/retry": {"post"},
		"/backup": {"get"}, "/openapi.json": {"get"},
		"/images/accept": {"post"}, "/images/{key}/accept": {"post"},
	}
	for path, methods := range routes {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("openapi.json lacks %s %s", m, path)
			}
		}
	}
	if len(doc.Paths) != len(routes) {
		t.Errorf("openapi.json documents %d paths, the server has %d", len(doc.Paths), len(routes))
	}
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr        string
		auth, allow bool
		ok          bool
	}{
		{"127.0.0.1:8080", false, false, true},
		{"localhost:8080", false, false, true},
		{"[::1]:8080", false, false, true},
		{":8080", false, false, false},
		{"0.0.0.0:8080", false, false, false},
		{"192.168.1.5:8080", false, false, false},
		{"0.0.0.0:8080", true, false, true},
		{":8080", false, true, true},
		{"nonsense", false, false, false},
	} {
		err := web.CheckListen(c.addr, c.auth, c.allow)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, %v, %v) = %v", c.addr, c.auth, c.allow, err)
		}
	}
	if err := web.CheckListen(":8080", false, false); err == nil || !strings.Contains(err.Error(), "web.auth") {
		t.Errorf("the error does not say what to do: %v", err)
	}
}

// TestRateLimit shows the pull allowance a registry reported (Docker Hub's
// ratelimit-* headers) in the API and on the tile.
func TestRateLimit(t *testing.T) {
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Ratelimit-Limit", "100;w=21600")
		w.Header().Set("Ratelimit-Remaining", "76;w=21600")
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(limited.Close)
	f := newFixture(t, config.WebAuth{}, nil)
	res, body := f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "limited", "values": map[string]string{"url": limited.URL}})
	want(t, res, body, http.StatusCreated)
	if strings.Contains(body, "rateLimit") {
		t.Errorf("a rate limit before any request: %s", body)
	}
	res, body = f.do("POST", "/api/v1/registries/custom/limited/test", nil)
	want(t, res, body, http.StatusOK)
	if tr := decode[apiTest](t, body); !tr.OK {
		t.Fatalf("test = %+v", tr)
	}
	res, body = f.do("GET", "/api/v1/registries/custom/limited", nil)
	want(t, res, body, http.StatusOK)
	rl := decode[struct {
		RateLimit *struct{ Limit, Remaining, Window int } `json:"rateLimit"`
	}](t, body).RateLimit
	if rl == nil || rl.Limit != 100 || rl.Remaining != 76 || rl.Window != 21600 {
		t.Errorf("rateLimit = %+v in %s", rl, body)
	}
	_, body = f.do("GET", "/settings/registries", nil)
	if !strings.Contains(body, "76 of 100 per 6 h") {
		t.Error("the tile does not show the pull allowance")
	}
}
