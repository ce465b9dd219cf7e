package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func registry(t *testing.T, c *config.Config, id string) registries.Config {
	t.Helper()
	for _, r := range c.Registries {
		if r.ID() == id {
			return r
		}
	}
	t.Fatalf("no registry %s in %+v", id, c.Registries)
	return registries.Config{}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := config.Load("../config.example.yml", nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatalf("config.example.yml: %v", err)
	}
	shpcr := registry(t, c, "custom.shpcr")
	if shpcr.Values["url"] != "https://shpcr.io" || shpcr.Values["login"] != "seller@example.com" {
		t.Errorf("custom.shpcr = %+v", shpcr.Values)
	}
	if len(c.Images) == 0 || c.Images[1].Options.Include == nil {
		t.Errorf("images: %+v", c.Images)
	}
}

func TestEnvironmentOverFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := write(t, "registries:\n  custom:\n    shpcr: {url: https://shpcr.io, login: a@example.com, password: in-file}\n")
	c, err := config.Load(p, []string{
		"TAGWATCH_REGISTRY_CUSTOM_SHPCR_LOGIN=b@example.com",
		"TAGWATCH_REGISTRY_CUSTOM_SHPCR_PASSWORD_FILE=" + secret,
		"TAGWATCH_REGISTRY_GITLAB_MY_WORK_URL=https://registry.gitlab.com",
		"TAGWATCH_REGISTRY_GITLAB_MY_WORK_AUTHURL=https://gitlab.com",
		"TAGWATCH_REGISTRY_GITLAB_MY_WORK_TOKEN=glpat",
		"TAGWATCH_WEB_LISTEN=127.0.0.1:9999",
		"PATH=/usr/bin",
	}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if v := registry(t, c, "custom.shpcr").Values; v["login"] != "b@example.com" || v["password"] != "from-file" || v["url"] != "https://shpcr.io" {
		t.Errorf("custom.shpcr = %+v", v)
	}
	if v := registry(t, c, "gitlab.my_work").Values; v["token"] != "glpat" {
		t.Errorf("gitlab.my_work = %+v", v)
	}
	if c.Web.Listen != "127.0.0.1:9999" {
		t.Errorf("listen %q", c.Web.Listen)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want []string
	}{
		{"rule broken", "registries:\n  custom:\n    x:\n      url: https://r.example\n      login: me\n",
			nil, []string{":3: registries.custom.x.password: must be defined when login is defined"}},
		{"unknown variable", "registries:\n  hub:\n    public:\n      user: me\n",
			nil, []string{":4: registries.hub.public.user: is not a variable of hub registries"}},
		{"unknown kind", "registries:\n  dockerhub:\n    a: {}\n", nil, []string{":2: registries.dockerhub: unknown registry kind"}},
		{"bad name", "registries:\n  custom:\n    My.Reg: {url: http://x}\n", nil, []string{":3: registries.custom.My.Reg: instance name"}},
		{"unknown top-level key", "registry:\n  hub: {}\n", nil, []string{"line 1: field registry not found"}},
		{"bad regex", "images:\n  - image: nginx:1.25\n  - image: redis\n    tag: {exclude: '(['}\n",
			nil, []string{":3: images[1] (redis): exclude: error parsing regexp"}},
		{"bad template", "images:\n  - image: nginx\n    link: {template: '{{.Tag'}\n", nil, []string{":2: images[0] (nginx): link.template:"}},
		{"from the environment", "", []string{"TAGWATCH_REGISTRY_QUAY_PUBLIC_TOKEN=x"},
			[]string{"environment TAGWATCH_REGISTRY_QUAY_PUBLIC_TOKEN: registries.quay.public.namespace: must be defined when token is defined"}},
		{"unknown setting", "", []string{"TAGWATCH_WEB_LISTN=x"}, []string{"environment TAGWATCH_WEB_LISTN: web.listn: is not a tagwatch setting"}},
		{"secret file missing", "", []string{"TAGWATCH_REGISTRY_HUB_PUBLIC_PASSWORD_FILE=/nonexistent/x"}, []string{"environment TAGWATCH_REGISTRY_HUB_PUBLIC_PASSWORD_FILE: registries.hub.public.password: reading the file it names"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			for _, w := range tt.want {
				mentions(t, err, p, w)
			}
		})
	}
}

// loadError writes body as a config file, loads it with env, and returns
// the file's path and the error, failing the test when there is none.
func loadError(t *testing.T, body string, env []string) (string, error) {
	t.Helper()
	p := write(t, body)
	_, err := config.Load(p, env, registries.DefaultCatalog())
	if err == nil {
		t.Fatal("no error")
	}
	return p, err
}

// mentions checks that err says want; a want starting with ":" is a line of
// the file at path, so the error must name the file before it.
func mentions(t *testing.T, err error, path, want string) {
	t.Helper()
	if strings.HasPrefix(want, ":") {
		want = path + want
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%v", want, err)
	}
}

func TestEmptyConfigIsDefaults(t *testing.T) {
	c, err := config.Load(write(t, ""), nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Registries) != 0 || c.Platform != "linux/amd64" || c.Web.Listen != "127.0.0.1:8080" {
		t.Errorf("defaults: %+v", c)
	}
}
