package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/store"
)

func sha(c string) string { return "sha256:" + strings.Repeat(c, 64) }

// acceptImages are one record of each kind Mark as current meets.
func acceptImages() []store.Image {
	listed := func(key, update, latestTag, latest string) store.Image {
		return store.Image{Key: key + " linux/amd64", Image: "registry.lan:5000/team/" + key, Reference: "registry.lan:5000/team/" + key,
			Registry: "custom.lan", Platform: "linux/amd64", Where: []store.Location{{Watcher: "config", Kind: "config"}},
			Tag: "latest", Digest: sha("a"), Baseline: sha("a"), LatestTag: latestTag, LatestDigest: latest, Update: update,
			LastChecked: time.Now().UTC()}
	}
	newTag := listed("registry.lan:5000/team/newtag:1.0.0", "minor", "1.1.0", sha("e"))
	newTag.Tag = "1.0.0"
	container := listed("registry.lan:5000/team/web:latest", "digest", "latest", sha("c"))
	container.Baseline, container.Where = "", []store.Location{{Watcher: "local", Kind: "docker", Place: "web", Container: "web"}}
	return []store.Image{
		listed("registry.lan:5000/team/app:latest", "digest", "latest", sha("b")),
		listed("registry.lan:5000/team/db:16", "digest", "16", sha("d")),
		newTag,
		container,
		listed("registry.lan:5000/team/same:latest", "none", "latest", sha("a")),
	}
}

// TestAcceptAPI: POST /api/v1/images/{key}/accept accepts a listed image's
// new digest (idempotent), refuses with what to do instead for a newer tag
// or a container, 404s an unknown key; POST /api/v1/images/accept accepts
// every one that can be; the dashboard offers the button on those rows only.
func TestAcceptAPI(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, &fakeDaemon{})
	imgs := acceptImages()
	if err := f.st.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	app, db, newTag, container, same := imgs[0], imgs[1], imgs[2], imgs[3], imgs[4]
	path := func(key string) string { return "/api/v1/images/" + url.PathEscape(key) + "/accept" }

	// The dashboard: a button on the two listed digest updates only.
	_, page := f.do("GET", "/", nil)
	if n := strings.Count(page, `<form method="post" action="/images/accept" class="accept"`); n != 2 {
		t.Errorf("the dashboard has %d Mark as current forms, want 2", n)
	}
	for _, img := range []store.Image{app, db} {
		if !strings.Contains(page, `data-key="`+img.Key+`"`) {
			t.Errorf("no Mark as current for %s", img.Key)
		}
	}

	type answer struct {
		Accepted bool        `json:"accepted"`
		Image    store.Image `json:"image"`
	}
	res, body := f.do("POST", path(app.Key), nil)
	want(t, res, body, http.StatusOK)
	a := decode[answer](t, body)
	if !a.Accepted || a.Image.Update != "none" || a.Image.Baseline != sha("b") || a.Image.Digest != sha("b") || a.Image.AcceptedAt.IsZero() {
		t.Errorf("accept %s: %+v", app.Key, a)
	}
	if stored, _, _ := f.st.Image(app.Key); stored.Update != "none" || stored.Baseline != sha("b") {
		t.Errorf("stored after the accept: %+v", stored)
	}
	res, body = f.do("POST", path(app.Key), "{}", "Content-Type", "application/json")
	want(t, res, body, http.StatusOK)
	if a := decode[answer](t, body); a.Accepted || a.Image.Baseline != sha("b") {
		t.Errorf("accepting again: %+v; want accepted false, nothing changed", a)
	}
	res, body = f.do("POST", path(same.Key), nil)
	want(t, res, body, http.StatusOK)
	if a := decode[answer](t, body); a.Accepted || a.Image.Update != "none" {
		t.Errorf("accepting an image without an update: %+v", a)
	}

	refusals := []struct {
		key  string
		code int
		says []string
	}{
		{newTag.Key, http.StatusConflict, []string{"has a newer tag, 1.1.0", "nothing to accept", "The config file names the tag; change it there"}},
		{container.Key, http.StatusConflict, []string{"is the one its engine runs", "pull the image and recreate the container"}},
		{"registry.lan:5000/team/gone:latest linux/amd64", http.StatusNotFound, []string{`No image is watched under the key "registry.lan:5000/team/gone:latest linux/amd64".`}},
	}
	for _, r := range refusals {
		res, body := f.do("POST", path(r.key), nil)
		want(t, res, body, r.code)
		msg := decode[apiError](t, body).Error
		for _, s := range r.says {
			if !strings.Contains(msg, s) {
				t.Errorf("POST %s: %q lacks %q", path(r.key), msg, s)
			}
		}
	}
	for _, img := range []store.Image{newTag, container} {
		if stored, _, _ := f.st.Image(img.Key); stored.Update != img.Update || !stored.AcceptedAt.IsZero() {
			t.Errorf("%s changed by a refused accept: %+v", img.Key, stored)
		}
	}

	// Accept all: a key that names nothing refuses the lot.
	res, body = f.do("POST", "/api/v1/images/accept", map[string]any{"keys": []string{db.Key, "nope"}})
	want(t, res, body, http.StatusNotFound)
	if stored, _, _ := f.st.Image(db.Key); stored.Update != "digest" {
		t.Errorf("a refused accept-all changed db: %+v", stored)
	}
	res, body = f.do("POST", "/api/v1/images/accept", "not json", "Content-Type", "application/json")
	want(t, res, body, http.StatusBadRequest)
	res, body = f.do("POST", "/api/v1/images/accept", nil)
	want(t, res, body, http.StatusOK)
	all := decode[struct{ Accepted []store.Image }](t, body)
	if len(all.Accepted) != 1 || all.Accepted[0].Key != db.Key || all.Accepted[0].Baseline != sha("d") {
		t.Errorf("accept all: %+v; want db only (app is done, the rest cannot be)", all.Accepted)
	}
	res, body = f.do("POST", "/api/v1/images/accept", map[string]any{"keys": []string{}})
	want(t, res, body, http.StatusOK)
	if all := decode[struct{ Accepted []store.Image }](t, body); all.Accepted == nil || len(all.Accepted) != 0 {
		t.Errorf("accept none: %s", body)
	}
	if !strings.Contains(f.logs.String(), "digest accepted as current") {
		t.Error("the accepts were not logged")
	}
	_, page = f.do("GET", "/", nil)
	if strings.Contains(page, `class="accept"`) {
		t.Error("the dashboard still offers Mark as current")
	}
}

// TestAcceptForm: Mark as current works without JavaScript: the form posts,
// the dashboard says what happened; a refusal shows its reason.
func TestAcceptForm(t *testing.T) {
	f := newFixture(t, config.WebAuth{}, &fakeDaemon{})
	imgs := acceptImages()
	if err := f.st.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	res, body := f.do("POST", "/images/accept", url.Values{"key": {imgs[0].Key}})
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/?accepted=1" {
		t.Fatalf("redirected to %q", loc)
	}
	_, page := f.do("GET", "/?accepted=1", nil)
	if !strings.Contains(page, "Marked 1 image as current") {
		t.Errorf("no flash after the accept:\n%s", page)
	}
	if stored, _, _ := f.st.Image(imgs[0].Key); stored.Update != "none" {
		t.Errorf("not accepted: %+v", stored)
	}
	res, body = f.do("POST", "/images/accept", url.Values{"key": {imgs[3].Key}})
	want(t, res, body, http.StatusConflict)
	if !strings.Contains(body, "pull the image and recreate the container") {
		t.Errorf("the refusal page lacks the reason:\n%s", body)
	}
	// No key: all of them.
	res, body = f.do("POST", "/images/accept", url.Values{})
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/?accepted=1" {
		t.Errorf("accept all redirected to %q, want one accepted (db)", loc)
	}
	_, page = f.do("GET", "/?accepted=0", nil)
	if !strings.Contains(page, "Nothing to mark as current") {
		t.Error("no flash for nothing accepted")
	}
}

// TestAcceptNeedsAuthAndSameOrigin: accepting changes state: behind the
// API's authentication, and refused across origins.
func TestAcceptNeedsAuthAndSameOrigin(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pass-word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, config.WebAuth{Username: "admin", Password: string(hash), Token: "api-token-accept-1"}, &fakeDaemon{})
	imgs := acceptImages()
	if err := f.st.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	one := "/api/v1/images/" + url.PathEscape(imgs[0].Key) + "/accept"
	for _, p := range []string{one, "/api/v1/images/accept", "/images/accept"} {
		res, body := f.do("POST", p, nil)
		want(t, res, body, http.StatusUnauthorized)
		res, body = f.do("POST", p, nil, "Authorization", "Bearer api-token-accept-1", "Sec-Fetch-Site", "cross-site")
		want(t, res, body, http.StatusForbidden)
	}
	if stored, _, _ := f.st.Image(imgs[0].Key); stored.Update != "digest" {
		t.Fatalf("accepted without credentials: %+v", stored)
	}
	res, body := f.do("POST", one, nil, "Authorization", "Bearer api-token-accept-1")
	want(t, res, body, http.StatusOK)
}
