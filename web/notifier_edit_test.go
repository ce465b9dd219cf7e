package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/config"
)

// The tokens of notifiers saved through the UI and the API.
const (
	uiToken  = "UiT0kenQwertyuiop0123456789"
	uiToken2 = "UiT0kenSecondZxcvbnm9876543"
)

type apiNotifierRW struct {
	apiNotifier
	ReadOnly bool `json:"readOnly"`
	Active   bool `json:"active"`
}

func listed(t *testing.T, f *fixture) map[string]apiNotifierRW {
	t.Helper()
	res, body := f.do("GET", "/api/v1/notifiers", nil)
	want(t, res, body, http.StatusOK)
	out := map[string]apiNotifierRW{}
	for _, n := range decode[struct {
		Notifiers []apiNotifierRW `json:"notifiers"`
	}](t, body).Notifiers {
		out[n.Name] = n
	}
	return out
}

func fieldsOf(e apiError) map[string]string {
	out := map[string]string{}
	for _, fe := range e.Fields {
		out[fe.Field] = fe.Message
	}
	return out
}

// TestNotifiersEditAPI creates, edits and deletes notifiers through the
// API; config-file notifiers stay read-only, and the url's token never
// comes back (the fixture greps every body and the log).
func TestNotifiersEditAPI(t *testing.T) {
	file, team := startReceiver(t, false), startReceiver(t, false)
	n := startNotifiers(t, map[string]map[string]string{"hook": hookSettings(file)})
	f := newFixtureWith(t, config.WebAuth{}, nil, n)
	teamURL := team.URL + "/team/" + uiToken

	// Create.
	res, body := f.do("POST", "/api/v1/notifiers", map[string]any{"name": "team",
		"settings": map[string]string{"url": teamURL, "type": "webhook", "threshold": "major", "batch": "true"}})
	want(t, res, body, http.StatusCreated)
	if loc := res.Header.Get("Location"); loc != "/api/v1/notifiers/team" {
		t.Errorf("Location %q", loc)
	}
	v := decode[apiNotifierRW](t, body)
	if v.Source != "ui" || v.ReadOnly || !v.Active || v.Threshold != "major" || !v.Batch || v.URL != team.URL+"/***" {
		t.Errorf("created: %s", body)
	}
	all := listed(t, f)
	if len(all) != 2 || all["hook"].Source != "file" || !all["hook"].ReadOnly || all["team"].Source != "ui" {
		t.Errorf("list after create: %+v", all)
	}
	res, body = f.do("GET", "/api/v1/notifiers/team", nil)
	want(t, res, body, http.StatusOK)

	// It runs at once, and is kept with its url in the store only.
	res, body = f.do("POST", "/api/v1/notifiers/team/test", nil)
	want(t, res, body, http.StatusOK)
	if got := team.got(); len(got) != 1 || got[0].Notifier != "team" {
		t.Fatalf("team's receiver got %+v", got)
	}
	recs, err := f.st.Notifiers()
	if err != nil || len(recs) != 1 || recs[0].Secrets["url"] != teamURL || recs[0].Settings["threshold"] != "major" {
		t.Fatalf("stored: %+v, %v", recs, err)
	}
	if _, ok := recs[0].Settings["url"]; ok {
		t.Error("the url is stored with the settings in the clear")
	}

	// Validation: every bad setting beside its field, through notify.Parse.
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "bad",
		"settings": map[string]string{"url": "https://hooks.example/" + uiToken2, "threshold": "huge", "images": "(", "digest": "maybe", "colour": "red"}})
	want(t, res, body, http.StatusBadRequest)
	fields := fieldsOf(decode[apiError](t, body))
	for _, k := range []string{"type", "threshold", "images", "digest", "colour"} {
		if fields[k] == "" {
			t.Errorf("no error for %s: %s", k, body)
		}
	}
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "nourl", "settings": map[string]string{"type": "webhook"}})
	want(t, res, body, http.StatusBadRequest)
	if fieldsOf(decode[apiError](t, body))["url"] == "" {
		t.Errorf("no url error: %s", body)
	}
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "Bad Name", "settings": map[string]string{"url": teamURL, "type": "webhook"}})
	want(t, res, body, http.StatusBadRequest)
	if fieldsOf(decode[apiError](t, body))["name"] == "" {
		t.Errorf("no name error: %s", body)
	}

	// Names: a config-file notifier's, or one taken, is a conflict.
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "hook", "settings": map[string]string{"url": teamURL, "type": "webhook"}})
	want(t, res, body, http.StatusConflict)
	if fieldsOf(decode[apiError](t, body))["name"] != "is defined in the config file" {
		t.Errorf("file name conflict: %s", body)
	}
	res, body = f.do("POST", "/api/v1/notifiers", map[string]any{"name": "team", "settings": map[string]string{"url": teamURL, "type": "webhook"}})
	want(t, res, body, http.StatusConflict)

	// Config-file notifiers are read-only; unknown ones are 404.
	for _, c := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"PUT", "/api/v1/notifiers/hook", map[string]any{"settings": map[string]string{"threshold": "major"}}, http.StatusConflict},
		{"DELETE", "/api/v1/notifiers/hook", nil, http.StatusConflict},
		{"PUT", "/api/v1/notifiers/nope", map[string]any{"settings": map[string]string{"url": teamURL, "type": "webhook"}}, http.StatusNotFound},
		{"DELETE", "/api/v1/notifiers/nope", nil, http.StatusNotFound},
		{"PUT", "/api/v1/notifiers/team", map[string]any{"name": "other"}, http.StatusBadRequest},
		{"PUT", "/api/v1/notifiers/team", map[string]any{"settings": map[string]string{"type": "webhook", "threshold": "nope"}}, http.StatusBadRequest},
	} {
		res, body := f.do(c.method, c.path, c.body)
		want(t, res, body, c.code)
		if decode[apiError](t, body).Error == "" {
			t.Errorf("%s %s: no error message", c.method, c.path)
		}
	}
	if all := listed(t, f); all["hook"].Threshold != "minor" || all["team"].Threshold != "major" {
		t.Errorf("a refused change changed something: %+v", all)
	}

	// Edit without the url: the saved one is kept, the rest replaced.
	res, body = f.do("PUT", "/api/v1/notifiers/team", map[string]any{"settings": map[string]string{"type": "webhook", "threshold": "minor", "url": ""}})
	want(t, res, body, http.StatusOK)
	if v := decode[apiNotifierRW](t, body); v.Threshold != "minor" || v.Batch || v.URL != team.URL+"/***" || v.Test != nil {
		t.Errorf("edited: %s", body)
	}
	res, body = f.do("POST", "/api/v1/notifiers/team/test", nil)
	want(t, res, body, http.StatusOK)
	if len(team.got()) != 2 {
		t.Errorf("team's receiver got %d messages, want 2", len(team.got()))
	}
	recs, _ = f.st.Notifiers()
	if len(recs) != 1 || recs[0].Secrets["url"] != teamURL || recs[0].Settings["batch"] != "" {
		t.Errorf("stored after edit: %+v", recs)
	}

	// Delete: gone from the running set and the store.
	res, body = f.do("DELETE", "/api/v1/notifiers/team", nil)
	want(t, res, body, http.StatusNoContent)
	if all := listed(t, f); len(all) != 1 {
		t.Errorf("after delete: %+v", all)
	}
	if recs, _ := f.st.Notifiers(); len(recs) != 0 {
		t.Errorf("stored after delete: %+v", recs)
	}
	res, body = f.do("POST", "/api/v1/notifiers/team/test", nil)
	want(t, res, body, http.StatusNotFound)
}

// TestNotifiersEditForms adds, edits and deletes a notifier through the
// page's forms, with errors beside their fields.
func TestNotifiersEditForms(t *testing.T) {
	file, team := startReceiver(t, false), startReceiver(t, false)
	f := newFixtureWith(t, config.WebAuth{}, nil, startNotifiers(t, map[string]map[string]string{"hook": hookSettings(file)}))
	teamURL := team.URL + "/team/" + uiToken

	res, body := f.do("GET", "/settings/notifications", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, `href="/settings/notifications/new"`) || strings.Contains(body, `/settings/notifications/hook/edit`) ||
		strings.Contains(body, `/settings/notifications/hook/delete`) {
		t.Error("the page should offer Add, and no Edit or Delete on a config-file notifier")
	}
	res, body = f.do("GET", "/settings/notifications/new", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{`name="name"`, `name="url" type="password"`, `name="type"`, `<option value="webhook"`, `<option value="apprise"`,
		`name="threshold"`, `<option value="minor"`, `name="images"`, `name="batch"`, `name="digest"`, `name="title"`, `name="body"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the form lacks %q", s)
		}
	}

	// Invalid: the errors beside the fields, the posted values kept, the url not.
	form := url.Values{"name": {"team"}, "url": {teamURL}, "threshold": {"minor"}, "images": {"("}}
	res, body = f.do("POST", "/settings/notifications/new", form)
	want(t, res, body, http.StatusBadRequest)
	for _, s := range []string{`id="form-errors"`, `<p class="error" data-error-for="type">an http(s) url needs type`,
		`<p class="error" data-error-for="images">bad regular expression`, `<option value="minor" selected>`, `id="retype"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the invalid form lacks %q", s)
		}
	}
	res, body = f.do("POST", "/settings/notifications/new", url.Values{"name": {"hook"}, "url": {teamURL}, "type": {"webhook"}})
	want(t, res, body, http.StatusConflict)
	if !strings.Contains(body, `data-error-for="name">is defined in the config file`) {
		t.Error("no name conflict beside the name")
	}

	// Valid: saved, applied, shown as a UI tile with Edit and Delete.
	form.Set("type", "webhook")
	form.Set("images", "")
	res, body = f.do("POST", "/settings/notifications/new", form)
	want(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/settings/notifications?saved=team#notifier-team" {
		t.Errorf("redirect to %q", loc)
	}
	res, body = f.do("GET", "/settings/notifications?saved=team", nil)
	want(t, res, body, http.StatusOK)
	for _, s := range []string{"Saved team", `id="notifier-team"`, `<span class="badge src-ui">UI</span>`, `href="/settings/notifications/team/edit"`,
		`action="/settings/notifications/team/delete"`, `<details class="confirm">`, team.URL + "/***"} {
		if !strings.Contains(body, s) {
			t.Errorf("the page lacks %q", s)
		}
	}

	// Edit: the url is never sent back; blank keeps it.
	res, body = f.do("GET", "/settings/notifications/team/edit", nil)
	want(t, res, body, http.StatusOK)
	if !strings.Contains(body, "saved · leave blank to keep") || !strings.Contains(body, `<option value="minor" selected>`) {
		t.Error("the edit form lacks the saved settings")
	}
	res, body = f.do("POST", "/settings/notifications/team/edit", url.Values{"url": {""}, "type": {"webhook"}, "threshold": {"major"}})
	want(t, res, body, http.StatusSeeOther)
	if all := listed(t, f); all["team"].Threshold != "major" || all["team"].URL != team.URL+"/***" {
		t.Errorf("after the edit: %+v", all["team"])
	}
	res, body = f.do("GET", "/settings/notifications/hook/edit", nil)
	want(t, res, body, http.StatusConflict)

	// Delete, from the tile's confirmation.
	res, body = f.do("POST", "/settings/notifications/team/delete", url.Values{})
	want(t, res, body, http.StatusSeeOther)
	_, body = f.do("GET", "/settings/notifications?deleted=team", nil)
	if !strings.Contains(body, "Deleted team.") || strings.Contains(body, `id="notifier-team"`) {
		t.Error("the notifier is still shown after delete")
	}
	res, body = f.do("POST", "/settings/notifications/hook/delete", url.Values{})
	want(t, res, body, http.StatusConflict)
}
