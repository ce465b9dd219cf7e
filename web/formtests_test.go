package web_test

import (
	"net/http"
	"testing"

	"github.com/tagwatch/tagwatch/config"
)

// TestFormTestKeptOnSave: a connection test of settings not saved yet is
// put on the tile when exactly those settings are saved (name, values and
// secrets alike, the server telling them apart), and only then. Real
// registry, real store.
func TestFormTestKeptOnSave(t *testing.T) {
	reg := startRegistry(t)
	f := newFixture(t, config.WebAuth{}, nil)
	values := func(password string) map[string]string {
		return map[string]string{"url": reg.URL, "login": "alice", "password": password}
	}
	test := func(name, password string) apiTest {
		t.Helper()
		res, body := f.do("POST", "/api/v1/registries/test", map[string]any{"kind": "custom", "name": name, "values": values(password)})
		want(t, res, body, http.StatusOK)
		return decode[apiTest](t, body)
	}
	save := func(method, path, name, password string) apiRegistry {
		t.Helper()
		res, body := f.do(method, path, map[string]any{"kind": "custom", "name": name, "values": values(password)})
		if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, body)
		}
		return decode[apiRegistry](t, body)
	}
	get := func(name string) apiRegistry {
		t.Helper()
		res, body := f.do("GET", "/api/v1/registries/custom/"+name, nil)
		want(t, res, body, http.StatusOK)
		return decode[apiRegistry](t, body)
	}

	// Tested, then saved as tested: the tile has the test and its time.
	tv := test("mine", alicePassword)
	if !tv.OK {
		t.Fatalf("test = %+v", tv)
	}
	r := save("POST", "/api/v1/registries", "mine", alicePassword)
	if r.Test == nil || !r.Test.OK || !r.Test.TestedAt.Equal(tv.TestedAt) {
		t.Errorf("saved after a passing test: test = %+v, want ok at %v", r.Test, tv.TestedAt)
	}
	if g := get("mine"); g.Test == nil || !g.Test.TestedAt.Equal(tv.TestedAt) {
		t.Errorf("GET: test = %+v", g.Test)
	}

	// A failing test is kept the same way, with its reason and the facts
	// behind it.
	failed := test("mine", wrongPassword)
	r = save("PUT", "/api/v1/registries/custom/mine", "mine", wrongPassword)
	if r.Test == nil || r.Test.OK || r.Test.Error != failed.Error || failed.ErrorDetail == "" || r.Test.ErrorDetail != failed.ErrorDetail ||
		!r.Test.TestedAt.Equal(failed.TestedAt) {
		t.Errorf("saved after a failing test: test = %+v, want %+v", r.Test, failed)
	}

	// Tested with one password, saved with another: not tested.
	test("mine", wrongPassword)
	if r = save("PUT", "/api/v1/registries/custom/mine", "mine", "never-Tested-Passw0rd"); r.Test != nil {
		t.Errorf("saved other settings than tested: test = %+v", r.Test)
	}
	// Back to settings tested a moment ago: their test holds.
	if r = save("PUT", "/api/v1/registries/custom/mine", "mine", alicePassword); r.Test == nil || !r.Test.OK {
		t.Errorf("saved settings tested earlier: test = %+v", r.Test)
	}

	// Editing with the password left blank tests and saves the stored one.
	save("PUT", "/api/v1/registries/custom/mine", "mine", wrongPassword)
	tv = test("mine", "")
	if r = save("PUT", "/api/v1/registries/custom/mine", "mine", ""); tv.OK || r.Test == nil || !r.Test.TestedAt.Equal(tv.TestedAt) {
		t.Errorf("blank password kept: test %+v, saved test = %+v", tv, r.Test)
	}

	// The name is part of the settings.
	test("other", alicePassword)
	if r = save("POST", "/api/v1/registries", "another", alicePassword); r.Test != nil {
		t.Errorf("saved under another name than tested: test = %+v", r.Test)
	}
}
