package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// readmeYAML returns the first ```yaml block after the README heading that
// starts with heading: the example a test runs as it is written there.
func readmeYAML(t *testing.T, heading string) string {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n"+heading)
	if !ok {
		t.Fatalf("README.md has no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatalf("README.md has no yaml block after %q", heading)
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// checkChild runs `tagwatch check --json` in a child process: Go reads the
// system's CA roots (SSL_CERT_FILE) once per process, and the test's
// registries have a CA of their own. osEnv is the child's process
// environment on top of this one's; env is the environment check is given.
func checkChild(t *testing.T, osEnv, env []string, args ...string) ([]watcher.Result, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$")
	cmd.Env = append(os.Environ(), "TWTEST_SERVE_ARGS="+strings.Join(append([]string{"check", "--json"}, args...), "\x1f"),
		"TWTEST_SERVE_ENV="+strings.Join(env, "\x1f"))
	cmd.Env = append(cmd.Env, osEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rs []watcher.Result
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("check --json printed no JSON array (exit %d): %v\nstdout: %s\nstderr: %s", code, err, out.String(), errb.String())
	}
	return rs, errb.String(), code
}

// TestCheckTwoHubAccounts runs the README's example of two Docker Hub
// accounts, as written there, against a stand-in for Docker Hub: the real
// distribution registry with token auth, reached as index.docker.io with
// its token service at auth.docker.io/token, through a proxy that stands in
// for DNS and refuses every other host. Each account may pull only what
// Docker Hub would let it (acmebot the acmecorp organisation, johndoe his
// own repositories, official images and acmecorp/legacy), so an image read
// with the wrong account fails; the token service and the registry both
// see which account read which repository.
func TestCheckTwoHubAccounts(t *testing.T) {
	const johndoe, acmebot = "dckr_pat_johndoe_0123", "dckr_pat_acmebot_4567"
	reg := regtest.Start(t, regtest.Options{TLS: true, Token: true, Service: "registry.docker.io",
		Users: map[string]string{"johndoe": johndoe, "acmebot": acmebot}, DNSNames: []string{"index.docker.io", "auth.docker.io"}})
	reg.Issuer.Grant = func(user string, a regtest.Access) []string {
		switch {
		case user == regtest.Admin,
			user == "acmebot" && strings.HasPrefix(a.Name, "acmecorp/") && a.Name != "acmecorp/legacy",
			user == "johndoe" && (strings.HasPrefix(a.Name, "johndoe/") || strings.HasPrefix(a.Name, "library/") || a.Name == "acmecorp/legacy"):
			return a.Actions
		}
		return nil
	}
	for i, repoTag := range []string{"acmecorp/api:2.0.0", "acmecorp/api:2.1.0", "library/nginx:1.27.0", "library/nginx:1.27.1", "acmecorp/legacy:1.0.0"} {
		reg.Push(t, repoTag, regtest.Image(t, "hub-"+string(rune('a'+i))))
	}
	hub := reg.Front(t, regtest.FrontOptions{Realm: "https://auth.docker.io/token"})
	auth := reg.Front(t, regtest.FrontOptions{TokenPath: "/token"})
	proxy := regtest.StartProxy(t)
	proxy.Refuse = true
	proxy.Hosts["index.docker.io:443"] = hub.Host
	proxy.Hosts["auth.docker.io:443"] = auth.Host

	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(readmeYAML(t, "### Several accounts on one registry")), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, stderr, code := checkChild(t, []string{"SSL_CERT_FILE=" + reg.CAFile},
		[]string{"HTTPS_PROXY=" + proxy.URL, "TAGWATCH_REGISTRY_HUB_PUBLIC_PASSWORD=" + johndoe, "TAGWATCH_REGISTRY_HUB_WORK_PASSWORD=" + acmebot},
		"--config", cfg)
	if code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Image+" "+r.Registry+" "+string(r.Update)+" "+r.LatestTag+" "+r.Error)
	}
	want := []string{
		"acmecorp/api:2.0.0 hub.work minor 2.1.0 ",
		"nginx:1.27.0 hub.public patch 1.27.1 ",
		"acmecorp/legacy:1.0.0 hub.public none 1.0.0 ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("check --json:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	readers := map[string][]string{}
	for _, q := range hub.Log() {
		if repo, ok := strings.CutSuffix(strings.TrimPrefix(q.Path, "/v2/"), "/tags/list"); ok {
			readers[repo] = append(readers[repo], q.User)
		}
	}
	for repo, users := range map[string][]string{
		"acmecorp/api": {"acmebot"}, "library/nginx": {"johndoe"}, "acmecorp/legacy": {"johndoe"},
	} {
		if !slices.Equal(readers[repo], users) {
			t.Errorf("the tags of %s were listed by %q; want %q", repo, readers[repo], users)
		}
	}
	var tokens []string
	for _, q := range reg.Issuer.Log() {
		if q.User != regtest.Admin {
			scopes := slices.Clone(q.Scopes)
			sort.Strings(scopes)
			tokens = append(tokens, q.User+" "+strings.Join(scopes, " "))
		}
	}
	sort.Strings(tokens)
	if want := []string{
		"acmebot repository:acmecorp/api:pull",
		"johndoe repository:acmecorp/legacy:pull repository:library/nginx:pull",
	}; !slices.Equal(tokens, want) {
		t.Errorf("token requests %q; want %q", tokens, want)
	}
	for _, target := range proxy.Targets() {
		if target != "index.docker.io:443" && target != "auth.docker.io:443" {
			t.Errorf("the proxy was asked for %s", target)
		}
	}
}

// TestServeNamedRegistry: serve checks an image's registry: against the
// running set, so it may name an instance saved in the UI; naming one that
// exists nowhere stops serve at start with the error at its line, and
// config validate, which cannot see the UI's instances, notes it.
func TestServeNamedRegistry(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "named-1"))
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "named-2"))
	dir := t.TempDir()
	data := filepath.Join(dir, "tagwatch.db")
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	// Saved in the UI: two instances of the registry, one limited to
	// another team's repositories.
	for _, r := range []store.Registry{
		{Kind: "custom", Name: "lan", Values: map[string]string{"url": reg.URL}},
		{Kind: "custom", Name: "other", Values: map[string]string{"url": reg.URL, "repositories": "other/*"}},
	} {
		if err := st.PutRegistry(r); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	config := func(named string) string {
		p := filepath.Join(dir, named+".yml")
		body := "images:\n  - image: " + reg.Host + "/team/app:1.0.0\n    registry: " + named + "\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// custom.lan exists only in the data file: validate notes it, serve uses it.
	lan := config("custom.lan")
	out, errOut, code := tagwatch(t, nil, "config", "validate", "--config", lan)
	if want := "note: " + lan + ":3: images[0].registry: custom.lan is not in the config file or the environment; serve checks that it is saved in the UI and serves " +
		reg.Host + "/team/app\nok: 10 registries, 0 watchers, 1 image\n"; code != 0 || out != want {
		t.Errorf("config validate: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	// One the config file defines that serves another host: an error.
	other := filepath.Join(dir, "other-host.yml")
	if err := os.WriteFile(other, []byte("registries:\n  custom:\n    nas: {url: http://nas.lan:5000}\nimages:\n  - image: "+reg.Host+
		"/team/app:1.0.0\n    registry: custom.nas\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = tagwatch(t, nil, "config", "validate", "--config", other)
	if want := "tagwatch: " + other + ":6: images[0].registry: " + reg.Host + "/team/app:1.0.0 names the registry custom.nas, which does not serve " +
		reg.Host + " (it serves nas.lan:5000). Name an instance of " + reg.Host + ", or none.\n"; code != exitUsage || errOut != want {
		t.Errorf("config validate: exit %d\n%s\nwant\n%s", code, errOut, want)
	}

	c := startServe(t, "--config", lan, "--data", data, "--listen", "127.0.0.1:0")
	waitFor(t, "the first cycle", time.Minute, func() bool { return c.status(t).Last != nil })
	var served struct{ Images []store.Image }
	c.getJSON(t, "/api/v1/images", &served)
	imgs := served.Images
	if len(imgs) != 1 || imgs[0].Registry != "custom.lan" || imgs[0].Update != "minor" || imgs[0].Error != "" {
		t.Errorf("images: %+v; want team/app read by custom.lan", imgs)
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	c.done <- nil // for the cleanup

	// Named, but not found, or not serving the image: serve does not start.
	for named, want := range map[string]string{
		"custom.gone":  "images[0].registry: " + reg.Host + "/team/app:1.0.0 names the registry custom.gone, which does not exist. Add it (Settings → Registries, or the config file) or name another.",
		"custom.other": "images[0].registry: " + reg.Host + "/team/app:1.0.0 names the registry custom.other, which serves only other/* on " + reg.Host + ". Add team/app to its repositories, or name another instance.",
	} {
		p := config(named)
		_, errOut, code := tagwatch(t, nil, "serve", "--config", p, "--data", data, "--listen", "127.0.0.1:0")
		if want := "tagwatch: " + p + ":3: " + want + "\n"; code != exitUsage || errOut != want {
			t.Errorf("serve naming %s: exit %d\n%s\nwant\n%s", named, code, errOut, want)
		}
	}
}
