package store

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestParseKey(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	raw := k.b[:]
	good := map[string]string{
		"base64":                    base64.StdEncoding.EncodeToString(raw),
		"base64 without padding":    base64.RawStdEncoding.EncodeToString(raw),
		"base64 url alphabet":       base64.URLEncoding.EncodeToString(raw),
		"base64 with a newline":     base64.StdEncoding.EncodeToString(raw) + "\n",
		"hex":                       hex.EncodeToString(raw),
		"hex upper case, CRLF":      strings.ToUpper(hex.EncodeToString(raw)) + "\r\n",
		"Encode() reads back":       k.Encode(),
		"surrounded by white space": "  " + k.Encode() + "\t\n",
	}
	for name, s := range good {
		t.Run(name, func(t *testing.T) {
			got, err := ParseKey(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != k {
				t.Errorf("ParseKey gave another key (id %s, want %s)", got.ID(), k.ID())
			}
		})
	}
	bad := map[string]string{
		"empty":             "",
		"blank":             " \n",
		"a password":        "correct horse battery staple",
		"31 bytes":          base64.StdEncoding.EncodeToString(raw[:31]),
		"33 bytes":          base64.StdEncoding.EncodeToString(append(slices.Clone(raw), 1)),
		"63 hex digits":     hex.EncodeToString(raw)[:63],
		"hex of 16 bytes":   hex.EncodeToString(raw[:16]),
		"base64 of 48":      base64.StdEncoding.EncodeToString(bytes.Repeat(raw, 2)[:48]),
		"not base64 at all": "!!!!" + strings.Repeat("x", 40),
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKey(s)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, "openssl rand -base64 32") || !strings.Contains(msg, "64 hex digits") {
				t.Errorf("error %q does not say what a key looks like", msg)
			}
			if v := strings.TrimSpace(s); len(v) > 3 && strings.Contains(msg, v) {
				t.Errorf("error %q quotes the value", msg)
			}
		})
	}
}

// TestKeyNeverPrints: a key passed to fmt (a logger, an error) by mistake
// shows its id, not its bytes.
func TestKeyNeverPrints(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d"}
	for _, f := range forms {
		out := fmt.Sprintf(f, k) + fmt.Sprintf(f, &k) + fmt.Sprintf(f, struct{ K Key }{k})
		for _, secret := range []string{k.Encode(), hex.EncodeToString(k.b[:]), base64.RawStdEncoding.EncodeToString(k.b[:8])} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints the key: %s", f, out)
			}
		}
		if !strings.Contains(out, k.ID()) {
			t.Errorf("%s does not show the key's id: %s", f, out)
		}
	}
}

func TestKeyFileMadeOnFirstOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tagwatch.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := KeyFile(path)
	if keyFile != filepath.Join(dir, "tagwatch.db.key") {
		t.Errorf("KeyFile = %s: beside the store", keyFile)
	}
	first, err := ReadKeyFile(keyFile)
	if err != nil {
		t.Fatalf("no key file after the first Open: %v", err)
	}
	if s.KeyID() != first.ID() || s.KeyFrom() != keyFile {
		t.Errorf("store key %s from %s; the file holds %s", s.KeyID(), s.KeyFrom(), first.ID())
	}
	s.Close()
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		// Loosened by hand: tightened again, like the store.
		if err := os.Chmod(keyFile, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	again, err := ReadKeyFile(keyFile)
	if err != nil || again != first {
		t.Fatalf("the key changed on the second Open: %v", err)
	}
	if fi, _ := os.Stat(keyFile); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("loose key file not tightened: %v", fi.Mode().Perm())
	}
	// Only the store and its key: no temporary file left behind.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"tagwatch.db", "tagwatch.db.key"}) {
		t.Errorf("directory holds %q", names)
	}

	// A damaged key file is an error that names it, never replaced.
	if err := os.WriteFile(keyFile, []byte("half a ke"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open with a damaged key file succeeded")
	} else if !strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "is not a key") {
		t.Errorf("error %q should name the key file and say it is not a key", err)
	}
	if b, _ := os.ReadFile(keyFile); string(b) != "half a ke" {
		t.Error("the damaged key file was replaced")
	}
}

// TestKeyFileCreatedOnce: processes starting at once on a new store agree
// on one key (creation never replaces a key file).
func TestKeyFileCreatedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db.key")
	const n = 16
	keys := make([]Key, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], created[i], errs[i] = loadOrCreateKeyFile(path)
		}()
	}
	wg.Wait()
	made := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if keys[i] != keys[0] {
			t.Errorf("goroutine %d got key %s, goroutine 0 %s", i, keys[i].ID(), keys[0].ID())
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d callers say they created the key file, want 1", made)
	}
}

const (
	regSecret  = "Vendor-Passw0rd-7f3a9c"
	hookSecret = "Hook-Token-0b8e2d51"
)

// putSecrets saves a registry and a notifier with secrets.
func putSecrets(t *testing.T, s *Store) {
	t.Helper()
	if err := s.PutRegistry(Registry{Kind: "custom", Name: "vendor", UpdatedAt: t0,
		Values:  map[string]string{"url": "https://registry.vendor.example", "login": "seller@example.com"},
		Secrets: map[string]string{"password": regSecret}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRegistry(Registry{Kind: "hub", Name: "public", UpdatedAt: t0,
		Values: map[string]string{"login": "johndoe"}, Secrets: map[string]string{"password": "dckr_pat_" + regSecret}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNotifier(Notifier{Name: "hook", UpdatedAt: t0, Settings: map[string]string{"type": "webhook"},
		Secrets: map[string]string{"url": "https://hooks.example/" + hookSecret}}); err != nil {
		t.Fatal(err)
	}
}

// rawFile is the store file's bytes, read while it is closed.
func rawFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	// Replace them, so that old versions land in free pages too.
	putSecrets(t, s)
	path := s.Path()
	s.Close()
	raw := rawFile(t, path)
	for _, secret := range []string{regSecret, hookSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the store file holds %q in plain text", secret)
		}
	}
	// The control: the file does hold the records' other fields, so a
	// missing secret is not a missing record.
	for _, plain := range []string{"registry.vendor.example", "seller@example.com", "webhook"} {
		if !bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the store file lacks %q: is the grep looking at the right file?", plain)
		}
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	regs, err := s2.Registries()
	if err != nil || len(regs) != 2 || regs[0].Secrets["password"] != regSecret || len(regs[0].Unreadable) != 0 {
		t.Errorf("registries after reopening: %+v, %v", regs, err)
	}
	ns, err := s2.Notifiers()
	if err != nil || len(ns) != 1 || ns[0].Secrets["url"] != "https://hooks.example/"+hookSecret {
		t.Errorf("notifiers after reopening: %+v, %v", ns, err)
	}
	if err := s2.CheckSecrets(); err != nil {
		t.Errorf("CheckSecrets: %v", err)
	}
}

// sealedOf reads a record's sealed map straight from the file.
func sealedOf(t *testing.T, db *bolt.DB, bucketName, key []byte) map[string]string {
	t.Helper()
	var rec struct {
		Sealed map[string]string `json:"sealed"`
	}
	err := db.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketName).Get(key), &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Sealed
}

// TestSealedSecretsStayWithTheirRecord: a sealed value copied into another
// record, or under another variable, does not decrypt there.
func TestSealedSecretsStayWithTheirRecord(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	path := s.Path()
	s.Close()

	vendorKey, _ := pairKey("custom", "vendor")
	hubKey, _ := pairKey("hub", "public")
	writeRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRegistries)
		var vendor, hub map[string]any
		json.Unmarshal(b.Get(vendorKey), &vendor)
		json.Unmarshal(b.Get(hubKey), &hub)
		// hub.public gets custom.vendor's sealed password, and custom.vendor
		// its own password under the name "auth".
		hub["sealed"] = vendor["sealed"]
		vendor["sealed"] = map[string]any{"auth": vendor["sealed"].(map[string]any)["password"]}
		for k, v := range map[string]map[string]any{string(vendorKey): vendor, string(hubKey): hub} {
			j, _ := json.Marshal(v)
			if err := b.Put([]byte(k), j); err != nil {
				return err
			}
		}
		return nil
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	regs, err := s.Registries()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if len(r.Secrets) != 0 || len(r.Unreadable) != 1 {
			t.Errorf("%s.%s after the swap: secrets %v, unreadable %v", r.Kind, r.Name, r.Secrets, r.Unreadable)
		}
	}
	var ue *UnreadableError
	if err := s.CheckSecrets(); !errors.As(err, &ue) || ue.Damaged != 2 || len(ue.OtherKeys) != 0 {
		t.Fatalf("CheckSecrets = %v", err)
	}
	if msg := ue.Error(); !strings.Contains(msg, "damaged") || !strings.Contains(msg, "registry custom.vendor: auth") ||
		!strings.Contains(msg, "registry hub.public: password") || strings.Contains(msg, regSecret) {
		t.Errorf("message: %s", msg)
	}
}

// TestStoreWithAnotherKey: a store copied without its key, or opened with
// another, opens; it shows no secret, says so clearly, and takes new ones.
func TestStoreWithAnotherKey(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	if err := s.PutImages([]Image{testImage("kept", 1)}); err != nil {
		t.Fatal(err)
	}
	origPath, origID := s.Path(), s.KeyID()
	s.Close()

	check := func(t *testing.T, s *Store, keyHint string) {
		t.Helper()
		regs, err := s.Registries()
		if err != nil {
			t.Fatal(err)
		}
		if len(regs) != 2 {
			t.Fatalf("registries %+v", regs)
		}
		for _, r := range regs {
			if len(r.Secrets) != 0 || !slices.Equal(r.Unreadable, []string{"password"}) || len(r.Values) == 0 {
				t.Errorf("%s.%s: secrets %v, unreadable %v, values %v", r.Kind, r.Name, r.Secrets, r.Unreadable, r.Values)
			}
		}
		ns, err := s.Notifiers()
		if err != nil || len(ns) != 1 || len(ns[0].Secrets) != 0 || !slices.Equal(ns[0].Unreadable, []string{"url"}) {
			t.Errorf("notifiers %+v, %v", ns, err)
		}
		if _, ok, err := s.Image("kept"); !ok || err != nil {
			t.Errorf("the rest of the store is not readable: %v, %v", ok, err)
		}
		err = s.CheckSecrets()
		var ue *UnreadableError
		if !errors.As(err, &ue) {
			t.Fatalf("CheckSecrets = %v", err)
		}
		msg := err.Error()
		for _, want := range []string{
			"the secrets in " + s.Path() + " were encrypted with another key (id " + origID + ")",
			"set TAGWATCH_SECRET_KEY", "restore " + s.Path() + ".key", keyHint,
			"registry custom.vendor: password", "registry hub.public: password", "notifier hook: url",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
		for _, secret := range []string{regSecret, hookSecret} {
			if strings.Contains(msg, secret) {
				t.Errorf("message holds a secret: %s", msg)
			}
		}
	}

	t.Run("copied without its key file", func(t *testing.T) {
		copyPath := filepath.Join(t.TempDir(), "tagwatch.db")
		if err := os.WriteFile(copyPath, rawFile(t, origPath), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Open(copyPath)
		if err != nil {
			t.Fatalf("a copy without its key does not open: %v", err)
		}
		defer c.Close()
		check(t, c, "not with the key from "+KeyFile(copyPath))
		// Secrets entered again are kept, with the copy's own key.
		if err := c.PutRegistry(Registry{Kind: "custom", Name: "vendor", Values: map[string]string{"login": "x"}, Secrets: map[string]string{"password": "again"}}); err != nil {
			t.Fatal(err)
		}
		regs, _ := c.Registries()
		if regs[0].Secrets["password"] != "again" || len(regs[0].Unreadable) != 0 {
			t.Errorf("a secret entered again: %+v", regs[0])
		}
	})
	t.Run("another key from the environment", func(t *testing.T) {
		other, _ := NewKey()
		c, err := Open(origPath, WithKey(other, "environment TAGWATCH_SECRET_KEY"))
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "not with the key from environment TAGWATCH_SECRET_KEY (id "+other.ID()+")")
		c.Close()
		// Opened with its own key again, nothing was lost.
		c = reopen(t, c)
		if err := c.CheckSecrets(); err != nil {
			t.Errorf("with its own key: %v", err)
		}
	})
}

// TestMigrateV4 opens a store file written by schema 2 (tagwatch before
// encryption), with plain-text secrets: they come out encrypted, readable,
// and gone from the file's bytes, free pages included.
//
// testdata/schema2.db.gz was written by the store package of schema 2
// (store.Open, PutImages, AppendHistory, PutRegistry ×3, PutRegistryTest,
// PutNotifier, MarkSent), then compacted with bolt.Compact so it is small.
func TestMigrateV4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	zr, err := os.Open("testdata/schema2.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(zr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(gz)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	plain := []string{"Plain-Vendor-Passw0rd-Schema2", "dckr_pat_Plain-Hub-Token-Schema2", "glpat-Plain-GitLab-Token-Schema2", "Plain-Hook-Token-Schema2"}
	for _, p := range plain {
		if !bytes.Contains(b, []byte(p)) {
			t.Fatalf("the schema-2 file does not hold %q in plain text: not the file this test expects", p)
		}
	}
	if v := rawVersion(t, path); v != "2" {
		t.Fatalf("fixture at schema %s", v)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Right after the migration, before any other write could reuse the
	// pages it freed.
	s.Close()
	raw := rawFile(t, path)
	for _, p := range plain {
		if bytes.Contains(raw, []byte(p)) {
			t.Errorf("after migration the file still holds %q (free pages not scrubbed?)", p)
		}
	}
	if !bytes.Contains(raw, []byte("registry.vendor.example")) {
		t.Error("the migrated file lacks the non-secret values: is the grep looking at the right file?")
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(); err != nil || v != len(migrations) {
		t.Errorf("version %d, %v", v, err)
	}
	regs, err := s.Registries()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"custom.vendor": {"password": plain[0]},
		"hub.public":    {"password": plain[1]},
		"gitlab.work":   {"token": plain[2]},
	}
	got := map[string]map[string]string{}
	for _, r := range regs {
		got[r.Kind+"."+r.Name] = r.Secrets
		if len(r.Values) == 0 || r.UpdatedAt.IsZero() {
			t.Errorf("%s.%s lost its values: %+v", r.Kind, r.Name, r)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("migrated secrets %v, want %v", got, want)
	}
	ns, err := s.Notifiers()
	if err != nil || len(ns) != 1 || ns[0].Secrets["url"] != "https://hooks.example/"+plain[3] || ns[0].Settings["type"] != "webhook" {
		t.Errorf("notifiers %+v, %v", ns, err)
	}
	if imgs, _ := s.Images(); len(imgs) != 1 || imgs[0].LatestTag != "1.27.0" {
		t.Errorf("images %+v", imgs)
	}
	if h, _ := s.History(0, 0); len(h) != 1 || h[0].Seq != 1 {
		t.Errorf("history %+v", h)
	}
	if tests, _ := s.RegistryTests(); len(tests) != 1 {
		t.Errorf("registry tests %+v", tests)
	}
	if sent, _ := s.Sent("hook", "docker.io/library/nginx:1.25.3 linux/amd64 1.27.0"); !sent {
		t.Error("sent mark lost")
	}
	// History goes on from its sequence.
	if h, err := s.AppendHistory([]HistoryEntry{{Key: "next"}}); err != nil || h[0].Seq != 2 {
		t.Errorf("append after migration: %+v, %v", h, err)
	}
	s.Close()

	// The scrub mark is gone: the next Open does not rewrite the file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyScrub) != nil {
			t.Error("scrub mark left after Open")
		}
		return nil
	})
	db.Close()
	before, _ := os.Stat(path)
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("a second Open rewrote the file")
	}
}

// TestRotateKey rotates the key file beside the store: every secret still
// reads, with the new key only, and no old ciphertext stays in the file.
func TestRotateKey(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	if err := s.PutImages([]Image{testImage("kept", 1)}); err != nil {
		t.Fatal(err)
	}
	path := s.Path()

	// While the store is open (a running daemon), bbolt's lock refuses.
	if _, err := RotateKey(path, nil, WithLockTimeout(100*time.Millisecond)); !errors.Is(err, ErrLocked) {
		t.Errorf("rotation of an open store: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(pendingKeyFile(path)); err == nil {
		t.Error("a refused rotation left its pending key file")
	}

	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	vendorKey, _ := pairKey("custom", "vendor")
	oldSealed := sealedOf(t, db, bucketRegistries, vendorKey)["password"]
	db.Close()
	oldKey, err := ReadKeyFile(KeyFile(path))
	if err != nil {
		t.Fatal(err)
	}

	rot, err := RotateKey(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Secrets != 3 || rot.OldID != oldKey.ID() || rot.NewID == rot.OldID || rot.KeyFile != KeyFile(path) {
		t.Errorf("rotation = %+v", rot)
	}
	newKey, err := ReadKeyFile(KeyFile(path))
	if err != nil || newKey.ID() != rot.NewID {
		t.Fatalf("key file after rotation: %v, id %s", err, newKey.ID())
	}
	if _, err := os.Stat(pendingKeyFile(path)); err == nil {
		t.Error("pending key file left after rotation")
	}
	raw := rawFile(t, path)
	if bytes.Contains(raw, []byte(oldSealed)) {
		t.Error("the old ciphertext is still in the file")
	}
	for _, secret := range []string{regSecret, hookSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the file holds %q", secret)
		}
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSecrets(); err != nil {
		t.Errorf("after rotation: %v", err)
	}
	regs, _ := s.Registries()
	if len(regs) != 2 || regs[0].Secrets["password"] != regSecret {
		t.Errorf("registries after rotation: %+v", regs)
	}
	if _, ok, _ := s.Image("kept"); !ok {
		t.Error("image lost in the rotation")
	}
	s.Close()
	// The old key opens nothing any more.
	s, err = Open(path, WithKey(oldKey, "the old key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSecrets(); err == nil {
		t.Error("the old key still decrypts the secrets")
	}
	s.Close()
}

// TestRotateKeyFromEnvironment: with the key from the environment, the new
// key is given and kept by the caller; the store's key file is not touched.
func TestRotateKeyFromEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	oldKey, _ := NewKey()
	newKey, _ := NewKey()
	s, err := Open(path, WithKey(oldKey, "environment TAGWATCH_SECRET_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	putSecrets(t, s)
	s.Close()
	if _, err := os.Stat(KeyFile(path)); err == nil {
		t.Error("a key file was made although the environment gives the key")
	}
	if _, err := RotateKey(path, nil, WithKey(oldKey, "environment TAGWATCH_SECRET_KEY")); err == nil || !strings.Contains(err.Error(), "give the new key") {
		t.Errorf("rotation without a new key: %v", err)
	}
	rot, err := RotateKey(path, &newKey, WithKey(oldKey, "environment TAGWATCH_SECRET_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	if rot.KeyFile != "" || rot.Secrets != 3 || rot.NewID != newKey.ID() {
		t.Errorf("rotation = %+v", rot)
	}
	wantSecretsReadWith(t, path, newKey)
}

// TestRotateKeyInterrupted: a rotation that committed but stopped before
// replacing the key file still opens, and running it again finishes it.
func TestRotateKeyInterrupted(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	path := s.Path()
	s.Close()
	oldKey, _ := ReadKeyFile(KeyFile(path))
	newKey, _ := NewKey()
	// Where a crash after the commit leaves things: the secrets under the
	// new key, which is in FILE.key.new; FILE.key still the old one.
	if _, err := RotateKey(path, &newKey, WithKey(oldKey, "old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(pendingKeyFile(path), newKey); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSecrets(); err != nil {
		t.Errorf("a store left by an interrupted rotation: %v", err)
	}
	s.Close()

	other, _ := NewKey()
	if _, err := RotateKey(path, &other); err == nil || !strings.Contains(err.Error(), "interrupted rotation") {
		t.Errorf("another new key while one is pending: %v", err)
	}
	rot, err := RotateKey(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot.NewID != newKey.ID() {
		t.Errorf("the finished rotation used key %s, want the pending %s", rot.NewID, newKey.ID())
	}
	if k, _ := ReadKeyFile(KeyFile(path)); k != newKey {
		t.Error("the key file does not hold the new key")
	}
	if _, err := os.Stat(pendingKeyFile(path)); err == nil {
		t.Error("pending key file left")
	}
	wantSecretsReadWith(t, path, newKey)
}

// wantSecretsReadWith checks that every secret of the closed store at path
// decrypts with k alone.
func wantSecretsReadWith(t *testing.T, path string, k Key) {
	t.Helper()
	s, err := Open(path, WithKey(k, "new"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSecrets(); err != nil {
		t.Error(err)
	}
}

// TestRotateKeyRefusesUnreadable: a secret no key decrypts stops the
// rotation before anything changes.
func TestRotateKeyRefusesUnreadable(t *testing.T) {
	s := openTemp(t)
	putSecrets(t, s)
	path := s.Path()
	s.Close()
	// The key file is lost and replaced by another one.
	other, _ := NewKey()
	if err := WriteKeyFile(KeyFile(path), other); err != nil {
		t.Fatal(err)
	}
	before := rawFile(t, path)
	_, err := RotateKey(path, nil)
	if err == nil {
		t.Fatal("rotation with unreadable secrets succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "nothing changed") || !strings.Contains(msg, "registry custom.vendor: password") {
		t.Errorf("error: %s", msg)
	}
	if !bytes.Equal(before, rawFile(t, path)) {
		t.Error("the refused rotation changed the file")
	}
	if k, _ := ReadKeyFile(KeyFile(path)); k != other {
		t.Error("the refused rotation changed the key file")
	}
	if _, err := os.Stat(pendingKeyFile(path)); err == nil {
		t.Error("pending key file left")
	}
}

// BenchmarkRotateKey rotates the key of a store the size of 10,000 watched
// images and 100 saved secrets: one transaction plus the rewrite of the
// whole file (the scrub), which dominates.
func BenchmarkRotateKey(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tagwatch.db")
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	imgs := make([]Image, 10000)
	for i := range imgs {
		imgs[i] = testImage(fmt.Sprintf("image-%05d", i), i)
	}
	if err := s.PutImages(imgs); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if err := s.PutRegistry(Registry{Kind: "custom", Name: fmt.Sprintf("r%03d", i), Secrets: map[string]string{"password": regSecret}}); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for b.Loop() {
		if _, err := RotateKey(path, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after, _ := os.Stat(path)
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB-before")
	b.ReportMetric(float64(after.Size())/(1<<20), "file-MiB-after")
}

// BenchmarkRegistries reads 100 saved registries, decrypting their secrets:
// what the UI's registry list costs.
func BenchmarkRegistries(b *testing.B) {
	s := openTemp(b)
	for i := range 100 {
		if err := s.PutRegistry(Registry{Kind: "custom", Name: fmt.Sprintf("r%03d", i), Values: map[string]string{"url": "https://r.example", "login": "me"},
			Secrets: map[string]string{"password": regSecret}}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		regs, err := s.Registries()
		if err != nil || len(regs) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpen seals and opens one secret the size of a token: the
// cost encryption adds to each secret saved or read.
func BenchmarkSealOpen(b *testing.B) {
	k, _ := NewKey()
	r, err := newKeyring(k, "bench")
	if err != nil {
		b.Fatal(err)
	}
	ad := registryAD("custom", "vendor", "password")
	for b.Loop() {
		if _, err := r.openValue(ad, r.sealValue(ad, regSecret)); err != nil {
			b.Fatal(err)
		}
	}
}
