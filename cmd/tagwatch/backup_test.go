package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

// dump reads every key and value of every bucket of a closed bbolt file.
func dump(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// authGet sends a GET with a bearer token ("" for none).
func authGet(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// TestBackupOfRunningServe backs up the data file of a running `tagwatch
// serve` (a child process holding bbolt's exclusive lock) with the real
// binary's `store backup` and through the API download, and checks that
// each copy opens and holds every record the daemon had: after the daemon
// stops, every bucket of each copy is byte for byte the daemon's.
func TestBackupOfRunningServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const token = "backup-test-token-0123456789"
	reg := regtest.Start(t, regtest.Options{})
	const repos = 20
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "web:\n  auth:\n    token: %s\nimages:\n", token)
	for i := range repos {
		repo := fmt.Sprintf("team/app%02d", i)
		d := reg.Push(t, repo+":1.0.0", regtest.Image(t, repo))
		reg.Tag(t, repo, d, "1.1.0")
		fmt.Fprintf(&cfg, "  - image: %s/%s:1.0.0\n", reg.Host, repo)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// Records the UI would have saved, which no cycle rewrites.
	db := filepath.Join(dir, "tagwatch.db")
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutRegistry(store.Registry{Kind: "custom", Name: "lan", Values: map[string]string{"url": "http://127.0.0.1:9"},
		Secrets: map[string]string{"password": "lan-s3cret"}, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutNotifier(store.Notifier{Name: "phone", Settings: map[string]string{"type": "webhook", "threshold": "major"},
		Secrets: map[string]string{"url": closedURL(t) + "/phone"}, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkSent("phone", "an update announced before", time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	c := startServe(t, "--config", cfgPath, "--data", db, "--listen", "127.0.0.1:0")
	waitFor(t, "the start-up cycle", time.Minute, func() bool {
		res, body := authGet(t, c.base+"/api/v1/status", token)
		var s watcher.Status
		_ = json.Unmarshal(body, &s)
		return res.StatusCode == http.StatusOK && !s.Running && s.Last != nil
	})
	_, body := authGet(t, c.base+"/api/v1/history?limit=1000", token)
	var hist struct{ History []store.HistoryEntry }
	if err := json.Unmarshal(body, &hist); err != nil || len(hist.History) != repos {
		t.Fatalf("the daemon's history: %d entries, %v: %s", len(hist.History), err, body)
	}
	listen := strings.TrimPrefix(c.base, "http://")

	// The real binary, as an admin runs it beside the daemon: it finds the
	// API from the config and TAGWATCH_WEB_LISTEN, with the config's token.
	env := []string{"TAGWATCH_CONFIG=" + cfgPath, "TAGWATCH_DATA=" + db, "TAGWATCH_WEB_LISTEN=" + listen}
	out := filepath.Join(t.TempDir(), "backup.db")
	r := runBinary(t, env, "store", "backup", out)
	if r.code != 0 || !strings.Contains(r.stdout, "taken from the running tagwatch at "+c.base) ||
		!strings.Contains(r.stdout, fmt.Sprintf("%d history, %d images", repos, repos)) {
		t.Fatalf("store backup of a running daemon's file:\n%v", r)
	}
	t.Logf("%s", strings.TrimSpace(r.stdout))
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v", fi, err)
	}
	r = runBinary(t, env, "store", "backup", out)
	if r.code == 0 || !strings.Contains(r.stderr, out+" exists: a backup never overwrites a file") {
		t.Errorf("a second backup to the same file:\n%v", r)
	}
	r = runBinary(t, env, "store", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "a copy taken from the running tagwatch at "+c.base) || !strings.Contains(r.stdout, "ok: every page") {
		t.Errorf("store check of a running daemon's file:\n%v", r)
	}

	// Without the token, the daemon says no, and so does the command.
	r = runBinary(t, []string{"TAGWATCH_DATA=" + db, "TAGWATCH_WEB_LISTEN=" + listen}, "store", "backup", filepath.Join(t.TempDir(), "x.db"))
	wantClearFailure(t, r, "which wants authentication", "web.auth.token")
	// A daemon that runs on another file is not copied instead.
	other := filepath.Join(t.TempDir(), "other.db")
	ost, err := store.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, env, "store", "backup", "--data", other, filepath.Join(t.TempDir(), "y.db"))
	ost.Close()
	wantClearFailure(t, r, "the tagwatch at "+c.base+" runs on "+absPath(db)+", not on "+absPath(other))

	// The API download, behind the API's auth.
	if res, _ := authGet(t, c.base+"/api/v1/backup", ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/backup without a token: %s", res.Status)
	}
	res, download := authGet(t, c.base+"/api/v1/backup", token)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/octet-stream" ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), `attachment; filename="tagwatch-`) ||
		res.ContentLength != int64(len(download)) || res.Header.Get(web.DataFileHeader) != absPath(db) {
		t.Fatalf("GET /api/v1/backup: %s %v, %d bytes", res.Status, res.Header, len(download))
	}
	out2 := filepath.Join(t.TempDir(), "download.db")
	if err := os.WriteFile(out2, download, 0o600); err != nil {
		t.Fatal(err)
	}

	c.exit(t, syscall.SIGTERM)
	live := dump(t, db)
	// The secrets are encrypted with the daemon's key, which stays beside
	// its data file: a backup holds neither the key nor the plain secret,
	// and is read with that key.
	key, err := store.ReadKeyFile(store.KeyFile(db))
	if err != nil {
		t.Fatal(err)
	}
	for _, copy := range []string{out, out2} {
		if _, err := os.Stat(store.KeyFile(copy)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a key file was made beside the backup %s: %v", copy, err)
		}
		if raw, err := os.ReadFile(copy); err != nil || bytes.Contains(raw, []byte("lan-s3cret")) {
			t.Errorf("%s holds the registry's password in plain text (%v)", copy, err)
		}
		got := dump(t, copy)
		for name, want := range live {
			if !maps.Equal(got[name], want) {
				t.Errorf("%s: bucket %s has %d records, the daemon's %d, or they differ", filepath.Base(copy), name, len(got[name]), len(want))
			}
		}
		if len(got) != len(live) {
			t.Errorf("%s has %d buckets, the daemon's file %d", filepath.Base(copy), len(got), len(live))
		}
		// And it is a store tagwatch opens, secrets and all, with the key.
		b, err := store.Open(copy, store.WithKey(key, "the daemon's key file"))
		if err != nil {
			t.Fatalf("%s does not open: %v", copy, err)
		}
		regs, _ := b.Registries()
		nots, _ := b.Notifiers()
		imgs, _ := b.Images()
		b.Close()
		if len(regs) != 1 || regs[0].Secrets["password"] != "lan-s3cret" || len(nots) != 1 || len(imgs) != repos {
			t.Errorf("%s: registries %+v, notifiers %d, images %d", copy, regs, len(nots), len(imgs))
		}
	}
	if n := len(live["history"]); n != repos {
		t.Errorf("the daemon's file has %d history entries, want %d", n, repos)
	}
}
