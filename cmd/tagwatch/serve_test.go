package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestServeProcess is not a test: it is `tagwatch serve` run in a child
// process by the tests below, so that they can kill it.
func TestServeProcess(t *testing.T) {
	args := os.Getenv("TWTEST_SERVE_ARGS")
	if args == "" {
		t.Skip("run as a child process by TestServeSurvivesKill")
	}
	ctx, stop := signalContext()
	defer stop()
	// Only the child's own settings: CI's TAGWATCH_TEST_* are not tagwatch's.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGWATCH_") {
			env = append(env, kv)
		}
	}
	if e := os.Getenv("TWTEST_SERVE_ENV"); e != "" {
		env = append(env, strings.Split(e, "\x1f")...)
	}
	os.Exit(run(ctx, strings.Split(args, "\x1f"), env, os.Stdout, os.Stderr))
}

type child struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	log  string // the file its stderr (the log) goes to
	done chan error
}

func startServe(t *testing.T, args ...string) *child {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with TAGWATCH_* variables (KEY=value) for the child.
func startServeEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$")
	cmd.Env = append(os.Environ(), "TWTEST_SERVE_ARGS="+strings.Join(append([]string{"serve"}, args...), "\x1f"),
		"TWTEST_SERVE_ENV="+strings.Join(env, "\x1f"))
	return startChild(t, cmd)
}

// startChild starts cmd, a `tagwatch serve`, and waits until it listens.
func startChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1), log: logFile.Name()}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("serve log:\n%s", b)
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "tagwatch: UI and API on "); ok {
				addr <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		c.done <- cmd.Wait()
	}()
	select {
	case c.base = <-addr:
	case err := <-c.done:
		c.done <- err
		t.Fatalf("serve exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening within 30s")
	}
	return c
}

func (c *child) status(t *testing.T) watcher.Status {
	t.Helper()
	var s watcher.Status
	c.getJSON(t, "/api/v1/status", &s)
	return s
}

func (c *child) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	res, err := http.Get(c.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeSurvivesKill kills `tagwatch serve` with SIGKILL in the middle of
// a cycle and starts it again on the same bbolt file: every record of the
// last complete cycle is still there, readable, and the daemon carries on.
func TestServeSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	reg := regtest.Start(t, regtest.Options{})
	const repos = 30
	for i := range repos {
		repo := fmt.Sprintf("team/app%02d", i)
		d := reg.Push(t, repo+":1.0.0", regtest.Image(t, repo))
		reg.Tag(t, repo, d, "1.1.0")
	}
	// A slow registry, so that a cycle lasts long enough to be killed in.
	target, _ := url.Parse(reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var manifests atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
			time.Sleep(40 * time.Millisecond)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	host := strings.TrimPrefix(slow.URL, "http://")

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	var b strings.Builder
	b.WriteString("images:\n")
	for i := range repos {
		fmt.Fprintf(&b, "  - image: %s/team/app%02d:1.0.0\n", host, i)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tagwatch.db")
	args := []string{"--config", cfg, "--data", db, "--listen", "127.0.0.1:0"}

	c := startServe(t, args...)
	waitFor(t, "the start-up cycle", time.Minute, func() bool { s := c.status(t); return !s.Running && s.Last != nil })
	if s := c.status(t); s.Last.Images != repos || s.Last.Errors != 0 {
		t.Fatalf("start-up cycle: %+v", s.Last)
	}

	res, err := http.Post(c.base+"/api/v1/check", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/v1/check: %s", res.Status)
	}
	before := manifests.Load()
	waitFor(t, "the second cycle to be under way", 30*time.Second, func() bool {
		s := c.status(t)
		return s.Running && manifests.Load() > before+5
	})
	c.exit(t, syscall.SIGKILL)

	st, err := store.Open(db)
	if err != nil {
		t.Fatalf("the store does not open after SIGKILL: %v", err)
	}
	imgs, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	hist, err := st.History(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if len(imgs) != repos {
		t.Fatalf("%d images after the kill, want %d", len(imgs), repos)
	}
	for _, img := range imgs {
		if img.Update != "minor" || img.LatestTag != "1.1.0" || img.LastChecked.IsZero() || img.FirstSeen.IsZero() {
			t.Errorf("record damaged: %+v", img)
		}
	}
	if len(hist) != repos {
		t.Errorf("%d history entries, want %d", len(hist), repos)
	}

	// Again on the same file: it starts, serves what it had, and stops cleanly.
	c = startServe(t, args...)
	var served struct{ Images []store.Image }
	c.getJSON(t, "/api/v1/images", &served)
	if len(served.Images) != repos {
		t.Errorf("after the restart the API serves %d images, want %d", len(served.Images), repos)
	}
	// Prometheus sees the same store.
	res, err = http.Get(c.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf("tagwatch_images_watched %d\n", repos)) {
		t.Errorf("GET /metrics: %s, no tagwatch_images_watched %d:\n%.2000s", res.Status, repos, body)
	}
	c.stop(t)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signalNotify(context.Background())
}
