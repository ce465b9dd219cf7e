package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// TestEveryVariableTakesFile walks the README's environment reference:
// every TAGWATCH_* variable it documents (its placeholders expanded to every
// variable of every registry kind, every watcher and every notifier
// setting) is set once as NAME=value and once as NAME_FILE=<a file holding
// value>, and must have the same effect both ways, an effect that setting
// nothing does not have. The command line's own variables (TAGWATCH_CONFIG,
// _DATA, _LOG_*, and _WEB_LISTEN for healthcheck) are proven on the
// commands that read them.
func TestEveryVariableTakesFile(t *testing.T) {
	names := documentedVariables(t)
	for _, must := range []string{"TAGWATCH_CONFIG", "TAGWATCH_DATA", "TAGWATCH_LOG_FORMAT", "TAGWATCH_LOG_LEVEL",
		"TAGWATCH_WEB_LISTEN", "TAGWATCH_REGISTRY_GCR_MAIN_JSONKEY", "TAGWATCH_WATCHER_MAIN_CRON", "TAGWATCH_NOTIFIER_MAIN_URL",
		"TAGWATCH_LIMITS_CYCLE", "TAGWATCH_LIMITS_TAGLIST"} {
		if !slices.Contains(names, must) {
			t.Fatalf("the README's environment reference does not lead to %s; found %v", must, names)
		}
	}
	dir := t.TempDir()
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			value, companions := valueFor(t, name)
			file := filepath.Join(dir, fmt.Sprintf("value-%d", i))
			if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			plain := append(slices.Clone(companions), name+"="+value)
			fromFile := append(slices.Clone(companions), name+"_FILE="+file)
			if check, ok := commandChecks[name]; ok {
				check(t, plain, value)
				check(t, fromFile, value)
				if name != "TAGWATCH_WEB_LISTEN" {
					return
				}
			}
			cat := registries.DefaultCatalog()
			none := describe(config.Load("", companions, cat))
			got := describe(config.Load("", plain, cat))
			viaFile := strings.ReplaceAll(describe(config.Load("", fromFile, cat)), name+"_FILE", name)
			if got == none {
				t.Errorf("%s=%q changes nothing:\n%s", name, value, got)
			}
			if viaFile != got {
				t.Errorf("%s_FILE does not do what %s does:\n%s_FILE:\n%s\n%s:\n%s", name, name, name, viaFile, name, got)
			}
		})
	}
}

// documentedVariables reads the first column of the README's table of
// environment variables, expanding <KIND>, <NAME>, <VARIABLE> and
// <SETTING> to every concrete variable they stand for.
func documentedVariables(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n### Environment variables\n")
	if !ok {
		t.Fatal("README.md has no Environment variables section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `TAGWATCH_") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, v := range regexp.MustCompile("`(TAGWATCH_[A-Z0-9_<>]+)`").FindAllStringSubmatch(first, -1) {
			switch name := v[1]; name {
			case "TAGWATCH_REGISTRY_<KIND>_<NAME>_<VARIABLE>":
				cat := registries.DefaultCatalog()
				for _, kind := range cat.Kinds() {
					for _, variable := range cat[kind].Spec().Variables {
						add("TAGWATCH_REGISTRY_" + strings.ToUpper(kind) + "_MAIN_" + strings.ToUpper(variable.Name))
					}
				}
			case "TAGWATCH_WATCHER_<NAME>_<SETTING>":
				for _, k := range config.WatcherKeys() {
					add("TAGWATCH_WATCHER_MAIN_" + strings.ToUpper(k))
				}
			case "TAGWATCH_NOTIFIER_<NAME>_<SETTING>":
				for _, k := range notify.Keys {
					add("TAGWATCH_NOTIFIER_MAIN_" + strings.ToUpper(k))
				}
			case "TAGWATCH_LIMITS_<SETTING>":
				for _, k := range config.LimitKeys() {
					add("TAGWATCH_LIMITS_" + strings.ToUpper(k))
				}
			default:
				if strings.Contains(name, "<") {
					t.Fatalf("the README documents %s: teach this test what it stands for", name)
				}
				add(name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// valueFor is a value to set a variable to and the variables it needs
// beside it (a notifier setting needs the notifier's url).
func valueFor(t *testing.T, name string) (value string, companions []string) {
	switch {
	case name == "TAGWATCH_DATA":
		return filepath.Join(t.TempDir(), "state.db"), nil
	case name == "TAGWATCH_LOG_FORMAT":
		return "json", nil
	case name == "TAGWATCH_LOG_LEVEL":
		return "warn", nil
	case name == "TAGWATCH_CONFIG":
		p := filepath.Join(t.TempDir(), "config.yml")
		if err := os.WriteFile(p, []byte("images:\n  - image: nginx:1.25\n  - image: redis:7\n  - image: postgres:16\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p, nil
	case name == "TAGWATCH_WEB_LISTEN":
		return "127.0.0.1:9999", nil
	case name == "TAGWATCH_SECRET_KEY":
		return "se/mLzO8XWlqtVeYzlBdqpCQ8iswhIipiR9AUetAmsw=", nil
	case name == "TAGWATCH_IMAGES":
		return "nginx:1.25, redis:7", nil
	case name == "TAGWATCH_CRON", strings.HasSuffix(name, "_CRON"):
		return "*/5 * * * *", nil
	case name == "TAGWATCH_PLATFORM":
		return "linux/arm64", nil
	case name == "TAGWATCH_HISTORY_KEEP":
		return "200", nil
	case name == "TAGWATCH_HISTORY_MAXAGE":
		return "30d", nil
	case name == "TAGWATCH_NOTIFY_RETRYFOR":
		return "1d12h", nil
	case strings.HasPrefix(name, "TAGWATCH_LIMITS_"):
		// Each nests with the others' defaults (request ≤ image ≤ cycle).
		values := map[string]string{"REQUEST": "10s", "IMAGE": "5m", "CYCLE": "1h", "TAGPAGES": "50", "TAGLIST": "512KiB"}
		v, ok := values[strings.TrimPrefix(name, "TAGWATCH_LIMITS_")]
		if !ok {
			t.Fatalf("no value for %s", name)
		}
		return v, nil
	case name == "TAGWATCH_WEB_ALLOWREMOTE", strings.HasSuffix(name, "_WATCHSTOPPED"), strings.HasSuffix(name, "_WATCHBYDEFAULT"),
		strings.HasSuffix(name, "_INSECURE"), name == "TAGWATCH_NOTIFIER_MAIN_BATCH", name == "TAGWATCH_NOTIFIER_MAIN_DIGEST":
		if strings.HasPrefix(name, "TAGWATCH_NOTIFIER_") {
			return "true", []string{"TAGWATCH_NOTIFIER_MAIN_URL=ntfy://ntfy.sh/topic"}
		}
		return "true", nil
	case strings.HasSuffix(name, "_URL") || strings.HasSuffix(name, "_AUTHURL"):
		if strings.HasPrefix(name, "TAGWATCH_NOTIFIER_") {
			return "gotify://gotify.lan/AbCdEfGhIjKl", nil
		}
		return "https://registry.example", nil
	case strings.HasPrefix(name, "TAGWATCH_NOTIFIER_"):
		values := map[string]string{"TYPE": "webhook", "THRESHOLD": "minor", "IMAGES": `^ghcr\.io/`, "TITLE": "{{.Nope", "BODY": "{{.Reference"}
		key := strings.TrimPrefix(name, "TAGWATCH_NOTIFIER_MAIN_")
		url := "ntfy://ntfy.sh/topic"
		if key == "TYPE" {
			url = "https://hooks.example/x"
		}
		v, ok := values[key]
		if !ok {
			t.Fatalf("no value for notifier setting %s", key)
		}
		return v, []string{"TAGWATCH_NOTIFIER_MAIN_URL=" + url}
	}
	return "value-of-" + strings.ToLower(name), nil
}

// describe prints what a configuration holds, or its errors, for comparing
// two ways of setting it.
func describe(c *config.Config, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, r := range c.Registries {
		fmt.Fprintf(&b, "registry %s %v\n", r.ID(), r.Values)
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range c.Watchers {
			if !yield(n) {
				return
			}
		}
	}) {
		w := c.Watchers[n]
		fmt.Fprintf(&b, "watcher %s host=%q cafile=%q certfile=%q keyfile=%q cron=%q byDefault=%v stopped=%v\n",
			n, w.Host, w.CAFile, w.CertFile, w.KeyFile, w.Cron, deref(w.WatchByDefault), w.WatchStopped)
	}
	for _, img := range c.Images {
		fmt.Fprintf(&b, "image %s\n", img.Image)
	}
	fmt.Fprintf(&b, "cron %q platform %q web %+v\n", c.ImagesCron, c.Platform, c.Web)
	fmt.Fprintf(&b, "history %+v notify %+v\n", c.History, c.Notify)
	fmt.Fprintf(&b, "limits %+v\n", c.Limits)
	for _, n := range c.Notifiers {
		fmt.Fprintf(&b, "notifier %s type=%s threshold=%s digest=%v batch=%v url=%s images=%q\n",
			n.Name, n.Type, n.Threshold, deref(n.Digest), n.Batch, n.Redacted(), n.Images())
	}
	return b.String()
}

func deref(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}

// commandChecks prove a variable read by the command line on the command
// that reads it, given the environment that sets it to value.
var commandChecks = map[string]func(t *testing.T, env []string, value string){
	"TAGWATCH_SECRET_KEY": func(t *testing.T, env []string, value string) {
		data := filepath.Join(t.TempDir(), "tagwatch.db")
		_, logs := serveOnce(t, append(env, "TAGWATCH_DATA="+data))
		k, err := store.ParseKey(value)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "secret_key_id="+k.ID()) {
			t.Errorf("serve with %q does not use that key:\n%s", env, logs)
		}
		if _, err := os.Stat(store.KeyFile(data)); err == nil {
			t.Errorf("serve with %q made a key file beside the data file", env)
		}
	},
	"TAGWATCH_CONFIG": func(t *testing.T, env []string, _ string) {
		out, errOut, code := tagwatch(t, env, "config", "validate")
		if code != 0 || out != "ok: 10 registries, 0 watchers, 3 images\n" {
			t.Errorf("config validate with %q: exit %d\nstdout: %s\nstderr: %s", env, code, out, errOut)
		}
	},
	"TAGWATCH_DATA": func(t *testing.T, env []string, value string) {
		serveOnce(t, env)
		if _, err := os.Stat(value); err != nil {
			t.Errorf("serve with %q did not keep its state in %s: %v", env, value, err)
		}
		// The store commands read the data file from the same variable.
		if out, errOut, code := tagwatch(t, env, "store", "check"); code != 0 || !strings.Contains(out, "store "+value+":") {
			t.Errorf("store check with %q: exit %d\nstdout: %s\nstderr: %s", env, code, out, errOut)
		}
		_ = os.Remove(value)
	},
	"TAGWATCH_LOG_FORMAT": func(t *testing.T, env []string, _ string) {
		_, logs := serveOnce(t, env)
		if !strings.Contains(logs, `"msg":"tagwatch serving"`) {
			t.Errorf("serve with %q does not log JSON:\n%s", env, logs)
		}
	},
	"TAGWATCH_LOG_LEVEL": func(t *testing.T, env []string, _ string) {
		out, logs := serveOnce(t, env)
		if !strings.Contains(out, "UI and API on") || strings.Contains(logs, "tagwatch serving") {
			t.Errorf("serve with %q logs at info level:\n%s", env, logs)
		}
	},
	"TAGWATCH_WEB_LISTEN": func(t *testing.T, env []string, value string) {
		// healthcheck probes the address the variable names.
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"status":"ok"}`)
		}))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = ln
		srv.Start()
		defer srv.Close()
		env = slices.Clone(env)
		for i, kv := range env {
			if strings.HasSuffix(kv, "="+value) {
				env[i] = strings.TrimSuffix(kv, value) + ln.Addr().String()
			} else if strings.HasPrefix(kv, "TAGWATCH_WEB_LISTEN_FILE=") {
				p := strings.TrimPrefix(kv, "TAGWATCH_WEB_LISTEN_FILE=")
				if err := os.WriteFile(p, []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(p, []byte(value+"\n"), 0o600)
			}
		}
		out, errOut, code := tagwatch(t, env, "healthcheck", "--timeout", "10s")
		if code != 0 || !strings.Contains(out, "healthy: http://"+ln.Addr().String()+"/api/v1/healthz") {
			t.Errorf("healthcheck with %q: exit %d\nstdout: %s\nstderr: %s", env, code, out, errOut)
		}
	},
}

// serveOnce runs `tagwatch serve` in-process on a free port until it says
// it serves, then stops it, and returns what it printed and logged.
func serveOnce(t *testing.T, env []string) (stdout, logs string) {
	t.Helper()
	env = append(slices.Clone(env), "TAGWATCH_WEB_LISTEN=127.0.0.1:0")
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TAGWATCH_DATA") }) {
		env = append(env, "TAGWATCH_DATA="+filepath.Join(t.TempDir(), "tagwatch.db"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	var out strings.Builder
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "UI and API on") {
				cancel()
			}
		}
	}()
	var errb syncBuffer
	code := run(ctx, []string{"serve"}, env, pw, &errb)
	pw.Close()
	wg.Wait()
	if code != 0 || !strings.Contains(out.String(), "UI and API on") {
		t.Fatalf("serve with %q: exit %d\nstdout: %s\nstderr: %s", env, code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// syncBuffer is a strings.Builder the daemon's goroutines may log to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
