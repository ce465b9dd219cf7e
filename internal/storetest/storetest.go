// Package storetest opens real bbolt stores for tests, and damages them.
package storetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tagwatch/tagwatch/store"
)

// Open opens a fresh store file in the test's temporary directory and
// closes it when the test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "tagwatch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Fill puts n images into st as a check leaves them
// (ghcr.io/acme/appNNN:1.0.0 on linux/amd64, a minor update to 1.1.0
// waiting) and the history entry of each one's update, with opts (an
// outbox route). A few hundred make both buckets span several pages, which
// DamagePage and PointPastEnd need.
func Fill(t testing.TB, st *store.Store, n int, opts ...store.HistoryOption) {
	t.Helper()
	now := time.Now().UTC()
	var imgs []store.Image
	var hist []store.HistoryEntry
	for i := range n {
		ref := fmt.Sprintf("ghcr.io/acme/app%03d:1.0.0", i)
		imgs = append(imgs, store.Image{Key: ref + " linux/amd64", Image: ref, Reference: ref, Registry: "ghcr.public",
			Platform: "linux/amd64", Where: []store.Location{{Watcher: "config"}}, Tag: "1.0.0", LatestTag: "1.1.0", Update: "minor",
			Digest: "sha256:" + strings.Repeat("a", 64), LatestDigest: "sha256:" + strings.Repeat("b", 64), LastChecked: now})
		hist = append(hist, store.HistoryEntry{At: now, Key: ref + " linux/amd64", Reference: ref, Registry: "ghcr.public",
			Update: "minor", FromTag: "1.0.0", ToTag: "1.1.0"})
	}
	if err := st.PutImages(imgs); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendHistory(hist, opts...); err != nil {
		t.Fatal(err)
	}
}

// Garbage is what DamagePage writes over a page.
var Garbage = []byte("garbage!")

// rootPage returns the page size and the root page of a top-level bucket
// of a closed bbolt file. The bucket must be big enough to have a page of
// its own (bbolt keeps small buckets inline in their parent's page).
func rootPage(t testing.TB, path, bucket string) (pageSize int, id uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pageSize = db.Info().PageSize
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			t.Fatalf("%s has no bucket %s", path, bucket)
		}
		id = uint64(b.RootPage())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if id == 0 {
		t.Fatalf("bucket %s of %s is inline: put more in it", bucket, path)
	}
	return pageSize, id
}

// DamagePage overwrites the root page of a bucket of the closed bbolt file
// at path with garbage, as a disk error or a bad copy would, and returns
// the page's id.
func DamagePage(t testing.TB, path, bucket string) uint64 {
	t.Helper()
	size, id := rootPage(t, path, bucket)
	writeAt(t, path, bytes.Repeat(Garbage, size/len(Garbage)), int64(id)*int64(size))
	return id
}

// DamageFreelist overwrites the page that lists the free pages of the
// closed bbolt file at path with garbage (it is rewritten by every commit,
// so a torn write lands there first) and returns its id.
func DamageFreelist(t testing.TB, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	size := db.Info().PageSize
	var id int
	err = db.View(func(tx *bolt.Tx) error {
		for i := 2; ; i++ {
			p, err := tx.Page(i)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "freelist" {
				id = i
				return nil
			}
		}
	})
	db.Close()
	if err != nil || id == 0 {
		t.Fatalf("no freelist page in %s: %v", path, err)
	}
	writeAt(t, path, bytes.Repeat(Garbage, size/len(Garbage)), int64(id)*int64(size))
	return uint64(id)
}

// PointPastEnd makes the first child of a bucket's root page, which must be
// a branch page, a page id past the end of the file (but inside what bbolt
// maps): reading it faults rather than panics.
func PointPastEnd(t testing.TB, path, bucket string) {
	t.Helper()
	size, id := rootPage(t, path, bucket)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, size)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(page, int64(id)*int64(size))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A page header is id (8 bytes), flags (2), count (2), overflow (4);
	// a branch element is pos (4), ksize (4), pgid (8).
	const branchPage = 0x01
	if flags := binary.LittleEndian.Uint16(page[8:10]); flags != branchPage {
		t.Fatalf("bucket %s's root page %d is not a branch page (flags %#x): put more in it", bucket, id, flags)
	}
	past := uint64(fi.Size())/uint64(size) + 16
	writeAt(t, path, binary.LittleEndian.AppendUint64(nil, past), int64(id)*int64(size)+16+8)
}

func writeAt(t testing.TB, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Update writes to the bbolt file at path (created if missing), which no
// store holds open, with bbolt directly: as another program, an older or
// newer tagwatch, or a damaged disk would have left it.
func Update(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(fn)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// Copy copies the file at src to a new file in the test's temporary
// directory and returns its path.
func Copy(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
