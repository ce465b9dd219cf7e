package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestWebAuthValidated: web.auth is checked like every other key, and
// its errors name the file, the line and the field, never the value (a
// value in the wrong place may be a password in clear).
func TestWebAuthValidated(t *testing.T) {
	hash := bcryptHash(t, "correct horse")
	costly, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// The same hash with cost 31 written in: bcrypt.Cost reads it from the prefix.
	tooCostly := "$2a$31$" + string(costly[7:])
	const plain = "Plain-Text-Pa55word"
	const shortToken = "tok-7f3a9"
	tests := []struct {
		name string
		body string
		env  []string
		want []string
	}{
		{"password without username", "web:\n  auth:\n    password: '" + hash + "'\n", nil,
			[]string{":3: web.auth.username: must be defined when password is defined"}},
		{"username without password", "web:\n  listen: 127.0.0.1:8080\n  auth:\n    username: admin\n", nil,
			[]string{":4: web.auth.password: must be defined when username is defined", "tagwatch config hash-password"}},
		{"password in clear", "web:\n  auth:\n    username: admin\n    password: " + plain + "\n", nil,
			[]string{":4: web.auth.password: must be a bcrypt hash", "tagwatch config hash-password"}},
		{"a cut hash", "web:\n  auth:\n    username: admin\n    password: '" + hash[:30] + "'\n", nil,
			[]string{":4: web.auth.password: is not a whole bcrypt hash"}},
		{"cost too high", "web:\n  auth:\n    username: admin\n    password: '" + tooCostly + "'\n", nil,
			[]string{":4: web.auth.password: has bcrypt cost 31"}},
		{"short token", "web:\n  auth:\n    token: " + shortToken + "\n", nil,
			[]string{":3: web.auth.token: is 9 characters long; use at least 24", "tagwatch config token"}},
		{"short token from the environment", "", []string{"TAGWATCH_WEB_AUTH_TOKEN=" + shortToken},
			[]string{"environment TAGWATCH_WEB_AUTH_TOKEN: web.auth.token: is 9 characters long"}},
		{"password in clear from the environment", "", []string{"TAGWATCH_WEB_AUTH_USERNAME=admin", "TAGWATCH_WEB_AUTH_PASSWORD=" + plain},
			[]string{"environment TAGWATCH_WEB_AUTH_PASSWORD: web.auth.password: must be a bcrypt hash"}},
		{"bad host", "web:\n  hosts:\n    - tagwatch.example.com\n    - https://user:Pa55@proxy.example.com/\n    - nas.lan:8080\n    - ''\n", nil,
			[]string{":4: web.hosts[1]: is not a host name", ":5: web.hosts[2]: \"nas.lan:8080\" has a port", ":6: web.hosts[3]: is empty"}},
		{"bad host from the environment", "", []string{"TAGWATCH_WEB_HOSTS=ok.example, bad_host!"},
			[]string{"environment TAGWATCH_WEB_HOSTS: web.hosts[1]: \"bad_host!\" is not a host name"}},
		{"bad allowlinklocal", "", []string{"TAGWATCH_WEB_ALLOWLINKLOCAL=maybe"},
			[]string{"environment TAGWATCH_WEB_ALLOWLINKLOCAL: web.allowlinklocal: must be true or false"}},
		// yaml quotes the value it cannot read; its userinfo goes.
		{"a url where a bool goes", "web:\n  allowremote: ftp://user:Pa55@h.example\n", nil,
			[]string{":2: web.allowremote: must be true or false"}},
		{"a url with a password in a registry", "registries:\n  custom:\n    x: {url: 'ftp://user:Pa55@h.example'}\n", nil,
			[]string{":3: registries.custom.x.url: must start with http:// or https://, not ftp://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			for _, w := range tt.want {
				mentions(t, err, p, w)
			}
			for _, secret := range []string{plain, shortToken, "Pa55"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes %q:\n%v", secret, err)
				}
			}
		})
	}
}

func TestWebAuthGood(t *testing.T) {
	hash := bcryptHash(t, "correct horse")
	p := write(t, "web:\n  auth:\n    username: admin\n    password: '"+hash+"'\n    token: 0123456789abcdef0123456789abcdef\n  hosts: [Tagwatch.Example.com., '[::1]', 192.168.1.5]\n  allowlinklocal: true\n")
	c, err := config.Load(p, nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Web.Auth.Enabled() || c.Web.Auth.Password != hash || len(c.Web.Hosts) != 3 || !c.Web.AllowLinkLocal {
		t.Errorf("web = %+v", c.Web)
	}
}

// TestEnvCoversEveryWebSetting sets each of Web's YAML keys through
// TAGWATCH_WEB_<KEY>: a new field without an environment variable fails
// here, and so does one the README's environment table does not name.
func TestEnvCoversEveryWebSetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"listen": "127.0.0.1:9000", "hosts": "a.example,b.example", "allowremote": "true", "allowlinklocal": "true",
	}
	for f := range reflect.TypeFor[config.Web]().Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "auth" {
			continue // its three keys below
		}
		v, ok := values[tag]
		if !ok {
			t.Errorf("Web.%s (%s): no test value; add one here and a TAGWATCH_WEB_%s variable", f.Name, tag, strings.ToUpper(tag))
			continue
		}
		env := "TAGWATCH_WEB_" + strings.ToUpper(tag)
		c, err := config.Load("", []string{env + "=" + v}, registries.DefaultCatalog())
		if err != nil {
			t.Errorf("%s: %v", env, err)
			continue
		}
		if reflect.ValueOf(c.Web).FieldByName(f.Name).IsZero() {
			t.Errorf("%s did not set Web.%s", env, f.Name)
		}
		if !strings.Contains(string(readme), "`"+env+"`") {
			t.Errorf("README.md does not list %s", env)
		}
	}
	for _, env := range []string{"TAGWATCH_WEB_AUTH_USERNAME", "TAGWATCH_WEB_AUTH_PASSWORD", "TAGWATCH_WEB_AUTH_TOKEN"} {
		if !strings.Contains(string(readme), "`"+env+"`") {
			t.Errorf("README.md does not list %s", env)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Tagwatch.Example.COM.": "tagwatch.example.com",
		"[::1]":                 "::1",
		"10.0.0.5":              "10.0.0.5",
		"my_nas":                "my_nas",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"bücher.example":        "",
		"a..b":                  "",
		"host/path":             "",
	} {
		got, err := config.NormalizeHost(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
