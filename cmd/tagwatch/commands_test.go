package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestHelpForEveryCommand runs `--help` (and `-h`, and `tagwatch help …`)
// on every command the top-level usage lists: each exits 0 and prints its
// usage, naming every flag its usage line shows, on stdout.
func TestHelpForEveryCommand(t *testing.T) {
	out, errOut, code := tagwatch(t, nil, "--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage:") {
		t.Fatalf("tagwatch --help: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var commands int
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "  tagwatch ")
		if !ok {
			continue
		}
		commands++
		var path []string
		for _, w := range strings.Fields(rest) {
			if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "-") {
				break
			}
			path = append(path, w)
		}
		flags := regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(rest, -1)
		for _, form := range [][]string{append(path, "--help"), append(path, "-h"), append([]string{"help"}, path...)} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				out, errOut, code := tagwatch(t, nil, form...)
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q", code, errOut)
				}
				if !strings.Contains(out, "Usage: tagwatch "+strings.Join(path, " ")) {
					t.Errorf("no usage line:\n%s", out)
				}
				for _, f := range flags {
					if !strings.Contains(out, "-"+f[1]) {
						t.Errorf("the help does not name -%s:\n%s", f[1], out)
					}
				}
				// And the other way: the top-level usage shows every flag
				// the command takes.
				for _, f := range regexp.MustCompile(`(?m)^\s+-([a-z-]+)`).FindAllStringSubmatch(out, -1) {
					if f[1] != "h" && f[1] != "help" && !strings.Contains(rest, "--"+f[1]) {
						t.Errorf("tagwatch --help does not show --%s in %q", f[1], rest)
					}
				}
			})
		}
	}
	if commands < 6 {
		t.Errorf("the usage lists %d commands:\n%s", commands, out)
	}
	// The config group itself.
	out, errOut, code = tagwatch(t, nil, "config", "--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "validate") || !strings.Contains(out, "example") {
		t.Errorf("config --help: exit %d\n%s%s", code, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil, {"nope"}, {"config"}, {"config", "nope"}, {"config", "validate", "--nope"},
		{"config", "example", "extra"}, {"version", "--short"}, {"healthcheck", "--url"}, {"serve", "--nope"},
		{"store"}, {"store", "nope"}, {"store", "backup"}, {"store", "backup", "a", "b"}, {"store", "check", "extra"},
	} {
		out, errOut, code := tagwatch(t, nil, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "Usage") {
			t.Errorf("tagwatch %q: exit %d, want 2 and the usage on stderr\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	out, errOut, code := tagwatch(t, nil, "config", "validate", "--config", "../../config.example.yml")
	if code != 0 || out != "ok: 14 registries, 1 watcher, 6 images\n" {
		t.Errorf("the example: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// The environment alone, and TAGWATCH_CONFIG.
	env := []string{"TAGWATCH_IMAGES=nginx:1.25,redis:7", "TAGWATCH_WATCHER_NAS_HOST=tcp://nas.lan:2376",
		"TAGWATCH_REGISTRY_CUSTOM_LAN_URL=http://192.168.1.10:5000"}
	out, errOut, code = tagwatch(t, env, "config", "validate")
	if code != 0 || out != "ok: 11 registries, 1 watcher, 2 images\n" {
		t.Errorf("environment only: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// Errors found after loading, each with its place.
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yml")
	body := "registries:\n  custom:\n    lan:\n      url: https://r.lan\n      cafile: " + filepath.Join(dir, "missing.pem") +
		"\nplatform: linux/arm/v7/x\nweb:\n  listen: 0.0.0.0:8080\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = tagwatch(t, nil, "config", "validate", "--config", p)
	if code != exitUsage || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"tagwatch: " + p + ":6: platform: ",
		"tagwatch: " + p + ":8: web.listen: 0.0.0.0:8080: listening on 0.0.0.0 would expose",
		"tagwatch: " + p + ":5: registries.custom.lan.cafile: ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// Allowed by auth from the environment (a secret file).
	hash := filepath.Join(dir, "hash")
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hash, append(h, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, _ = tagwatch(t, []string{"TAGWATCH_WEB_AUTH_USERNAME=admin", "TAGWATCH_WEB_AUTH_PASSWORD_FILE=" + hash}, "config", "validate", "--config", p)
	if strings.Contains(errOut, "web.listen") || strings.Contains(errOut, "web.auth") || !strings.Contains(errOut, "platform") {
		t.Errorf("auth from the environment does not count:\n%s", errOut)
	}

	// Errors found while loading: every one, with the variable named.
	_, errOut, code = tagwatch(t, []string{"TAGWATCH_WATCHER_NAS_WATCHSTOPPED=maybe", "TAGWATCH_CRON=hourly"}, "config", "validate")
	if code != exitUsage || !strings.Contains(errOut, "tagwatch: environment TAGWATCH_WATCHER_NAS_WATCHSTOPPED: watchers.nas.watchstopped: must be true or false\n") ||
		!strings.Contains(errOut, "tagwatch: environment TAGWATCH_CRON: cron: ") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}

func TestConfigExample(t *testing.T) {
	want, err := os.ReadFile("../../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := tagwatch(t, nil, "config", "example")
	if code != 0 || errOut != "" || out != string(want) {
		t.Fatalf("config example: exit %d, stderr %q; stdout is not config.example.yml", code, errOut)
	}
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := tagwatch(t, nil, "config", "validate", "--config", p); code != 0 {
		t.Errorf("the printed example does not validate: %s", errOut)
	}
}

func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v1.2.3"
	out, _, code := tagwatch(t, nil, "version")
	lines := strings.Split(out, "\n")
	if code != 0 || lines[0] != "tagwatch v1.2.3" || !strings.Contains(out, "\n  go:       "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") ||
		!strings.Contains(out, "\n  revision: ") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if again, _, _ := tagwatch(t, nil, "--version"); again != out {
		t.Errorf("--version prints %q, version %q", again, out)
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// The default URL follows TAGWATCH_WEB_LISTEN, all interfaces probed on loopback.
	out, errOut, code := tagwatch(t, []string{"TAGWATCH_WEB_LISTEN=0.0.0.0:" + port}, "healthcheck")
	if code != 0 || out != "healthy: http://127.0.0.1:"+port+"/api/v1/healthz: {\"status\":\"ok\"}\n" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	status = http.StatusServiceUnavailable
	_, errOut, code = tagwatch(t, nil, "healthcheck", "--url", srv.URL+"/api/v1/healthz")
	if code != exitFailed || !strings.Contains(errOut, "unhealthy: ") || !strings.Contains(errOut, "503") {
		t.Errorf("a 503: exit %d, stderr %q", code, errOut)
	}
	srv.Close()
	_, errOut, code = tagwatch(t, nil, "healthcheck", "--url", srv.URL+"/api/v1/healthz", "--timeout", "2s")
	if code != exitFailed || !strings.Contains(errOut, "unhealthy: ") {
		t.Errorf("nothing listening: exit %d, stderr %q", code, errOut)
	}

	for listen, want := range map[string]string{
		"0.0.0.0:8080":   "http://127.0.0.1:8080/api/v1/healthz",
		":8080":          "http://127.0.0.1:8080/api/v1/healthz",
		"[::]:8080":      "http://[::1]:8080/api/v1/healthz",
		"10.0.0.2:80":    "http://10.0.0.2:80/api/v1/healthz",
		"localhost:9000": "http://localhost:9000/api/v1/healthz",
	} {
		if got, err := healthURL(listen); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
}

// TestConfigValidateKinds: docker (by default) and podman watchers load;
// a bad kind and a setting of another kind are reported with their place.
func TestConfigValidateKinds(t *testing.T) {
	env := []string{"TAGWATCH_WATCHER_LOCAL_HOST=", "TAGWATCH_WATCHER_SWARM_SWARM=true",
		"TAGWATCH_WATCHER_PODS_KIND=podman", "TAGWATCH_WATCHER_PODS_HOST=unix:///run/podman/podman.sock"}
	out, errOut, code := tagwatch(t, env, "config", "validate")
	if code != 0 || out != "ok: 10 registries, 3 watchers, 0 images\n" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte("watchers:\n  pods:\n    kind: podman\n    swarm: false\n  k3s:\n    kind: kubernets\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = tagwatch(t, nil, "config", "validate", "--config", p)
	for _, want := range []string{
		"tagwatch: " + p + ":4: watchers.pods.swarm: is a setting of docker watchers, not of podman ones\n",
		"tagwatch: " + p + `:6: watchers.k3s.kind: "kubernets" is not a watcher kind (`,
	} {
		if code != exitUsage || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
}

// TestConfigValidateListsEveryError: one bad file with errors in different
// sections, found at different stages (the YAML's shape, the values, the
// checks made after loading: opening registries, the listen address):
// `config validate` prints them all in one run, in the file's order, each
// with its file, line and field, and exits 2.
func TestConfigValidateListsEveryError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yml")
	body := `registries:
  custom:
    lan:
      url: https://r.lan
      cafile: ` + filepath.Join(dir, "missing.pem") + `
watchers:
  nas:
    host: tcp://nas.lan:2376
    watchstopped: maybe
images:
  - image: nginx:1.25
    tag: {include: '(['}
notifiers:
  phone: {url: "ntfy://ntfy.sh/t", threshold: loud}
web:
  listen: 0.0.0.0:8080
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := tagwatch(t, nil, "config", "validate", "--config", p)
	if code != exitUsage || out != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	want := []string{
		"tagwatch: " + p + ":5: registries.custom.lan.cafile: ",
		"tagwatch: " + p + ":9: watchers.nas.watchstopped: must be true or false",
		"tagwatch: " + p + ":12: images[0] (nginx:1.25): include: error parsing regexp",
		"tagwatch: " + p + ":14: notifiers.phone.threshold: unknown threshold \"loud\"",
		"tagwatch: " + p + ":16: web.listen: 0.0.0.0:8080: listening on 0.0.0.0 would expose",
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d is %q; want it to start with %q", i+1, lines[i], w)
		}
	}
}

// TestConfigFromFileVariable: TAGWATCH_CONFIG_FILE names a file holding the
// config file's path (a compose secret or a systemd credential), and a
// mistake (pointing it at the YAML itself) is said plainly.
func TestConfigFromFileVariable(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("images:\n  - image: nginx:1.25\n  - image: redis:7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holder := filepath.Join(dir, "config-path")
	if err := os.WriteFile(holder, []byte(cfg+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := tagwatch(t, []string{"TAGWATCH_CONFIG_FILE=" + holder}, "config", "validate")
	if code != 0 || out != "ok: 10 registries, 0 watchers, 2 images\n" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	_, errOut, code = tagwatch(t, []string{"TAGWATCH_CONFIG_FILE=" + cfg}, "config", "validate")
	if code != exitUsage || !strings.Contains(errOut, "tagwatch: environment TAGWATCH_CONFIG_FILE: --config: holds several lines, not one path") {
		t.Errorf("exit %d\nstderr: %s", code, errOut)
	}
	_, errOut, code = tagwatch(t, []string{"TAGWATCH_CONFIG_FILE=" + filepath.Join(dir, "nope")}, "check", "nginx")
	if code != exitUsage || !strings.Contains(errOut, "tagwatch: environment TAGWATCH_CONFIG_FILE: --config: reading the file it names: open "+filepath.Join(dir, "nope")) {
		t.Errorf("exit %d\nstderr: %s", code, errOut)
	}
}
