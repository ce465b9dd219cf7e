package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/store"
)

// filled writes a closed store with enough images and history for their
// buckets to span several pages, and returns its path.
func filled(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Fill(t, s, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantOpenError checks that err is the one-line OpenError of kind for path,
// saying what to do.
func wantOpenError(t *testing.T, err error, kind error, path string, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var oe *store.OpenError
	if !errors.As(err, &oe) || !errors.Is(err, kind) {
		t.Fatalf("error %q (%T) is not an OpenError of %v", err, err, kind)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
		t.Errorf("error is not one line naming %s:\n%s", path, msg)
	}
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
}

// TestOpenDamaged: a page overwritten with garbage, or pointing past the
// end of the file, makes Open fail with ErrDamaged and what to do, not
// panic; the file is not written to.
func TestOpenDamaged(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		detail string
	}{
		{"garbage over the images' root page", func(t *testing.T, path string) { storetest.DamagePage(t, path, "images") }, "self identifies"},
		{"garbage over the history's root page", func(t *testing.T, path string) { storetest.DamagePage(t, path, "history") }, "self identifies"},
		{"garbage over the freelist", func(t *testing.T, path string) { storetest.DamageFreelist(t, path) }, "freelist"},
		{"a child page past the end of the file", func(t *testing.T, path string) { storetest.PointPastEnd(t, path, "images") }, "a page points past the end of the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filled(t)
			tt.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(path)
			if err == nil {
				s.Close()
				t.Fatal("a damaged file opened")
			}
			wantOpenError(t, err, store.ErrDamaged, path, tt.detail, "restore a backup", "tagwatch store backup", "tagwatch store check")
			t.Logf("%v", err)
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("Open wrote to the damaged file")
			}
			// The lock was let go: the file opens again (and fails again).
			if _, err := store.Open(path, store.WithLockTimeout(100*time.Millisecond)); !errors.Is(err, store.ErrDamaged) {
				t.Errorf("second Open: %v", err)
			}
		})
	}
}

// TestDamageAfterOpen: damage that Open did not see (it was told not to
// walk) comes back from reads as ErrDamaged, the process goes on, and
// writes are refused from then on.
func TestDamageAfterOpen(t *testing.T) {
	path := filled(t)
	storetest.DamagePage(t, path, "images")
	s, err := store.Open(path, store.WithoutVerify())
	if err != nil {
		t.Fatalf("Open without the walk: %v", err)
	}
	defer s.Close()
	if h, err := s.History(5, 0); err != nil || len(h) != 5 {
		t.Fatalf("the sound history bucket: %d entries, %v", len(h), err)
	}
	_, err = s.Images()
	wantOpenError(t, err, store.ErrDamaged, path, "read images", "self identifies")
	if _, err := s.AppendHistory([]store.HistoryEntry{{Key: "x"}}); !errors.Is(err, store.ErrDamaged) {
		t.Errorf("a write after damage was found: %v", err)
	}
}

func TestOpenForeign(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.db")
	if err := os.WriteFile(small, bytes.Repeat([]byte("shopping list\n"), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.db")
	if err := os.WriteFile(short, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	storetest.Update(t, other, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("a"), []byte("b"))
	})
	for _, tt := range []struct{ path, detail string }{
		{text, "not a bbolt database file"},
		{short, "not a bbolt database file"},
		{small, "too short to be a bbolt database file"},
		{other, `bucket "widgets"`},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			before, _ := os.ReadFile(tt.path)
			s, err := store.Open(tt.path)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			wantOpenError(t, err, store.ErrForeign, tt.path, tt.detail, "not a tagwatch store", "--data")
			if after, _ := os.ReadFile(tt.path); !bytes.Equal(before, after) {
				t.Error("Open changed the file")
			}
		})
	}
}

func TestOpenLockedAndNewer(t *testing.T) {
	path := filled(t)
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(path, store.WithLockTimeout(150*time.Millisecond))
	wantOpenError(t, err, store.ErrLocked, path, "locked by another tagwatch", "waited 150ms", "tagwatch store backup")
	// A reader's shared lock waits for the writer too.
	_, err = store.Open(path, store.ReadOnly(), store.WithLockTimeout(150*time.Millisecond))
	wantOpenError(t, err, store.ErrLocked, path)
	s.Close()

	// Readers share the lock.
	r1, err := store.Open(path, store.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := store.Open(path, store.ReadOnly(), store.WithLockTimeout(150*time.Millisecond))
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	r2.Close()
	r1.Close()

	storetest.Update(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("99")) })
	_, err = store.Open(path)
	wantOpenError(t, err, store.ErrNewerSchema, path, "newer tagwatch", "schema version 99", "restore a backup")
	// Read-only, for a backup, it opens, and its pages check.
	r, err := store.Open(path, store.ReadOnly())
	if err != nil {
		t.Fatalf("read-only open of a newer file: %v", err)
	}
	defer r.Close()
	if rep, err := r.Check(); err != nil || !rep.Newer || rep.Schema != 99 || len(rep.Problems) != 0 {
		t.Errorf("check of a newer file: %+v, %v", rep, err)
	}
}

// TestCheck reports every problem of a damaged file with its bucket, and
// none on a sound one.
func TestCheck(t *testing.T) {
	path := filled(t)
	s, err := store.Open(path, store.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check()
	s.Close()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("sound file: %v %v", rep.Problems, err)
	}
	if rep.Records["images"] != 300 || rep.Records["history"] != 300 || rep.Schema == 0 || rep.Size == 0 {
		t.Errorf("report %+v", rep)
	}

	// A record that does not decode, and a damaged page elsewhere.
	storetest.Update(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("registries")).Put([]byte("custom\x00x"), []byte("{not json"))
	})
	page := storetest.DamagePage(t, path, "history")
	s, err = store.Open(path, store.ReadOnly(), store.WithoutVerify())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err = s.Check()
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	for _, want := range []string{"bucket history: assertion failed: Page expected to be: " + fmt.Sprint(page), `bucket registries: record "custom x" does not decode`} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if rep.Records["images"] != 300 {
		t.Errorf("the images were not all read past the damage: %d", rep.Records["images"])
	}
}

// TestReadOnlyNeedsNoKey: backup and check open the file read-only, which
// neither reads nor makes the key file beside it, also in the pass that
// verifies a file before it is opened for writing; Check decodes every
// bucket of the current schema (watchers, outbox) and the form of the
// encrypted secrets, without the key.
func TestReadOnlyNeedsNoKey(t *testing.T) {
	path := filled(t)
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	err = errors.Join(
		s.PutRegistry(store.Registry{Kind: "custom", Name: "lan", Values: map[string]string{"url": "https://r.lan"},
			Secrets: map[string]string{"password": "pw-ro-1"}, UpdatedAt: at}),
		s.PutNotifier(store.Notifier{Name: "phone", Settings: map[string]string{"type": "webhook"},
			Secrets: map[string]string{"url": "https://hook.lan/secret-ro-2"}, UpdatedAt: at}),
		s.PutWatchers([]store.WatcherState{{Name: "local", Kind: "docker", Error: "engine gone", FailingSince: at}}),
	)
	if err == nil {
		_, err = s.AddOutbox([]store.OutboxMessage{{Notifier: "phone", Updates: []store.HistoryEntry{{At: at, Key: "k", Reference: "r:1", Update: "minor"}}}})
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	key := store.KeyFile(path)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	r, err := store.Open(path, store.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Check()
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("check: %v %v", rep.Problems, err)
	}
	if rep.Records["watchers"] != 1 || rep.Records["outbox"] != 1 || rep.Records["registries"] != 1 || rep.Records["notifiers"] != 1 {
		t.Errorf("records %v", rep.Records)
	}
	regs, err := r.Registries()
	if err != nil || len(regs) != 1 || regs[0].Secrets["password"] != "" || len(regs[0].Unreadable) != 1 {
		t.Errorf("a read-only store without its key read %+v, %v", regs, err)
	}
	r.Close()
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only open made %s: %v", key, err)
	}

	// Opening for writing verifies read-only first; with the key from the
	// environment no key file is made at all.
	k, err := store.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.Open(path, store.WithKey(k, "test"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an open with a key from the environment made %s: %v", key, err)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the store changed (%v)", err)
	}

	// A sealed secret that is not in the envelope's form is damage Check
	// names, key or no key.
	storetest.Update(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("notifiers")).Put([]byte("bad"), []byte(`{"name":"bad","sealed":{"url":"https://plain.example/hook"}}`))
	})
	r, err = store.Open(path, store.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err = r.Check()
	if want := `bucket notifiers: record "bad": the encrypted secret url is not one tagwatch wrote`; err != nil || len(rep.Problems) != 1 || rep.Problems[0] != want {
		t.Errorf("problems %q (%v), want %q", rep.Problems, err, want)
	}
}
