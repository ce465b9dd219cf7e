package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
)

// send makes an API request to the child and returns the status and body.
func (c *child) send(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// exit sends sig to the child and waits up to 20s for it to end; it
// returns how the child ended (nil: exit 0).
func (c *child) exit(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20s of %v", sig)
		return nil
	}
}

// stop ends the child with SIGTERM, as a service manager does.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.exit(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
}

// cycle runs a check cycle to its end and returns the images.
func (c *child) cycle(t *testing.T) map[string]store.Image {
	t.Helper()
	waitFor(t, "the start-up cycle", time.Minute, func() bool { return !c.status(t).Running })
	var prev time.Time
	if s := c.status(t); s.Last != nil {
		prev = s.Last.StartedAt
	}
	if code, body := c.send(t, "POST", "/api/v1/check", nil); code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/check: %d %s", code, body)
	}
	waitFor(t, "a check cycle", time.Minute, func() bool {
		s := c.status(t)
		return !s.Running && s.Last != nil && s.Last.StartedAt.After(prev)
	})
	var got struct{ Images []store.Image }
	c.getJSON(t, "/api/v1/images", &got)
	out := map[string]store.Image{}
	for _, img := range got.Images {
		out[img.Reference] = img
	}
	return out
}

func (c *child) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type apiReg struct {
	ID           string            `json:"id"`
	Active       bool              `json:"active"`
	Anonymous    bool              `json:"anonymous"`
	Values       map[string]string `json:"values"`
	NeedsSecrets []string          `json:"needsSecrets"`
}

func (c *child) registry(t *testing.T, kind, name string) apiReg {
	t.Helper()
	var r apiReg
	c.getJSON(t, "/api/v1/registries/"+kind+"/"+name, &r)
	return r
}

// testRegistry runs a saved registry's connection test against image.
func (c *child) testRegistry(t *testing.T, kind, name, image string) (ok bool, msg string) {
	t.Helper()
	code, body := c.send(t, "POST", "/api/v1/registries/"+kind+"/"+name+"/test", map[string]string{"image": image})
	if code != http.StatusOK {
		t.Fatalf("test of %s.%s: %d %s", kind, name, code, body)
	}
	var tv struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(body), &tv)
	return tv.OK, tv.Error
}

const (
	vendorPassword = "Vend0r-Pa55word-cmd-31c7"
	filedPassword  = "Fil3d-Pa55word-cmd-8a02"
	hookSecret     = "HookT0ken-cmd-5e19b0d2c4"
)

// TestServeSecretsAtRestAndRotation runs `tagwatch serve` on a real bbolt
// file against real htpasswd registries: a registry and a notifier saved
// through the API are encrypted in the file; `store rotate-key` refuses
// while the daemon runs, then rotates, and the restarted daemon still
// reads every saved registry (a check cycle with its credentials passes)
// and notifier. A copy of the file without its key starts, says what to
// do, runs the config file's registry and marks the UI one as needing its
// password again.
func TestServeSecretsAtRestAndRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": vendorPassword}})
	d := reg.Push(t, "team/app:1.0.0", regtest.Image(t, "team"))
	reg.Tag(t, "team/app", d, "1.1.0")
	filed := regtest.Start(t, regtest.Options{Users: map[string]string{"bob": filedPassword}})
	d = filed.Push(t, "other/app:1.0.0", regtest.Image(t, "other"))
	filed.Tag(t, "other/app", d, "1.2.0")
	var hooks atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	teamRef, otherRef := reg.Host+"/team/app:1.0.0", filed.Host+"/other/app:1.0.0"
	if err := os.WriteFile(cfg, []byte("images:\n  - image: "+teamRef+"\n  - image: "+otherRef+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TAGWATCH_REGISTRY_CUSTOM_FILED_URL=" + filed.URL, "TAGWATCH_REGISTRY_CUSTOM_FILED_LOGIN=bob",
		"TAGWATCH_REGISTRY_CUSTOM_FILED_PASSWORD=" + filedPassword}
	db := filepath.Join(dir, "tagwatch.db")
	args := []string{"--config", cfg, "--data", db, "--listen", "127.0.0.1:0"}
	team, other := teamRef, otherRef // a host with a port: normalized as written

	c := startServeEnv(t, env, args...)
	if code, body := c.send(t, "POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": vendorPassword}}); code != http.StatusCreated {
		t.Fatalf("saving custom.vendor: %d %s", code, body)
	}
	if code, body := c.send(t, "POST", "/api/v1/notifiers", map[string]any{"name": "team",
		"settings": map[string]string{"url": recv.URL + "/hook/" + hookSecret, "type": "webhook"}}); code != http.StatusCreated {
		t.Fatalf("saving notifier team: %d %s", code, body)
	}
	imgs := c.cycle(t)
	for _, ref := range []string{team, other} {
		if img := imgs[ref]; img.Error != "" || img.LatestTag == "" {
			t.Errorf("%s in the first run: %+v", ref, img)
		}
	}
	c.stop(t)

	keyFile := db + ".key"
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no key file beside the store: %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{vendorPassword, hookSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the store file holds %q", secret)
		}
	}
	oldKey, _ := os.ReadFile(keyFile)

	// While the daemon runs, the rotation refuses and changes nothing.
	c = startServeEnv(t, env, args...)
	out, errOut, code := tagwatch(t, nil, "store", "rotate-key", "--data", db)
	if code != exitFailed || !strings.Contains(errOut, "locked by another tagwatch") || !strings.Contains(errOut, "stop tagwatch first") {
		t.Errorf("rotate-key while serving: exit %d\n%s%s", code, out, errOut)
	}
	if k, _ := os.ReadFile(keyFile); !bytes.Equal(k, oldKey) {
		t.Error("the refused rotation changed the key file")
	}
	c.stop(t)

	out, errOut, code = tagwatch(t, nil, "store", "rotate-key", "--data", db)
	if code != exitOK || !strings.Contains(out, "rotated: 2 secrets") || !strings.Contains(out, keyFile) {
		t.Fatalf("rotate-key: exit %d\n%s%s", code, out, errOut)
	}
	if k, _ := os.ReadFile(keyFile); bytes.Equal(k, oldKey) {
		t.Fatal("the key file still holds the old key")
	}

	// Restarted, the daemon reads everything with the new key.
	c = startServeEnv(t, env, args...)
	if log := c.logText(t); strings.Contains(log, "cannot be decrypted") {
		t.Errorf("after the rotation:\n%s", log)
	}
	if r := c.registry(t, "custom", "vendor"); !r.Active || len(r.NeedsSecrets) != 0 {
		t.Errorf("custom.vendor after the rotation: %+v", r)
	}
	if ok, msg := c.testRegistry(t, "custom", "vendor", reg.Host+"/team/app"); !ok {
		t.Errorf("custom.vendor's test after the rotation: %s", msg)
	}
	imgs = c.cycle(t)
	for _, ref := range []string{team, other} {
		if img := imgs[ref]; img.Error != "" || img.LatestTag == "" {
			t.Errorf("%s after the rotation: %+v", ref, img)
		}
	}
	before := hooks.Load()
	if code, body := c.send(t, "POST", "/api/v1/notifiers/team/test", nil); code != http.StatusOK || hooks.Load() != before+1 {
		t.Errorf("notifier test after the rotation: %d %s (receiver got %d)", code, body, hooks.Load()-before)
	}
	c.stop(t)

	// A copy without its key: it starts, says so, runs the config file's
	// registry, and asks for the UI registry's password again.
	copyDB := filepath.Join(t.TempDir(), "tagwatch.db")
	if raw, err = os.ReadFile(db); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyDB, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c = startServeEnv(t, env, "--config", cfg, "--data", copyDB, "--listen", "127.0.0.1:0")
	log := c.logText(t)
	for _, want := range []string{"the secrets in " + copyDB + " were encrypted with another key", "set TAGWATCH_SECRET_KEY",
		"restore " + copyDB + ".key", "registry custom.vendor: password", "notifier team: url"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if r := c.registry(t, "custom", "vendor"); r.Active || strings.Join(r.NeedsSecrets, ",") != "password" {
		t.Errorf("custom.vendor on the copy: %+v", r)
	}
	imgs = c.cycle(t)
	if img := imgs[other]; img.Error != "" || img.LatestTag != "1.2.0" {
		t.Errorf("the config file's registry on the copy: %+v", img)
	}
	if img := imgs[team]; img.Error == "" || !strings.Contains(img.Error, "credentials") {
		t.Errorf("the UI registry's image on the copy: %+v (want an error asking for credentials)", img)
	}
	code, page := c.send(t, "GET", "/settings/registries", nil)
	if code != http.StatusOK || !strings.Contains(page, "secret needed") {
		t.Errorf("the registries page on the copy does not mark custom.vendor: %d", code)
	}
	for _, secret := range []string{vendorPassword, hookSecret, filedPassword} {
		if strings.Contains(log+page, secret) {
			t.Errorf("a secret shows: %q", secret)
		}
	}
	c.stop(t)
}

// TestServeSecretKeyFromEnvironment: the key from TAGWATCH_SECRET_KEY_FILE
// (a compose secret: a read-only file with a trailing newline) or
// TAGWATCH_SECRET_KEY; no key file is made beside the store; a rotation
// takes the new key from --new-key-file, and the daemon started with it
// reads every secret, the old key none.
func TestServeSecretKeyFromEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": vendorPassword}})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "team"))
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	k1, _ := store.NewKey()
	k1File := filepath.Join(secrets, "tagwatch_key")
	if err := os.WriteFile(k1File, []byte(k1.Encode()+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tagwatch.db")
	args := []string{"--data", db, "--listen", "127.0.0.1:0"}
	env1 := []string{"TAGWATCH_SECRET_KEY_FILE=" + k1File}

	c := startServeEnv(t, env1, args...)
	if code, body := c.send(t, "POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "vendor",
		"values": map[string]string{"url": reg.URL, "login": "alice", "password": vendorPassword}}); code != http.StatusCreated {
		t.Fatalf("saving custom.vendor: %d %s", code, body)
	}
	if log := c.logText(t); !strings.Contains(log, k1File+" (TAGWATCH_SECRET_KEY_FILE)") || !strings.Contains(log, k1.ID()) {
		t.Errorf("the log does not say where the key comes from:\n%s", log)
	}
	c.stop(t)
	if _, err := os.Stat(db + ".key"); err == nil {
		t.Error("a key file was made beside the store although the environment gives the key")
	}
	c = startServeEnv(t, env1, args...)
	if ok, msg := c.testRegistry(t, "custom", "vendor", reg.Host+"/team/app"); !ok {
		t.Errorf("after a restart with the same key: %s", msg)
	}
	c.stop(t)

	// Rotation with a key from the environment needs the new key.
	out, errOut, code := tagwatch(t, env1, "store", "rotate-key", "--data", db)
	if code != exitUsage || !strings.Contains(errOut, "--new-key-file") {
		t.Errorf("rotate-key without a new key: exit %d\n%s%s", code, out, errOut)
	}
	k2, _ := store.NewKey()
	k2File := filepath.Join(secrets, "tagwatch_key_2")
	if err := os.WriteFile(k2File, []byte(k2.Encode()+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = tagwatch(t, env1, "store", "rotate-key", "--data", db, "--new-key-file", k2File)
	if code != exitOK || !strings.Contains(out, "rotated: 1 secrets") || !strings.Contains(out, "TAGWATCH_SECRET_KEY_FILE="+k2File) {
		t.Fatalf("rotate-key --new-key-file: exit %d\n%s%s", code, out, errOut)
	}

	// The old key reads nothing; the new one, given as TAGWATCH_SECRET_KEY, all.
	c = startServeEnv(t, env1, args...)
	if r := c.registry(t, "custom", "vendor"); r.Active || strings.Join(r.NeedsSecrets, ",") != "password" {
		t.Errorf("with the old key: %+v", r)
	}
	c.stop(t)
	c = startServeEnv(t, []string{"TAGWATCH_SECRET_KEY=" + k2.Encode()}, args...)
	if ok, msg := c.testRegistry(t, "custom", "vendor", reg.Host+"/team/app"); !ok {
		t.Errorf("with the new key: %s", msg)
	}
	if strings.Contains(c.logText(t), k2.Encode()) {
		t.Error("the log holds the key")
	}
	c.stop(t)

	// A bad key is a configuration error that names the variable, not the value.
	const bad = "hunter2-not-a-key"
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"TAGWATCH_SECRET_KEY=" + bad}, "environment TAGWATCH_SECRET_KEY: secret_key: is not a key (17 characters); a key is 32 random bytes"},
		{[]string{"TAGWATCH_SECRET_KEY=" + k2.Encode(), "TAGWATCH_SECRET_KEY_FILE=" + k2File}, "TAGWATCH_SECRET_KEY is set too: set only one of them"},
		{[]string{"TAGWATCH_SECRET_KEY_FILE=" + filepath.Join(dir, "missing")}, "TAGWATCH_SECRET_KEY_FILE"},
	} {
		for _, cmd := range [][]string{{"config", "validate"}, {"serve", "--data", filepath.Join(t.TempDir(), "x.db"), "--listen", "127.0.0.1:0"}} {
			out, errOut, code := tagwatch(t, tc.env, cmd...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, bad) {
				t.Errorf("%v with %v: exit %d, want 2 and %q\n%s%s", cmd, tc.env, code, tc.want, out, errOut)
			}
		}
	}
	if out, errOut, code := tagwatch(t, []string{"TAGWATCH_SECRET_KEY=" + k2.Encode()}, "config", "validate"); code != exitOK {
		t.Errorf("config validate with a good key: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConfigValidateSecretKeyOnce: config validate reports each problem of
// the key's variables once, under the setting's name (there is no
// --secret-key flag), as serve and store rotate-key do.
func TestConfigValidateSecretKeyOnce(t *testing.T) {
	dir := t.TempDir()
	k, _ := store.NewKey()
	keyFile := filepath.Join(dir, "key")
	if err := store.WriteKeyFile(keyFile, k); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"TAGWATCH_SECRET_KEY=" + k.Encode(), "TAGWATCH_SECRET_KEY_FILE=" + keyFile},
			"environment TAGWATCH_SECRET_KEY_FILE: secret_key: TAGWATCH_SECRET_KEY is set too: set only one of them"},
		{[]string{"TAGWATCH_SECRET_KEY_FILE=" + filepath.Join(dir, "missing")},
			"environment TAGWATCH_SECRET_KEY_FILE: secret_key: reading the file it names: open " + filepath.Join(dir, "missing")},
	} {
		for _, cmd := range [][]string{{"config", "validate"}, {"store", "rotate-key", "--data", filepath.Join(t.TempDir(), "x.db")}} {
			_, errOut, code := tagwatch(t, tc.env, cmd...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("%v with %v: exit %d, want 2 and %q\n%s", cmd, tc.env, code, tc.want, errOut)
			}
			if n := strings.Count(errOut, "\n"); n != 1 {
				t.Errorf("%v with %v: %d lines, want the one error:\n%s", cmd, tc.env, n, errOut)
			}
		}
	}
}
