package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/store"
)

// realStore writes a data file as tagwatch keeps one: images, their
// history with outbox messages, a registry and a notifier saved in the UI,
// a sent mark. It returns the path, closed.
func realStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	route := func(saved []store.HistoryEntry) []store.OutboxMessage {
		return []store.OutboxMessage{{Notifier: "phone", Updates: saved[:3]}}
	}
	storetest.Fill(t, st, 200, store.WithOutbox(route))
	now := time.Now().UTC()
	if err := st.PutRegistry(store.Registry{Kind: "custom", Name: "lan", Values: map[string]string{"url": "http://192.0.2.1:5000"},
		Secrets: map[string]string{"password": "registry-s3cret"}, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutNotifier(store.Notifier{Name: "phone", Settings: map[string]string{"threshold": "minor"},
		Secrets: map[string]string{"url": "ntfy://ntfy.example/s3cret-topic"}, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkSent("phone", "ghcr.io/acme/app199:1.0.0 1.1.0 sha256:b", now); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

// wantClearFailure checks what an admin sees when the data file cannot be
// used: a non-zero exit, one line from tagwatch that says what and what to
// do, and never a Go panic or stack trace.
func wantClearFailure(t *testing.T, r result, says ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit 0, want non-zero\n%v", r)
	}
	all := r.stdout + r.stderr
	for _, bad := range []string{"goroutine ", "panic:", "runtime.", ".go:"} {
		if strings.Contains(all, bad) {
			t.Errorf("the output holds %q: a stack trace?\n%v", bad, r)
		}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "tagwatch: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Errorf("want one tagwatch: line on stderr, got %d\n%v", len(lines), r)
		return
	}
	for _, s := range says {
		if !strings.Contains(lines[0], s) {
			t.Errorf("the line lacks %q:\n%s", s, lines[0])
		}
	}
}

// TestUnusableStoreRealBinary runs the real tagwatch binary on data files
// it cannot use: a copy of a real one with a data page overwritten with
// garbage, one locked by another process, a file that is not tagwatch's,
// and one from a newer tagwatch. Each time: one clear line, a non-zero
// exit, no goroutine trace, and the file left as it was.
func TestUnusableStoreRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the tagwatch binary")
	}
	orig := realStore(t)
	serve := func(data string) result {
		return runBinary(t, nil, "serve", "--data", data, "--listen", "127.0.0.1:0")
	}

	t.Run("damaged", func(t *testing.T) {
		path := storetest.Copy(t, orig)
		page := storetest.DamagePage(t, path, "images")
		before, _ := os.ReadFile(path)

		r := serve(path)
		wantClearFailure(t, r, "store "+path+" is damaged", fmt.Sprintf("Page expected to be: %d", page),
			"restore a backup", "cp BACKUP "+path, "tagwatch store backup FILE", "tagwatch store check --data "+path)
		t.Logf("serve: %s", strings.TrimSpace(r.stderr))

		r = runBinary(t, nil, "store", "check", "--data", path)
		wantClearFailure(t, r, "store "+path+" is damaged (1 problem, listed above)", "restore a backup")
		if !strings.Contains(r.stdout, fmt.Sprintf("damaged: bucket images: assertion failed: Page expected to be: %d", page)) ||
			!strings.Contains(r.stdout, "200 history") {
			t.Errorf("store check does not list the damage and what reads:\n%v", r)
		}
		t.Logf("store check:\n%s%s", r.stdout, r.stderr)

		out := filepath.Join(t.TempDir(), "backup.db")
		r = runBinary(t, nil, "store", "backup", "--data", path, out)
		wantClearFailure(t, r, "is damaged (its copy has 1 problem", "no backup was written")
		if _, err := os.Stat(out); err == nil {
			t.Error("a damaged backup was kept")
		}
		if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
			t.Errorf("left behind: %v", entries)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Error("the damaged file was written to")
		}
	})

	t.Run("locked", func(t *testing.T) {
		path := storetest.Copy(t, orig)
		st, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		r := serve(path)
		wantClearFailure(t, r, "store "+path+" is locked by another tagwatch", "stop the other one", "tagwatch store backup FILE")
		t.Logf("serve: %s", strings.TrimSpace(r.stderr))
		// No tagwatch serve answers for it: the store commands say so.
		r = runBinary(t, nil, "store", "check", "--data", path, "--url", closedURL(t))
		wantClearFailure(t, r, path+" is held by another process, and no tagwatch answers at", "give --url")
	})

	t.Run("foreign", func(t *testing.T) {
		dir := t.TempDir()
		text := filepath.Join(dir, "notes.db")
		if err := os.WriteFile(text, []byte(strings.Repeat("shopping list\n", 2000)), 0o600); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(dir, "other.db")
		storetest.Update(t, other, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("sessions"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		})
		for path, why := range map[string]string{text: "not a bbolt database file", other: `a bbolt file with a bucket "sessions"`} {
			before, _ := os.ReadFile(path)
			wantClearFailure(t, serve(path), path+" is not a tagwatch store ("+why, "point --data (TAGWATCH_DATA)")
			wantClearFailure(t, runBinary(t, nil, "store", "check", "--data", path), path+" is not a tagwatch store")
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("%s was changed", path)
			}
		}
	})

	t.Run("newer schema", func(t *testing.T) {
		path := storetest.Copy(t, orig)
		storetest.Update(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("42")) })
		r := serve(path)
		wantClearFailure(t, r, "store "+path+" was written by a newer tagwatch (schema version 42", "restore a backup made before the upgrade")
		t.Logf("serve: %s", strings.TrimSpace(r.stderr))
		// It can still be backed up, as it is, for the newer tagwatch.
		out := filepath.Join(t.TempDir(), "backup.db")
		r = runBinary(t, nil, "store", "backup", "--data", path, out)
		if r.code != 0 || !strings.Contains(r.stdout, "schema 42") {
			t.Errorf("backup of a newer file:\n%v", r)
		}
	})

	t.Run("sound", func(t *testing.T) {
		r := runBinary(t, nil, "store", "check", "--data", orig)
		if r.code != 0 || !strings.Contains(r.stdout, "ok: every page and record reads back") ||
			!strings.Contains(r.stdout, "200 history, 200 images") {
			t.Errorf("store check of a sound file:\n%v", r)
		}
	})
}
