// Package store keeps tagwatch's state in one bbolt file: watched images and
// their last result, the history of detected updates, registries saved from
// the UI (with their secrets), their last connection test, and which updates
// each notifier has already announced.
//
// The daemon is the only process that opens the file (bbolt takes an
// exclusive lock on it). Reads run in their own read transactions, so the UI
// can read while a check cycle writes; each write method is one transaction,
// so a crash leaves either all of a call's records or none of them.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned (wrapped) by Open when another process holds the
// file: bbolt allows one writer process per file.
var ErrLocked = errors.New("store locked by another tagwatch")

// DefaultLockTimeout is how long Open waits for the file lock. It is long
// enough for a restarting daemon to let go of the file, short enough that a
// second daemon fails visibly instead of hanging.
const DefaultLockTimeout = 3 * time.Second

// initialMmapSize is mapped up front so that the file can grow to this size
// without a remap. A remap has to wait for every open read transaction, so
// without it a UI read could delay a cycle's commit. The mapping is address
// space only, not memory; 10 cycles of 10,000 images stay well under it.
const initialMmapSize = 128 << 20

// Bucket names, created by the migrations (migrate.go).
var (
	bucketMeta          = []byte("meta")
	bucketImages        = []byte("images")
	bucketHistory       = []byte("history")
	bucketRegistries    = []byte("registries")
	bucketRegistryTests = []byte("registry_tests")
	bucketSent          = []byte("sent")
	bucketNotifiers     = []byte("notifiers") // schema 2
)

// Store is an open tagwatch state file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

type options struct {
	lockTimeout time.Duration
}

// Option changes how Open opens the file.
type Option func(*options)

// WithLockTimeout sets how long Open waits for another process to release
// the file before it fails with ErrLocked. Zero or less means the default.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// Open opens the store file at path, creating it with mode 0600 if it does
// not exist, and brings its schema up to date.
//
// The file holds registry secrets, so an existing file that group or others
// may read is tightened to owner-only before it is opened (Open fails if that
// chmod fails rather than run with the secrets exposed).
//
// A file with a newer schema than this build knows fails with
// ErrNewerSchema: it is never downgraded. A file locked by another process
// fails with ErrLocked after the lock timeout.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := ensurePrivate(path); err != nil {
		return nil, err
	}
	bo := &bolt.Options{Timeout: o.lockTimeout}
	// On Windows bbolt grows the file itself to the initial mapping size;
	// elsewhere the file only grows with its data.
	if runtime.GOOS != "windows" {
		bo.InitialMmapSize = initialMmapSize
	}
	db, err := bolt.Open(path, 0o600, bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (waited %v)", path, ErrLocked, o.lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := migrate(db, path); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// ensurePrivate makes an existing store file owner-only. A missing file is
// fine: bbolt creates it with 0600.
func ensurePrivate(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open store %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	perm := fi.Mode().Perm()
	// Windows has no group/other bits to speak of; its ACLs are the admin's.
	if runtime.GOOS == "windows" || perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, perm&0o700); err != nil {
		return fmt.Errorf("open store %s: file is open to group or others (mode %v) and holds secrets; making it private failed: %w", path, perm, err)
	}
	return nil
}

// Close releases the file. Reads and writes after Close fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// PutImages writes a cycle's results in one transaction: after a crash either
// the whole batch is there or none of it. A record's FirstSeen is kept from
// the stored record when there is one; a new record with a zero FirstSeen
// gets the current time.
func (s *Store) PutImages(imgs []Image) error {
	if len(imgs) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return putImages(tx, imgs, time.Now().UTC()) })
	return s.wrap(err, "put %d images", len(imgs))
}

func putImages(tx *bolt.Tx, imgs []Image, now time.Time) error {
	b, err := bucket(tx, bucketImages)
	if err != nil {
		return err
	}
	// A cycle rewrites every record, and bbolt splits every page it
	// writes at FillPercent: at the default 0.5 an image record (about
	// 750 bytes) fits two to a 4 KiB page. 0.9 fits four, which halves
	// the file; a new image landing on a full page just splits it.
	b.FillPercent = 0.9
	for _, img := range imgs {
		if img.Key == "" {
			return fmt.Errorf("image %q has an empty key", img.Reference)
		}
		key := []byte(img.Key)
		if raw := b.Get(key); raw != nil {
			// Only FirstSeen is needed from the old record; decoding
			// just it saves a cycle of 10,000 images much allocation.
			var old struct {
				FirstSeen time.Time `json:"firstSeen"`
			}
			if err := decode(raw, &old, bucketImages, key); err != nil {
				return err
			}
			if !old.FirstSeen.IsZero() {
				img.FirstSeen = old.FirstSeen
			}
		}
		if img.FirstSeen.IsZero() {
			img.FirstSeen = now
		}
		if err := put(b, bucketImages, key, img); err != nil {
			return err
		}
	}
	return nil
}

// Images returns every watched image, sorted by Key (byte order). Like
// every list here it is never nil, so that an empty one encodes as [].
func (s *Store) Images() ([]Image, error) {
	imgs := []Image{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketImages)
		if err != nil {
			return err
		}
		// bbolt keeps keys sorted bytewise, so the cursor order is Key order.
		return b.ForEach(func(k, v []byte) error {
			var img Image
			if err := decode(v, &img, bucketImages, k); err != nil {
				return err
			}
			imgs = append(imgs, img)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read images")
	}
	return imgs, nil
}

// Image returns the image stored under key; ok is false if there is none.
func (s *Store) Image(key string) (img Image, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketImages)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		ok = true
		return decode(raw, &img, bucketImages, []byte(key))
	})
	if err != nil {
		return Image{}, false, s.wrap(err, "read image %q", key)
	}
	return img, ok, nil
}

// DeleteImages removes images that no source reports any more, in one
// transaction. Keys that are not stored are ignored.
func (s *Store) DeleteImages(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketImages)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return fmt.Errorf("bucket %s: delete %q: %w", bucketImages, k, err)
			}
		}
		return nil
	})
	return s.wrap(err, "delete %d images", len(keys))
}

// AppendHistory stores entries in one transaction, giving each the next Seq
// of the history bucket (whatever Seq they came with), and returns them with
// their Seq. Seqs only grow: a rolled-back or crashed append uses none.
func (s *Store) AppendHistory(entries []HistoryEntry) ([]HistoryEntry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	var out []HistoryEntry
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		out, err = appendHistory(tx, entries)
		return err
	})
	if err != nil {
		return nil, s.wrap(err, "append %d history entries", len(entries))
	}
	return out, nil
}

func appendHistory(tx *bolt.Tx, entries []HistoryEntry) ([]HistoryEntry, error) {
	out := make([]HistoryEntry, len(entries))
	b, err := bucket(tx, bucketHistory)
	if err != nil {
		return nil, err
	}
	// Keys only ever grow, so pages never take an insert in the
	// middle: fill them completely.
	b.FillPercent = 1.0
	for i, e := range entries {
		seq, err := b.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("bucket %s: next sequence: %w", bucketHistory, err)
		}
		e.Seq = seq
		if err := put(b, bucketHistory, seqKey(seq), e); err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// History returns up to limit entries, newest first, whose Seq is below
// before; before 0 starts at the newest. To page, pass the last returned
// entry's Seq as the next before. A limit of 0 or less means no limit.
func (s *Store) History(limit int, before uint64) ([]HistoryEntry, error) {
	out := []HistoryEntry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketHistory)
		if err != nil {
			return err
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(seqKey(before)); k == nil {
			// Everything stored is below before.
			k, v = c.Last()
		} else {
			// Seek lands on the first key >= before; the page starts one below.
			k, v = c.Prev()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var e HistoryEntry
			if err := decode(v, &e, bucketHistory, k); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "read history")
	}
	return out, nil
}

// registryRecord is a Registry as stored. Registry.Secrets is json:"-" so
// that no API response can carry a secret by mistake, which also means the
// store cannot encode a Registry directly without losing them. The fields
// mirror Registry's so that the two convert into each other: a field added
// to Registry stops the build here until it is added to the record too.
type registryRecord struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	Values    map[string]string `json:"values,omitempty"`
	Secrets   map[string]string `json:"secrets,omitempty"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// PutRegistry saves (or replaces) a registry instance with its secrets.
func (s *Store) PutRegistry(r Registry) error {
	key, err := pairKey(r.Kind, r.Name)
	if err != nil {
		return s.wrap(err, "put registry")
	}
	rec := registryRecord(r)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketRegistries)
		if err != nil {
			return err
		}
		return put(b, bucketRegistries, key, rec)
	})
	return s.wrap(err, "put registry %s.%s", r.Kind, r.Name)
}

// DeleteRegistry removes a registry instance and its last test result;
// existed reports whether the instance was stored.
func (s *Store) DeleteRegistry(kind, name string) (existed bool, err error) {
	key, err := pairKey(kind, name)
	if err != nil {
		return false, s.wrap(err, "delete registry")
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		regs, err := bucket(tx, bucketRegistries)
		if err != nil {
			return err
		}
		tests, err := bucket(tx, bucketRegistryTests)
		if err != nil {
			return err
		}
		existed = regs.Get(key) != nil
		if err := regs.Delete(key); err != nil {
			return fmt.Errorf("bucket %s: delete %q: %w", bucketRegistries, key, err)
		}
		// A test result outliving its instance would show on a new
		// instance of the same name as if it had been tested.
		if err := tests.Delete(key); err != nil {
			return fmt.Errorf("bucket %s: delete %q: %w", bucketRegistryTests, key, err)
		}
		return nil
	})
	if err != nil {
		return false, s.wrap(err, "delete registry %s.%s", kind, name)
	}
	return existed, nil
}

// Registries returns the saved instances sorted by kind, then name,
// including their Secrets: the daemon needs them to connect. Code that
// answers the API must encode them as JSON, which drops Secrets.
func (s *Store) Registries() ([]Registry, error) {
	out := []Registry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketRegistries)
		if err != nil {
			return err
		}
		// Keys are kind NUL name, so bytewise order is (kind, name) order.
		return b.ForEach(func(k, v []byte) error {
			var rec registryRecord
			if err := decode(v, &rec, bucketRegistries, k); err != nil {
				return err
			}
			out = append(out, Registry(rec))
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read registries")
	}
	return out, nil
}

// PutRegistryTest saves the last connection test of an instance.
func (s *Store) PutRegistryTest(t RegistryTest) error {
	key, err := pairKey(t.Kind, t.Name)
	if err != nil {
		return s.wrap(err, "put registry test")
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketRegistryTests)
		if err != nil {
			return err
		}
		return put(b, bucketRegistryTests, key, t)
	})
	return s.wrap(err, "put registry test %s.%s", t.Kind, t.Name)
}

// RegistryTests returns the last test of each instance, sorted by kind, name.
func (s *Store) RegistryTests() ([]RegistryTest, error) {
	out := []RegistryTest{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketRegistryTests)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var t RegistryTest
			if err := decode(v, &t, bucketRegistryTests, k); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read registry tests")
	}
	return out, nil
}

// sentRecord is the value of a sent mark: when it was first announced.
type sentRecord struct {
	At time.Time `json:"at"`
}

// MarkSent records that notifier announced key. first is true only for the
// call that made the mark, so a caller that sends when first is true
// announces each update once, across restarts and concurrent callers. A later
// call keeps the original time.
func (s *Store) MarkSent(notifier, key string, at time.Time) (first bool, err error) {
	k, err := pairKey(notifier, key)
	if err != nil {
		return false, s.wrap(err, "mark sent")
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSent)
		if err != nil {
			return err
		}
		if b.Get(k) != nil {
			return nil
		}
		first = true
		return put(b, bucketSent, k, sentRecord{At: at})
	})
	if err != nil {
		return false, s.wrap(err, "mark sent %s %q", notifier, key)
	}
	return first, nil
}

// Sent reports whether notifier has marked key as sent.
func (s *Store) Sent(notifier, key string) (bool, error) {
	k, err := pairKey(notifier, key)
	if err != nil {
		return false, s.wrap(err, "read sent")
	}
	var sent bool
	err = s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketSent)
		if err != nil {
			return err
		}
		sent = b.Get(k) != nil
		return nil
	})
	if err != nil {
		return false, s.wrap(err, "read sent %s %q", notifier, key)
	}
	return sent, nil
}

// Backup writes a consistent copy of the whole file to w and returns the
// bytes written. It runs in a read transaction, so the daemon keeps writing
// meanwhile; the copy opens with Open like the original.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, s.wrap(err, "backup")
	}
	return n, nil
}

// SchemaVersion is the file's schema version (see migrate.go).
func (s *Store) SchemaVersion() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = readVersion(tx)
		return err
	})
	if err != nil {
		return 0, s.wrap(err, "read schema version")
	}
	return v, nil
}

// wrap names the store file and the operation in err; nil stays nil.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store %s: %s: %w", s.path, fmt.Sprintf(format, args...), err)
}

// bucket returns a top-level bucket. The migrations create them all, so a
// missing one means the file was changed behind tagwatch's back.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s is missing (file damaged or not a tagwatch store?)", name)
	}
	return b, nil
}

// put stores v JSON-encoded; name is b's name, for the error.
func put(b *bolt.Bucket, name, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bucket %s: encode %q: %w", name, key, err)
	}
	if err := b.Put(key, raw); err != nil {
		return fmt.Errorf("bucket %s: put %q: %w", name, key, err)
	}
	return nil
}

func decode(raw []byte, v any, bucket, key []byte) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("bucket %s: decode %q: %w", bucket, key, err)
	}
	return nil
}

// seqKey encodes a history Seq big-endian, so that byte order is Seq order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// pairKey joins two names with a NUL. Keys sort by the first name, then the
// second, because NUL sorts before every other byte; the first must
// therefore not contain one.
func pairKey(first, second string) ([]byte, error) {
	if first == "" || second == "" {
		return nil, fmt.Errorf("empty name in (%q, %q)", first, second)
	}
	if strings.IndexByte(first, 0) >= 0 {
		return nil, fmt.Errorf("name %q contains a NUL byte", first)
	}
	return []byte(first + "\x00" + second), nil
}
