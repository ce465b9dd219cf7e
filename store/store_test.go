package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTemp opens a new store in a test directory and closes it at the end.
func openTemp(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "tagwatch.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes s and opens its file again, as a daemon restart would.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

var t0 = time.Date(2024, 10, 1, 12, 0, 0, 0, time.UTC)

// testImage is a record about the size of a real one.
func testImage(key string, n int) Image {
	return Image{
		Key:          key,
		Image:        "ghcr.io/home-assistant/home-assistant:2024.10.1",
		Reference:    "ghcr.io/home-assistant/home-assistant:2024.10.1",
		Registry:     "ghcr.public",
		Platform:     "linux/amd64",
		Where:        []Location{{Watcher: "local", Container: "homeassistant", ContainerID: strings.Repeat("c", 64)}},
		Tag:          "2024.10.1",
		Digest:       "sha256:" + strings.Repeat("a", 64),
		LatestTag:    fmt.Sprintf("2024.10.%d", n),
		LatestDigest: "sha256:" + strings.Repeat("b", 64),
		Update:       "patch",
		LastChecked:  t0.Add(time.Duration(n) * time.Minute),
	}
}

func imageKeys(imgs []Image) []string {
	keys := make([]string, len(imgs))
	for i, img := range imgs {
		keys[i] = img.Key
	}
	return keys
}

func TestOpenFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on Windows")
	}
	tests := []struct {
		name   string
		before os.FileMode // 0: the file does not exist yet
		want   os.FileMode
	}{
		{"new file", 0, 0o600},
		{"private file kept", 0o600, 0o600},
		{"world-readable tightened", 0o644, 0o600},
		{"group-readable tightened", 0o640, 0o600},
		{"owner bits kept", 0o755, 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tagwatch.db")
			if tt.before != 0 {
				s, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				if err := os.Chmod(path, tt.before); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	s := openTemp(t)
	start := time.Now()
	s2, err := Open(s.Path(), WithLockTimeout(200*time.Millisecond))
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("second Open took %v with a 200ms timeout", elapsed)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %q is not ErrLocked", err)
	}
	if !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "locked by another tagwatch") {
		t.Errorf("error %q should name the path and say it is locked", err)
	}
	// The first store is unaffected.
	if err := s.PutImages([]Image{testImage("a", 1)}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"missing directory", filepath.Join(dir, "nope", "tagwatch.db")},
		{"not a bbolt file", garbage},
		{"a directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, WithLockTimeout(100*time.Millisecond))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
		})
	}
}

// writeRaw prepares a file with bbolt directly, as an older or newer
// tagwatch would have left it.
func writeRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func setVersion(v string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchemaVersion, []byte(v))
	}
}

// rawVersion reads the stored version without Open, so it can look at a
// file that Open refuses.
func rawVersion(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			v = string(b.Get(keySchemaVersion))
		}
		return nil
	})
	return v
}

func TestMigrations(t *testing.T) {
	current := len(migrations)
	tests := []struct {
		name    string
		prepare func(tx *bolt.Tx) error // nil: no file before Open
		wantErr error                   // nil: Open succeeds at the current version
		errText string
	}{
		{name: "new file"},
		{name: "version 0, empty file", prepare: func(*bolt.Tx) error { return nil }},
		{name: "version 0, meta without version", prepare: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket(bucketMeta)
			return err
		}},
		{name: "version 0 written out", prepare: setVersion("0")},
		{name: "current version", prepare: func(tx *bolt.Tx) error {
			for _, step := range migrations {
				if err := step(tx); err != nil {
					return err
				}
			}
			return setVersion(fmt.Sprint(current))(tx)
		}},
		{name: "version 1", prepare: func(tx *bolt.Tx) error {
			if err := migrateV1(tx); err != nil {
				return err
			}
			return setVersion("1")(tx)
		}},
		{name: "future version", prepare: setVersion(fmt.Sprint(current + 1)), wantErr: ErrNewerSchema, errText: fmt.Sprint("schema version ", current+1)},
		{name: "garbled version", prepare: setVersion(`"one"`), errText: "schema_version"},
		{name: "negative version", prepare: setVersion("-1"), errText: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tagwatch.db")
			if tt.prepare != nil {
				writeRaw(t, path, tt.prepare)
			}
			before := ""
			if tt.prepare != nil {
				before = rawVersion(t, path)
			}
			s, err := Open(path)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %q is not %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q should contain %q and the path", err, tt.errText)
				}
				if after := rawVersion(t, path); after != before {
					t.Errorf("refused file's version changed from %s to %s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(); err != nil || v != current {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, current)
			}
			// Every bucket is usable.
			if err := s.PutImages([]Image{testImage("a", 1)}); err != nil {
				t.Error(err)
			}
			if _, err := s.AppendHistory([]HistoryEntry{{Key: "a"}}); err != nil {
				t.Error(err)
			}
			if err := s.PutRegistry(Registry{Kind: "hub", Name: "public"}); err != nil {
				t.Error(err)
			}
			if err := s.PutRegistryTest(RegistryTest{Kind: "hub", Name: "public"}); err != nil {
				t.Error(err)
			}
			if _, err := s.MarkSent("n", "k", t0); err != nil {
				t.Error(err)
			}
			if err := s.PutNotifier(Notifier{Name: "n"}); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestMigrationSteps adds a step the way a later change would, and checks
// that an existing file is brought up in one transaction.
// Not parallel: it swaps the package's migrations.
func TestMigrationSteps(t *testing.T) {
	orig := migrations
	t.Cleanup(func() { migrations = orig })
	extra := []byte("extra")
	stepErr := errors.New("step 2 failed")

	tests := []struct {
		name        string
		step        func(tx *bolt.Tx) error
		wantVersion int
		wantBucket  bool
		wantErr     error
	}{
		{
			name:        "step runs",
			step:        func(tx *bolt.Tx) error { _, err := tx.CreateBucket(extra); return err },
			wantVersion: len(orig) + 1,
			wantBucket:  true,
		},
		{
			name: "failing step leaves the file as it was",
			step: func(tx *bolt.Tx) error {
				if _, err := tx.CreateBucket(extra); err != nil {
					return err
				}
				return stepErr
			},
			wantVersion: len(orig),
			wantErr:     stepErr,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			migrations = orig
			s := openTemp(t)
			if err := s.PutImages([]Image{testImage("kept", 1)}); err != nil {
				t.Fatal(err)
			}
			s.Close()

			migrations = append(append([]func(*bolt.Tx) error{}, orig...), tt.step)
			s2, err := Open(s.Path())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				s2.Close()
			}
			if tt.wantErr != nil && !strings.Contains(err.Error(), fmt.Sprintf("migrate schema %d to %d", len(orig), len(orig)+1)) {
				t.Errorf("error %q should name the step", err)
			}

			db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.View(func(tx *bolt.Tx) error {
				v, err := readVersion(tx)
				if err != nil || v != tt.wantVersion {
					t.Errorf("version = %d, %v; want %d", v, err, tt.wantVersion)
				}
				if got := tx.Bucket(extra) != nil; got != tt.wantBucket {
					t.Errorf("bucket %s present = %v, want %v", extra, got, tt.wantBucket)
				}
				if tx.Bucket(bucketImages).Get([]byte("kept")) == nil {
					t.Error("existing image lost")
				}
				return nil
			})
		})
	}
}

func TestPutImages(t *testing.T) {
	t1, t2 := t0, t0.Add(24*time.Hour)
	withFirst := func(img Image, at time.Time) Image { img.FirstSeen = at; return img }
	tests := []struct {
		name       string
		puts       [][]Image
		wantErr    bool // of the last put
		wantKeys   []string
		wantFirst  map[string]time.Time // zero: set by the store, must be recent
		wantLatest map[string]string
	}{
		{
			name:      "new record without FirstSeen gets now",
			puts:      [][]Image{{testImage("a", 1)}},
			wantKeys:  []string{"a"},
			wantFirst: map[string]time.Time{"a": {}},
		},
		{
			name:      "new record keeps its FirstSeen",
			puts:      [][]Image{{withFirst(testImage("a", 1), t1)}},
			wantKeys:  []string{"a"},
			wantFirst: map[string]time.Time{"a": t1},
		},
		{
			name:       "later put keeps FirstSeen, replaces the rest",
			puts:       [][]Image{{withFirst(testImage("a", 1), t1)}, {withFirst(testImage("a", 2), t2)}},
			wantKeys:   []string{"a"},
			wantFirst:  map[string]time.Time{"a": t1},
			wantLatest: map[string]string{"a": "2024.10.2"},
		},
		{
			name:      "later put with zero FirstSeen keeps it",
			puts:      [][]Image{{withFirst(testImage("a", 1), t1)}, {testImage("a", 2)}},
			wantKeys:  []string{"a"},
			wantFirst: map[string]time.Time{"a": t1},
		},
		{
			name:       "duplicate key in one batch: last wins, first FirstSeen kept",
			puts:       [][]Image{{withFirst(testImage("a", 1), t1), withFirst(testImage("a", 3), t2)}},
			wantKeys:   []string{"a"},
			wantFirst:  map[string]time.Time{"a": t1},
			wantLatest: map[string]string{"a": "2024.10.3"},
		},
		{
			name:     "sorted by key",
			puts:     [][]Image{{testImage("c", 1), testImage("a", 1)}, {testImage("b", 1)}},
			wantKeys: []string{"a", "b", "c"},
		},
		{
			name:     "empty key fails the whole batch",
			puts:     [][]Image{{testImage("a", 1)}, {testImage("b", 1), testImage("", 1)}},
			wantErr:  true,
			wantKeys: []string{"a"},
		},
		{
			name: "empty batch",
			puts: [][]Image{{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			start := time.Now()
			for i, batch := range tt.puts {
				err := s.PutImages(batch)
				if i == len(tt.puts)-1 && tt.wantErr {
					if err == nil {
						t.Fatal("PutImages succeeded")
					}
					if !strings.Contains(err.Error(), s.Path()) {
						t.Errorf("error %q does not name the file", err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
			}
			imgs, err := s.Images()
			if err != nil {
				t.Fatal(err)
			}
			if got := imageKeys(imgs); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys = %q, want %q", got, tt.wantKeys)
			}
			for key, want := range tt.wantFirst {
				img, ok, err := s.Image(key)
				if err != nil || !ok {
					t.Fatalf("Image(%q) = %v, %v", key, ok, err)
				}
				if want.IsZero() {
					if img.FirstSeen.Before(start.Add(-time.Second)) || img.FirstSeen.After(time.Now()) {
						t.Errorf("%s: FirstSeen = %v, want about now", key, img.FirstSeen)
					}
				} else if !img.FirstSeen.Equal(want) {
					t.Errorf("%s: FirstSeen = %v, want %v", key, img.FirstSeen, want)
				}
			}
			for key, want := range tt.wantLatest {
				img, _, _ := s.Image(key)
				if img.LatestTag != want {
					t.Errorf("%s: LatestTag = %q, want %q", key, img.LatestTag, want)
				}
			}
		})
	}
}

func TestImage(t *testing.T) {
	s := openTemp(t)
	want := testImage("ghcr.io/x/y:1@linux/amd64", 7)
	want.FirstSeen = t0
	if err := s.PutImages([]Image{want}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key    string
		wantOK bool
	}{
		{want.Key, true},
		{"ghcr.io/x/y:2@linux/amd64", false},
		{"", false},
	}
	for _, tt := range tests {
		got, ok, err := s.Image(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		if ok != tt.wantOK {
			t.Errorf("Image(%q) ok = %v, want %v", tt.key, ok, tt.wantOK)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("Image(%q) = %+v, want %+v", tt.key, got, want)
		}
		if !ok && !reflect.DeepEqual(got, Image{}) {
			t.Errorf("Image(%q) not found but returned %+v", tt.key, got)
		}
	}
}

func TestDeleteImages(t *testing.T) {
	tests := []struct {
		name   string
		delete []string
		want   []string
	}{
		{"one", []string{"b"}, []string{"a", "c"}},
		{"several", []string{"a", "c"}, []string{"b"}},
		{"all", []string{"c", "b", "a"}, nil},
		{"unknown keys ignored", []string{"x", "b"}, []string{"a", "c"}},
		{"none", nil, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := s.PutImages([]Image{testImage("a", 1), testImage("b", 1), testImage("c", 1)}); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteImages(tt.delete); err != nil {
				t.Fatal(err)
			}
			imgs, err := s.Images()
			if err != nil {
				t.Fatal(err)
			}
			if got := imageKeys(imgs); !slices.Equal(got, tt.want) {
				t.Errorf("after delete %q: keys = %q, want %q", tt.delete, got, tt.want)
			}
		})
	}
}

func seqs(entries []HistoryEntry) []uint64 {
	out := make([]uint64, len(entries))
	for i, e := range entries {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 { // inclusive, either direction
	var out []uint64
	for i := from; ; {
		out = append(out, i)
		if i == to {
			return out
		}
		if from < to {
			i++
		} else {
			i--
		}
	}
}

func TestHistory(t *testing.T) {
	s := openTemp(t)
	// 25 entries in three appends; the Seq passed in is ignored.
	var n int
	for _, size := range []int{10, 1, 14} {
		batch := make([]HistoryEntry, size)
		for i := range batch {
			n++
			batch[i] = HistoryEntry{Seq: 999, At: t0.Add(time.Duration(n) * time.Hour), Key: fmt.Sprintf("img-%d", n), ToTag: fmt.Sprint(n)}
		}
		got, err := s.AppendHistory(batch)
		if err != nil {
			t.Fatal(err)
		}
		if want := seqRange(uint64(n-size+1), uint64(n)); !reflect.DeepEqual(seqs(got), want) {
			t.Fatalf("AppendHistory seqs = %v, want %v", seqs(got), want)
		}
	}
	if got, err := s.AppendHistory(nil); err != nil || len(got) != 0 {
		t.Errorf("AppendHistory(nil) = %v, %v", got, err)
	}

	tests := []struct {
		limit  int
		before uint64
		want   []uint64
	}{
		{limit: 5, before: 0, want: seqRange(25, 21)},
		{limit: 5, before: 21, want: seqRange(20, 16)},
		{limit: 5, before: 3, want: seqRange(2, 1)},
		{limit: 5, before: 1, want: nil},
		{limit: 3, before: 100, want: seqRange(25, 23)},
		{limit: 0, before: 0, want: seqRange(25, 1)},
		{limit: -1, before: 11, want: seqRange(10, 1)},
		{limit: 100, before: 0, want: seqRange(25, 1)},
	}
	for _, tt := range tests {
		got, err := s.History(tt.limit, tt.before)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), tt.want) {
			t.Errorf("History(%d, %d) = %v, want %v", tt.limit, tt.before, seqs(got), tt.want)
		}
		for _, e := range got {
			if e.Key != fmt.Sprintf("img-%d", e.Seq) {
				t.Errorf("entry %d has key %q", e.Seq, e.Key)
			}
		}
	}

	// Paging from the newest visits every entry once, newest first.
	var all []uint64
	for before := uint64(0); ; {
		page, err := s.History(7, before)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, seqs(page)...)
		before = page[len(page)-1].Seq
	}
	if !reflect.DeepEqual(all, seqRange(25, 1)) {
		t.Errorf("paging visited %v", all)
	}

	// Seq carries on after a restart.
	s = reopen(t, s)
	got, err := s.AppendHistory([]HistoryEntry{{Key: "img-26"}})
	if err != nil || got[0].Seq != 26 {
		t.Errorf("append after reopen: %v, %v; want Seq 26", seqs(got), err)
	}
}

func TestRegistries(t *testing.T) {
	const secret = "s3cr3t-p4ss"
	shpcr := Registry{
		Kind:      "custom",
		Name:      "shpcr",
		Values:    map[string]string{"url": "https://shpcr.io", "login": "seller@example.com"},
		Secrets:   map[string]string{"password": secret},
		UpdatedAt: t0,
	}
	hub := Registry{Kind: "hub", Name: "private", Values: map[string]string{"login": "me"}, Secrets: map[string]string{"token": "dckr_pat_" + secret}, UpdatedAt: t0}
	hubAnon := Registry{Kind: "hub", Name: "public", UpdatedAt: t0}
	ghcr := Registry{Kind: "ghcr", Name: "public", UpdatedAt: t0}
	// "hub" and "hubx" check that kind NUL name keys sort by kind first.
	hubx := Registry{Kind: "hubx", Name: "a", UpdatedAt: t0}

	s := openTemp(t)
	for _, r := range []Registry{hubx, hubAnon, shpcr, hub, ghcr} {
		if err := s.PutRegistry(r); err != nil {
			t.Fatal(err)
		}
	}

	check := func(t *testing.T, s *Store, want []Registry) {
		t.Helper()
		got, err := s.Registries()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Registries() =\n%+v\nwant\n%+v", got, want)
		}
		// What the API would send: never a secret.
		js, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(js, []byte(secret)) || bytes.Contains(js, []byte("ecrets")) {
			t.Errorf("JSON of registries carries a secret: %s", js)
		}
	}
	check(t, s, []Registry{shpcr, ghcr, hub, hubAnon, hubx})

	// Secrets survive a restart.
	s = reopen(t, s)
	check(t, s, []Registry{shpcr, ghcr, hub, hubAnon, hubx})

	// Replacing an instance replaces its secrets too.
	shpcr2 := shpcr
	shpcr2.Secrets = map[string]string{"password": "new-" + secret}
	shpcr2.UpdatedAt = t0.Add(time.Hour)
	if err := s.PutRegistry(shpcr2); err != nil {
		t.Fatal(err)
	}
	check(t, s, []Registry{shpcr2, ghcr, hub, hubAnon, hubx})

	deletes := []struct {
		kind, name string
		want       bool
	}{
		{"hub", "private", true},
		{"hub", "private", false},
		{"hub", "nope", false},
		{"nope", "public", false},
	}
	for _, d := range deletes {
		got, err := s.DeleteRegistry(d.kind, d.name)
		if err != nil || got != d.want {
			t.Errorf("DeleteRegistry(%s, %s) = %v, %v; want %v", d.kind, d.name, got, err, d.want)
		}
	}
	check(t, s, []Registry{shpcr2, ghcr, hubAnon, hubx})

	bad := []Registry{{Kind: "", Name: "x"}, {Kind: "hub", Name: ""}, {Kind: "hu\x00b", Name: "x"}}
	for _, r := range bad {
		if err := s.PutRegistry(r); err == nil {
			t.Errorf("PutRegistry(%q, %q) succeeded", r.Kind, r.Name)
		}
	}
}

func TestRegistryTests(t *testing.T) {
	s := openTemp(t)
	puts := []RegistryTest{
		{Kind: "hub", Name: "public", TestedAt: t0, Error: ""},
		{Kind: "custom", Name: "shpcr", TestedAt: t0, Error: "401 Unauthorized"},
		{Kind: "custom", Name: "shpcr", TestedAt: t0.Add(time.Minute), Error: ""}, // replaces
		{Kind: "ghcr", Name: "public", TestedAt: t0, Error: "timeout"},
	}
	for _, p := range puts {
		if err := s.PutRegistryTest(p); err != nil {
			t.Fatal(err)
		}
	}
	want := []RegistryTest{puts[2], puts[3], puts[0]}
	got, err := s.RegistryTests()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RegistryTests() = %+v, want %+v", got, want)
	}

	// Deleting an instance drops its test, even with no instance stored.
	if _, err := s.DeleteRegistry("custom", "shpcr"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.RegistryTests()
	if want := []RegistryTest{puts[3], puts[0]}; !reflect.DeepEqual(got, want) {
		t.Errorf("after delete: %+v, want %+v", got, want)
	}
}

func TestMarkSent(t *testing.T) {
	s := openTemp(t)
	steps := []struct {
		name          string
		notifier, key string
		reopen        bool
		wantFirst     bool
	}{
		{"first", "mail", "nginx:1.25.4", false, true},
		{"again", "mail", "nginx:1.25.4", false, false},
		{"other notifier", "ntfy", "nginx:1.25.4", false, true},
		{"other key", "mail", "nginx:1.25.5", false, true},
		{"after restart", "mail", "nginx:1.25.4", true, false},
		{"new key after restart", "mail", "redis:7.4", true, true},
		{"key with NUL", "mail", "a\x00b", false, true},
	}
	for _, st := range steps {
		if st.reopen {
			s = reopen(t, s)
		}
		if sent, err := s.Sent(st.notifier, st.key); err != nil || sent == st.wantFirst {
			t.Errorf("%s: Sent before = %v, %v; want %v", st.name, sent, err, !st.wantFirst)
		}
		first, err := s.MarkSent(st.notifier, st.key, t0)
		if err != nil {
			t.Fatal(err)
		}
		if first != st.wantFirst {
			t.Errorf("%s: MarkSent first = %v, want %v", st.name, first, st.wantFirst)
		}
		if sent, err := s.Sent(st.notifier, st.key); err != nil || !sent {
			t.Errorf("%s: Sent after = %v, %v; want true", st.name, sent, err)
		}
	}
	if _, err := s.MarkSent("", "k", t0); err == nil {
		t.Error("MarkSent with an empty notifier succeeded")
	}
}

func TestMarkSentConcurrent(t *testing.T) {
	s := openTemp(t)
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			first, err := s.MarkSent("mail", "nginx:1.25.4", time.Now())
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Errorf("%d callers were told they were first, want 1", n)
	}
}

func TestBackup(t *testing.T) {
	s := openTemp(t)
	imgs := []Image{testImage("a", 1), testImage("b", 2)}
	if err := s.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendHistory([]HistoryEntry{{Key: "a", ToTag: "2"}, {Key: "b", ToTag: "3"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRegistry(Registry{Kind: "custom", Name: "x", Secrets: map[string]string{"password": "p"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRegistryTest(RegistryTest{Kind: "custom", Name: "x", Error: "nope"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkSent("mail", "a", t0); err != nil {
		t.Fatal(err)
	}

	// Writes carry on while the backup runs; the copy is one snapshot.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if err := s.PutImages([]Image{testImage(fmt.Sprintf("during-%02d", i), i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup reported %d bytes, file has %d", n, fi.Size())
	}

	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v, err := b.SchemaVersion(); err != nil || v != len(migrations) {
		t.Errorf("backup SchemaVersion = %d, %v", v, err)
	}
	got, err := b.Images()
	if err != nil {
		t.Fatal(err)
	}
	// The copy has the two images and a prefix of the concurrent writes.
	if len(got) < 2 || !reflect.DeepEqual(imageKeys(got[:2]), []string{"a", "b"}) {
		t.Errorf("backup images = %q", imageKeys(got))
	}
	for i, img := range got[2:] {
		if want := fmt.Sprintf("during-%02d", i); img.Key != want {
			t.Errorf("backup image %d = %q, want %q (not a snapshot?)", i+2, img.Key, want)
		}
	}
	if h, _ := b.History(0, 0); !reflect.DeepEqual(seqs(h), []uint64{2, 1}) {
		t.Errorf("backup history = %v", seqs(h))
	}
	if r, _ := b.Registries(); len(r) != 1 || r[0].Secrets["password"] != "p" {
		t.Errorf("backup registries = %+v", r)
	}
	if rt, _ := b.RegistryTests(); len(rt) != 1 || rt[0].Error != "nope" {
		t.Errorf("backup registry tests = %+v", rt)
	}
	if sent, _ := b.Sent("mail", "a"); !sent {
		t.Error("backup lost a sent mark")
	}
	// The backup is a working store.
	if h, err := b.AppendHistory([]HistoryEntry{{Key: "c"}}); err != nil || h[0].Seq != 3 {
		t.Errorf("append to backup: %v, %v", seqs(h), err)
	}
}

func TestEmptyListsEncodeAsArrays(t *testing.T) {
	s := openTemp(t)
	lists := map[string]func() (any, error){
		"Images":        func() (any, error) { return s.Images() },
		"History":       func() (any, error) { return s.History(10, 0) },
		"Registries":    func() (any, error) { return s.Registries() },
		"RegistryTests": func() (any, error) { return s.RegistryTests() },
	}
	for name, list := range lists {
		v, err := list()
		if err != nil {
			t.Fatal(err)
		}
		if js, _ := json.Marshal(v); string(js) != "[]" {
			t.Errorf("%s of an empty store encodes as %s, want []", name, js)
		}
	}
}

func TestClosed(t *testing.T) {
	s := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Images(); err == nil || !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("Images after Close: %v", err)
	}
	if err := s.PutImages([]Image{testImage("a", 1)}); err == nil {
		t.Error("PutImages after Close succeeded")
	}
}

// TestReadsDuringOpenWrite holds a write transaction open and reads: reads
// must neither wait for it nor see its uncommitted data.
func TestReadsDuringOpenWrite(t *testing.T) {
	s := openTemp(t)
	if err := s.PutImages([]Image{testImage("old", 1)}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // after a failure; a no-op after Commit
	b := tx.Bucket(bucketImages)
	for i := range 2000 {
		if err := put(b, bucketImages, fmt.Appendf(nil, "new-%05d", i), testImage("new", i)); err != nil {
			t.Fatal(err)
		}
	}

	read := make(chan []Image)
	go func() {
		imgs, err := s.Images()
		if err != nil {
			t.Error(err)
		}
		read <- imgs
	}()
	select {
	case imgs := <-read:
		if got := imageKeys(imgs); !reflect.DeepEqual(got, []string{"old"}) {
			t.Errorf("read during write saw %d images, want only the committed one", len(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read blocked by an open write transaction")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := s.Images(); len(imgs) != 2001 {
		t.Errorf("after commit: %d images, want 2001", len(imgs))
	}
}

// TestConcurrentReadersDuringPutImages runs readers against big batches
// (run it with -race): every read is one snapshot, so it sees whole batches.
func TestConcurrentReadersDuringPutImages(t *testing.T) {
	t.Parallel()
	const batches, size = 3, 2000
	s := openTemp(t)
	var writing atomic.Bool
	writing.Store(true)
	var overlapped atomic.Int64

	var readers sync.WaitGroup
	for r := range 3 {
		readers.Go(func() {
			// A pause between reads, as a UI makes: spinning readers on a
			// small machine would only measure CPU contention.
			for ; writing.Load(); time.Sleep(time.Millisecond) {
				during := writing.Load()
				imgs, err := s.Images()
				if err != nil {
					t.Error(err)
					return
				}
				if len(imgs)%size != 0 {
					t.Errorf("reader %d saw %d images: part of a batch", r, len(imgs))
					return
				}
				h, err := s.History(10, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if len(h) > 0 && h[0].Seq > uint64(batches) {
					t.Errorf("history seq %d", h[0].Seq)
				}
				if _, _, err := s.Image("b0-00042"); err != nil {
					t.Error(err)
				}
				if during && writing.Load() {
					overlapped.Add(1)
				}
			}
		})
	}

	start := time.Now()
	for bn := range batches {
		batch := make([]Image, size)
		for i := range batch {
			batch[i] = testImage(fmt.Sprintf("b%d-%05d", bn, i), i)
		}
		if err := s.PutImages(batch); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendHistory([]HistoryEntry{{Key: batch[0].Key}}); err != nil {
			t.Fatal(err)
		}
	}
	writing.Store(false)
	readers.Wait()
	t.Logf("%d batches of %d in %v; %d reads ran while writing", batches, size, time.Since(start), overlapped.Load())
	if imgs, _ := s.Images(); len(imgs) != batches*size {
		t.Errorf("%d images, want %d", len(imgs), batches*size)
	}
}

// BenchmarkPutImages writes one batch of 1,000 images per op, replacing the
// same keys as a steady-state cycle does.
func BenchmarkPutImages(b *testing.B) {
	s := openTemp(b)
	batch := make([]Image, 1000)
	for i := range batch {
		batch[i] = testImage(fmt.Sprintf("ghcr.io/example/image-%04d:latest@linux/amd64", i), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.PutImages(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTenCycles10k is the sizing case from ARCHITECTURE.md: 10 cycles
// of 10,000 images (one batch each) and their history, into a new file.
// It reports the file size after the 10 cycles.
func BenchmarkTenCycles10k(b *testing.B) {
	batch := make([]Image, 10000)
	for i := range batch {
		batch[i] = testImage(fmt.Sprintf("ghcr.io/example/image-%05d:latest@linux/amd64", i), i)
	}
	hist := make([]HistoryEntry, 100) // 1% of images update per cycle
	for i := range hist {
		hist[i] = HistoryEntry{At: t0, Key: batch[i].Key, Reference: batch[i].Reference, Registry: "ghcr.public",
			Update: "patch", FromTag: "1.2.3", ToTag: "1.2.4", FromDigest: batch[i].Digest, ToDigest: batch[i].LatestDigest}
	}
	var size int64
	for b.Loop() {
		s, err := Open(filepath.Join(b.TempDir(), "tagwatch.db"))
		if err != nil {
			b.Fatal(err)
		}
		for cycle := range 10 {
			for i := range batch {
				batch[i].LastChecked = t0.Add(time.Duration(cycle) * time.Hour)
			}
			if err := s.PutImages(batch); err != nil {
				b.Fatal(err)
			}
			if _, err := s.AppendHistory(hist); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		fi, err := os.Stat(s.Path())
		if err != nil {
			b.Fatal(err)
		}
		size = fi.Size()
	}
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}

// TestMigrateV2 opens a file left at schema version 1, with data in every
// bucket, and checks that it gains the notifiers bucket and keeps the rest.
func TestMigrateV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	orig := migrations
	migrations = orig[:1]
	s, err := Open(path)
	if err != nil {
		migrations = orig
		t.Fatal(err)
	}
	reg := Registry{Kind: "hub", Name: "private", Values: map[string]string{"login": "me"}, Secrets: map[string]string{"password": "pw-v1"}, UpdatedAt: t0}
	if err := s.PutImages([]Image{testImage("kept", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendHistory([]HistoryEntry{{Key: "kept", Reference: "r"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRegistry(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkSent("phone", "r 2 sha", t0); err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion()
	s.Close()
	migrations = orig
	if err != nil || v != 1 {
		t.Fatalf("version-1 file: version %d, %v", v, err)
	}
	if rawVersion(t, path) != "1" {
		t.Fatalf("raw version %s", rawVersion(t, path))
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(); err != nil || v != len(migrations) {
		t.Errorf("migrated version %d, %v; want %d", v, err, len(migrations))
	}
	if _, ok, err := s.Image("kept"); !ok || err != nil {
		t.Errorf("image lost: %v %v", ok, err)
	}
	if h, err := s.History(10, 0); err != nil || len(h) != 1 {
		t.Errorf("history %+v, %v", h, err)
	}
	if regs, err := s.Registries(); err != nil || !reflect.DeepEqual(regs, []Registry{reg}) {
		t.Errorf("registries %+v, %v", regs, err)
	}
	if sent, err := s.Sent("phone", "r 2 sha"); !sent || err != nil {
		t.Errorf("sent mark lost: %v %v", sent, err)
	}
	if ns, err := s.Notifiers(); err != nil || len(ns) != 0 {
		t.Errorf("notifiers %+v, %v", ns, err)
	}
	if err := s.PutNotifier(Notifier{Name: "phone", Secrets: map[string]string{"url": "ntfy://x/y"}}); err != nil {
		t.Error(err)
	}
}

func TestNotifiers(t *testing.T) {
	const token = "Tok3nInThePath0123456789"
	hook := Notifier{Name: "hook", Settings: map[string]string{"type": "webhook", "threshold": "minor"},
		Secrets: map[string]string{"url": "https://hooks.example/" + token}, UpdatedAt: t0}
	phone := Notifier{Name: "phone", Settings: map[string]string{"batch": "true"},
		Secrets: map[string]string{"url": "ntfy://user:" + token + "@ntfy.example/topic"}, UpdatedAt: t0}
	s := openTemp(t)
	for _, n := range []Notifier{phone, hook} {
		if err := s.PutNotifier(n); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, s *Store, want []Notifier) {
		t.Helper()
		got, err := s.Notifiers()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Notifiers() =\n%+v\nwant\n%+v", got, want)
		}
		js, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(js, []byte(token)) || bytes.Contains(js, []byte("ecrets")) || bytes.Contains(js, []byte("url")) {
			t.Errorf("JSON of notifiers carries the url: %s", js)
		}
	}
	check(t, s, []Notifier{hook, phone})
	s = reopen(t, s)
	check(t, s, []Notifier{hook, phone})

	hook2 := hook
	hook2.Secrets = map[string]string{"url": "https://hooks.example/new-" + token}
	hook2.Settings = map[string]string{"type": "webhook"}
	hook2.UpdatedAt = t0.Add(time.Hour)
	if err := s.PutNotifier(hook2); err != nil {
		t.Fatal(err)
	}
	check(t, s, []Notifier{hook2, phone})

	for _, d := range []struct {
		name string
		want bool
	}{{"hook", true}, {"hook", false}, {"nope", false}} {
		if got, err := s.DeleteNotifier(d.name); err != nil || got != d.want {
			t.Errorf("DeleteNotifier(%s) = %v, %v; want %v", d.name, got, err, d.want)
		}
	}
	check(t, s, []Notifier{phone})
	if err := s.PutNotifier(Notifier{}); err == nil {
		t.Error("PutNotifier without a name succeeded")
	}
}
