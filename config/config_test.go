package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
	if work := registry(t, c, "hub.work"); work.Values["repositories"] != "acmecorp/*" {
		t.Errorf("hub.work = %+v", work.Values)
	}
	if last := c.Images[len(c.Images)-1]; last.Options.Registry != "hub.public" {
		t.Errorf("the last image names %q, want hub.public", last.Options.Registry)
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
		{"unknown top-level key", "registry:\n  hub: {}\n", nil, []string{":1: registry: is not a tagwatch setting (known: cron, history, images, limits, notifiers, notify, platform, registries, watchers, web)"}},
		{"bad regex", "images:\n  - image: nginx:1.25\n  - image: redis\n    tag: {exclude: '(['}\n",
			nil, []string{":4: images[1] (redis): exclude: error parsing regexp"}},
		{"bad template", "images:\n  - image: nginx\n    link: {template: '{{.Tag'}\n", nil, []string{":3: images[0] (nginx): link.template:"}},
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

// TestLoadReportsEveryError: one file with a problem in each section, of
// every sort (a value of the wrong type, an unknown key, a bad regex, a rule
// broken, a bad schedule, a bad template, a bad platform): each is reported,
// at its line, in one run, and nothing stops at the first.
func TestLoadReportsEveryError(t *testing.T) {
	body := `registries:
  custom:
    lan:
      url: http://192.168.1.10:5000
      login: me
watchers:
  nas:
    host: tcp://nas.lan:2376
    watchstopped: maybe
    cron: "every hour"
    hots: tcp://typo
images:
  - image: nginx:1.25
    tag:
      include: '(['
      policy: huge
  - image: redis:7
    tagz: {}
  - image: postgres:16
    link: {template: '{{.Tag'}
notifiers:
  phone: {url: "ntfy://ntfy.sh/t", threshold: loud}
web:
  listen: 127.0.0.1:8080
  allowremote: sometimes
platform: linux/arm/v7/x
cron: "61 * * * *"
`
	p := write(t, body)
	c, err := config.LoadAll(p, []string{"TAGWATCH_WEB_ALLOWREMOTE=perhaps"}, registries.DefaultCatalog())
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		p + ":3: registries.custom.lan.password: must be defined when login is defined",
		p + ":9: watchers.nas.watchstopped: must be true or false",
		p + ":10: watchers.nas.cron: \"every hour\" is not a 5-field cron schedule",
		p + ":11: watchers.nas.hots: is not a setting here (known: address, cafile, certfile, context, cron, host, keyfile, kind, kubeconfig, namespaces, swarm, watchbydefault, watchstopped)",
		p + ":15: images[0] (nginx:1.25): include: error parsing regexp",
		p + ":16: images[0] (nginx:1.25): policy: want major, minor or patch",
		p + ":18: images[1].tagz: is not a setting here (known: display, image, link, platform, registry, tag, watch)",
		p + ":20: images[2] (postgres:16): link.template:",
		p + ":22: notifiers.phone.threshold: unknown threshold \"loud\"",
		p + ":25: web.allowremote: must be true or false",
		p + ":26: platform: ",
		p + ":27: cron: \"61 * * * *\" is not a 5-field cron schedule",
		"environment TAGWATCH_WEB_ALLOWREMOTE: web.allowremote: must be true or false",
	}
	list := config.Errors(err)
	var lines []string
	for _, e := range list {
		lines = append(lines, e.Error())
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no error starts with %q", w)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	// In the order of the file, then the environment.
	if !slices.IsSortedFunc(list[:len(list)-1], func(a, b error) int {
		return a.(*config.Error).Origin.Line - b.(*config.Error).Origin.Line
	}) || !strings.HasPrefix(lines[len(lines)-1], "environment ") {
		t.Errorf("errors out of order:\n%s", strings.Join(lines, "\n"))
	}
	// What was good is still there: checks made after loading use it.
	if c == nil || len(c.Images) != 1 || c.Images[0].Image != "redis:7" || c.Watchers["nas"].Host != "tcp://nas.lan:2376" || c.Web.Listen != "127.0.0.1:8080" {
		t.Errorf("partial config: %+v", c)
	}
}

func TestYAMLSyntaxErrorNamesTheLine(t *testing.T) {
	p, err := loadError(t, "images:\n  - image: nginx\n    tag: {include: 'x'\nweb: {}\n", nil)
	mentions(t, err, p, ":2: not valid YAML: did not find expected ',' or '}'")
}

// TestEnvFileRule: NAME_FILE reads NAME's value from a file, for every
// variable alike; its errors name the variable and the file.
func TestEnvFileRule(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := file("big", strings.Repeat("x", 1<<20+1))
	tests := []struct {
		name    string
		env     []string
		want    string // the value of TAGWATCH_PLATFORM, or
		wantErr string // the error
	}{
		{"plain", []string{"TAGWATCH_PLATFORM=linux/arm64"}, "linux/arm64", ""},
		{"from a file", []string{"TAGWATCH_PLATFORM_FILE=" + file("p1", "linux/arm64\n")}, "linux/arm64", ""},
		{"CRLF and blank lines trimmed", []string{"TAGWATCH_PLATFORM_FILE=" + file("p2", "linux/arm64\r\n\r\n")}, "linux/arm64", ""},
		{"both", []string{"TAGWATCH_PLATFORM=linux/amd64", "TAGWATCH_PLATFORM_FILE=" + file("p3", "linux/arm64")}, "",
			"environment TAGWATCH_PLATFORM_FILE: platform: TAGWATCH_PLATFORM is set too: set only one of them"},
		{"missing file", []string{"TAGWATCH_PLATFORM_FILE=" + filepath.Join(dir, "nope")}, "",
			"environment TAGWATCH_PLATFORM_FILE: platform: reading the file it names: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"a directory", []string{"TAGWATCH_PLATFORM_FILE=" + dir}, "",
			"environment TAGWATCH_PLATFORM_FILE: platform: reading the file it names: read " + dir + ": is a directory"},
		{"too large", []string{"TAGWATCH_PLATFORM_FILE=" + big}, "",
			"environment TAGWATCH_PLATFORM_FILE: platform: the file it names, " + big + ", is larger than 1024 KiB"},
		{"config file's path, not its content", []string{"TAGWATCH_CONFIG_FILE=" + file("c.yml", "images:\n  - image: nginx\n")}, "",
			"environment TAGWATCH_CONFIG_FILE: --config: holds several lines, not one path"},
		{"a bad log level", []string{"TAGWATCH_LOG_LEVEL_FILE=" + file("lv", "loud\n")}, "",
			`environment TAGWATCH_LOG_LEVEL_FILE: --log-level: "loud": want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load("", tt.env, registries.DefaultCatalog())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Platform != tt.want {
				t.Errorf("platform %q, want %q", c.Platform, tt.want)
			}
			if o := c.Where("platform"); o.Env != strings.Split(tt.env[0], "=")[0] {
				t.Errorf("platform comes from %v", o)
			}
		})
	}
	// Lookup is what the command line reads its flags' defaults with.
	env := config.ReadEnv([]string{"TAGWATCH_DATA_FILE=" + file("d", "/var/lib/tagwatch/tagwatch.db\n"), "TAGWATCH_CONFIG=/etc/tagwatch.yml", "OTHER=x"})
	if v, o, ok := env.Lookup("DATA"); !ok || v != "/var/lib/tagwatch/tagwatch.db" || o.Env != "TAGWATCH_DATA_FILE" {
		t.Errorf("Lookup(DATA) = %q, %v, %v", v, o, ok)
	}
	if got := env.Get("CONFIG", "x"); got != "/etc/tagwatch.yml" {
		t.Errorf("Get(CONFIG) = %q", got)
	}
	if got := env.Get("LOG_LEVEL", "info"); got != "info" {
		t.Errorf("Get(LOG_LEVEL) = %q, want the default", got)
	}
}

// TestYAMLAnchorsAndMerges: watchers sharing settings through an anchor and
// a merge key, each adding its own; its own keys win.
func TestYAMLAnchorsAndMerges(t *testing.T) {
	p := write(t, `x-tls: &tls
  cafile: /certs/ca.pem
  certfile: /certs/cert.pem
  keyfile: /certs/key.pem
  cron: "0 * * * *"
watchers:
  nas: {<<: *tls, host: "tcp://nas.lan:2376"}
  pi:
    <<: *tls
    host: tcp://pi.lan:2376
    cron: "*/5 * * * *"
`)
	_, err := config.Load(p, nil, registries.DefaultCatalog())
	mentions(t, err, p, ":1: x-tls: is not a tagwatch setting") // top-level keys are settings
	p = write(t, `watchers:
  nas: &tls {host: "tcp://nas.lan:2376", cafile: /certs/ca.pem, certfile: /certs/cert.pem, keyfile: /certs/key.pem, cron: "0 * * * *"}
  pi:
    <<: *tls
    host: tcp://pi.lan:2376
    cron: "*/5 * * * *"
`)
	c, err := config.Load(p, nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	want := config.Watcher{Host: "tcp://pi.lan:2376", CAFile: "/certs/ca.pem", CertFile: "/certs/cert.pem", KeyFile: "/certs/key.pem", Cron: "*/5 * * * *"}
	if got := c.Watchers["pi"]; !reflect.DeepEqual(got, want) {
		t.Errorf("pi = %+v, want %+v", got, want)
	}
	if got := c.Watchers["nas"]; got.Cron != "0 * * * *" || got.Host != "tcp://nas.lan:2376" {
		t.Errorf("nas = %+v", got)
	}
}
