package main

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/watcher"
)

// kindsConfig configures an instance of each kind of issue 16 that serves
// hosts of its own, as an admin would write them.
const kindsConfig = `registries:
  ocir:
    main: {namespace: axaxnpcrorw5, username: jane@example.com, token: oci-token}
    ashburn: {region: iad, namespace: axaxnpcrorw5, username: jane@example.com, token: oci-token}
  alicr:
    personal: {login: acme, password: ali-pw}
    acme: {instance: acme, region: cn-hangzhou, login: acme, password: ali-pw}
  scaleway:
    main: {secretkey: scw-secret}
  icr:
    main: {apikey: ibm-key}
  jfrog:
    acme: {url: https://acme.jfrog.io, login: jane, password: jfrog-token}
  docr:
    main: {token: dop_v1_token}
  dhi:
    main: {login: johndoe, password: dckr_pat_x}
  harbor:
    main: {url: https://harbor.example.com, login: robot$library+tagwatch, password: harbor-secret}
  nexus:
    main: {url: https://nexus.example.com:8082, ports: "8083", login: tagwatch, password: nexus-pw}
  proget:
    main: {url: https://proget.example.com, apikey: proget-key}
  linode:
    main: {url: https://registry.linode.example.com, login: tagwatch, password: linode-token}
`

// TestCheckKindsJSON: `tagwatch check --json` names the instance that
// serves each kind's host patterns. Every request goes to a proxy (the
// environment's HTTPS_PROXY) that refuses them all, so nothing reaches the
// internet; each image is still reported with its registry, and the proxy's
// log shows exactly the hosts of the images were asked for.
func TestCheckKindsJSON(t *testing.T) {
	p := regtest.StartProxy(t)
	p.Refuse = true
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(kindsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"fra.ocir.io/axaxnpcrorw5/app:1.0.0":                             "ocir.main",
		"ocir.eu-frankfurt-1.oci.oraclecloud.com/axaxnpcrorw5/app:1.0.0": "ocir.main",
		"iad.ocir.io/axaxnpcrorw5/app:1.0.0":                             "ocir.ashburn",
		"registry.cn-hangzhou.aliyuncs.com/acme/app:1.0.0":               "alicr.personal",
		"registry-intl.ap-southeast-1.aliyuncs.com/acme/app:1.0.0":       "alicr.personal",
		"acme-registry.cn-hangzhou.cr.aliyuncs.com/team/app:1.0.0":       "alicr.acme",
		"rg.fr-par.scw.cloud/acme/app:1.0.0":                             "scaleway.main",
		"rg.nl-ams.scw.cloud/acme/app:1.0.0":                             "scaleway.main",
		"us.icr.io/acme/app:1.0.0":                                       "icr.main",
		"icr.io/acme/app:1.0.0":                                          "icr.main",
		"acme.jfrog.io/docker-local/app:1.0.0":                           "jfrog.acme",
		"registry.digitalocean.com/acme/app:1.0.0":                       "docr.main",
		"dhi.io/python:3.13":                                             "dhi.main",
		"harbor.example.com/library/app:1.0.0":                           "harbor.main",
		"nexus.example.com:8082/app:1.0.0":                               "nexus.main",
		"nexus.example.com:8083/app:1.0.0":                               "nexus.main",
		"proget.example.com/feed/app:1.0.0":                              "proget.main",
		"registry.linode.example.com/team/app:1.0.0":                     "linode.main",
		// The anonymous defaults.
		"docker.elastic.co/elasticsearch/elasticsearch:8.15.0": "elastic.public",
		"mcr.microsoft.com/dotnet/runtime:8.0":                 "mcr.public",
		"registry.k8s.io/ingress-nginx/controller:v1.11.2":     "k8s.public",
		"codeberg.org/forgejo/forgejo:11":                      "codeberg.public",
		"oci.trueforge.org/truecharts/jellyfin:10.9.11":        "trueforge.public",
		// No instance: an implicit one for the host.
		"other.jfrog.io/docker-local/app:1.0.0": "custom.other.jfrog.io",
	}
	images := make([]string, 0, len(want))
	for img := range want {
		images = append(images, img)
	}
	sort.Strings(images)
	env := []string{"HTTPS_PROXY=" + p.URL, "HTTP_PROXY=" + p.URL}
	rs, code := checkJSON(t, env, append([]string{"--config", cfg}, images...)...)
	if code != 1 || len(rs) != len(images) {
		t.Fatalf("exit %d with %d results; want 1 (nothing is reachable) and %d", code, len(rs), len(images))
	}
	var wantTargets []string
	for _, r := range rs {
		if r.Registry != want[r.Image] {
			t.Errorf("%s: registry %q; want %q", r.Image, r.Registry, want[r.Image])
		}
		if r.Error == "" || !strings.Contains(r.Error, "through the proxy at "+strings.TrimPrefix(p.URL, "http://")+": it answered 403 Forbidden") {
			t.Errorf("%s: error %q; want the proxy's refusal", r.Image, r.Error)
		}
		host, _, _ := strings.Cut(r.Image, "/")
		if !strings.Contains(host, ":") {
			host += ":443"
		}
		if !slices.Contains(wantTargets, host) {
			wantTargets = append(wantTargets, host)
		}
	}
	got := p.Targets()
	sort.Strings(got)
	sort.Strings(wantTargets)
	if !slices.Equal(got, wantTargets) {
		t.Errorf("the proxy was asked for\n %v\nwant\n %v", got, wantTargets)
	}
	for _, r := range p.Log() {
		if r.Method != http.MethodConnect {
			t.Errorf("%s %s went out in clear", r.Method, r.URL)
		}
	}
}

// TestCheckHarborRobot reads a Harbor-shaped registry (token service at
// /service/token) with a robot account whose name holds a $, given in the
// YAML file, in the environment and in a _FILE: the $ reaches the token
// server intact every time.
func TestCheckHarborRobot(t *testing.T) {
	const robot, secret = "robot$library+tagwatch", "harbor-r0bot-secret"
	reg := regtest.Start(t, regtest.Options{Token: true, Users: map[string]string{robot: secret}})
	reg.Push(t, "library/app:1.0.0", regtest.Image(t, "h1"))
	reg.Push(t, "library/app:1.1.0", regtest.Image(t, "h2"))
	harbor := reg.Front(t, regtest.FrontOptions{TokenPath: "/service/token"})
	img := harbor.Host + "/library/app:1.0.0"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlFile := write("config.yml", "registries:\n  harbor:\n    lab:\n      url: "+harbor.URL+"\n      login: robot$library+tagwatch\n      password: "+secret+"\n")
	loginFile := write("login", robot+"\n")
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"YAML", []string{"--config", yamlFile}, nil},
		{"environment", nil, []string{"TAGWATCH_REGISTRY_HARBOR_LAB_URL=" + harbor.URL, "TAGWATCH_REGISTRY_HARBOR_LAB_LOGIN=" + robot, "TAGWATCH_REGISTRY_HARBOR_LAB_PASSWORD=" + secret}},
		{"_FILE", nil, []string{"TAGWATCH_REGISTRY_HARBOR_LAB_URL=" + harbor.URL, "TAGWATCH_REGISTRY_HARBOR_LAB_LOGIN_FILE=" + loginFile, "TAGWATCH_REGISTRY_HARBOR_LAB_PASSWORD=" + secret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(reg.Issuer.Log())
			rs, code := checkJSON(t, tc.env, append(tc.args, img)...)
			if code != 0 || len(rs) != 1 || rs[0].Registry != "harbor.lab" || rs[0].LatestTag != "1.1.0" || rs[0].Update != watcher.UpdateMinor {
				t.Fatalf("exit %d: %+v", code, rs)
			}
			for _, r := range reg.Issuer.Log()[before:] {
				if r.User != robot {
					t.Errorf("the token server saw %q; want %q", r.User, robot)
				}
			}
			var tokenPaths int
			for _, r := range harbor.Log() {
				if r.To == "token" && r.Path == "/service/token" {
					tokenPaths++
				}
			}
			if tokenPaths == 0 {
				t.Errorf("no token request reached /service/token")
			}
		})
	}
}

// TestServeDefaultsCostNothing starts `tagwatch serve` with no images: the
// ten anonymous default registries send no request at all, neither through
// the environment's proxy nor, by the daemon's own count, directly. Then a
// connection test of mcr.public shows the proxy would have seen them.
func TestServeDefaultsCostNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	p := regtest.StartProxy(t)
	p.Refuse = true
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	// A watcher whose engine is not there: the start-up cycle runs and
	// lists no container.
	body := "watchers:\n  local: {host: \"unix://" + filepath.Join(dir, "no-docker.sock") + "\"}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HTTPS_PROXY", p.URL)
	t.Setenv("HTTP_PROXY", p.URL)
	t.Setenv("NO_PROXY", "")
	c := startServe(t, "--config", cfg, "--data", filepath.Join(dir, "tagwatch.db"), "--listen", "127.0.0.1:0")
	waitFor(t, "the start-up cycle", 30*time.Second, func() bool { s := c.status(t); return !s.Running && s.Last != nil })
	var list struct {
		Registries []struct {
			ID     string `json:"id"`
			Source string `json:"source"`
		}
	}
	c.getJSON(t, "/api/v1/registries", &list)
	var defaults []string
	for _, r := range list.Registries {
		if r.Source == "default" {
			defaults = append(defaults, r.ID)
		}
	}
	if len(defaults) != 10 || !slices.Contains(defaults, "mcr.public") || !slices.Contains(defaults, "k8s.public") {
		t.Fatalf("default registries %v; want the ten of issue 16", defaults)
	}
	if got := p.Log(); len(got) != 0 {
		t.Errorf("with no image, requests went out: %+v", got)
	}
	if sent := registryRequests(t, c.base); len(sent) != 0 {
		t.Errorf("with no image, the daemon counts registry requests: %v", sent)
	}

	// The recording is live: a connection test of mcr.public goes to the proxy.
	res, err := http.Post(c.base+"/api/v1/registries/mcr/public/test", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := p.Targets(); !slices.Equal(got, []string{"mcr.microsoft.com:443"}) {
		t.Errorf("after testing mcr.public the proxy saw %v; want mcr.microsoft.com:443", got)
	}
}

// registryRequests returns the non-zero tagwatch_registry_requests_total
// series of /metrics.
func registryRequests(t *testing.T, base string) []string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "tagwatch_registry_requests_total{") && !strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return out
}
