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
	"sync/atomic"
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
	bucketWatchers      = []byte("watchers")  // schema 3
	bucketOutbox        = []byte("outbox")    // schema 5
)

// allBuckets are every top-level bucket of the current schema.
var allBuckets = [][]byte{bucketMeta, bucketImages, bucketHistory, bucketRegistries, bucketRegistryTests, bucketSent, bucketNotifiers, bucketWatchers, bucketOutbox}

// Store is an open tagwatch state file. Its methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	keys     *keyring
	readOnly bool
	// damaged is set once a transaction met a damaged page: later writes
	// are refused, so that a damaged file is not written on.
	damaged atomic.Bool
}

type options struct {
	lockTimeout time.Duration
	key         *Key
	keyFrom     string
	extra       []Key
	readOnly    bool
	noVerify    bool
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

// WithKey encrypts and decrypts the secrets with k instead of the key file
// beside the store (KeyFile). from says where k came from, for messages:
// "environment TAGWATCH_SECRET_KEY".
func WithKey(k Key, from string) Option {
	return func(o *options) {
		o.key = &k
		o.keyFrom = from
	}
}

// withExtraKey also decrypts secrets encrypted with k; it never encrypts
// with it. RotateKey uses it to resume an interrupted rotation.
func withExtraKey(k Key) Option {
	return func(o *options) { o.extra = append(o.extra, k) }
}

// ReadOnly opens an existing file for reading only: nothing is migrated,
// scrubbed or written, no key file is read or made (secrets read as
// Unreadable unless WithKey gives the key), and the file lock is shared, so several readers may hold it at
// once (but not while a daemon holds it for writing). A file of a newer
// schema opens, for Backup and Check; its records may not decode.
func ReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// WithoutVerify skips the walk over every page that Open makes, for Check,
// which makes its own and reports every problem rather than the first.
func WithoutVerify() Option {
	return func(o *options) { o.noVerify = true }
}

// Open opens the store file at path, creating it with mode 0600 if it does
// not exist, checks that it is a tagwatch store whose every page reads, and
// brings its schema up to date.
//
// Secrets are encrypted with the key WithKey gives, else with the key in the
// file beside the store (KeyFile), which Open creates (mode 0600) on first
// use. A store whose secrets were encrypted with another key still opens:
// those secrets read as Unreadable, and CheckSecrets says what to do.
//
// The file holds registry secrets, so an existing file (store or key) that
// group or others may read is tightened to owner-only before it is opened
// (Open fails if that chmod fails rather than run with the secrets exposed).
//
// A file that cannot be used fails with an *OpenError that says what to do:
// ErrLocked after the lock timeout when another process holds it,
// ErrForeign for a file that is not a tagwatch store, ErrDamaged for one
// whose pages or schema version do not read, ErrNewerSchema for one written
// by a newer tagwatch (it is never downgraded).
func Open(path string, opts ...Option) (*Store, error) {
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.readOnly && !o.noVerify && hasData(path) {
		// Verify under a read-only open first. Opening for writing, bbolt
		// reads the freelist page, and a damaged one panics in the middle
		// of bolt.Open, past where it would close the file: its lock
		// would stay held by this process. The read-only pass neither
		// loads nor makes the key file.
		ro, err := Open(path, ReadOnly(), WithLockTimeout(o.lockTimeout))
		if err != nil {
			return nil, err
		}
		if err := ro.Close(); err != nil {
			return nil, err
		}
		o.noVerify = true
	}
	db, bo, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, readOnly: o.readOnly}
	// Before the key: a file that is not tagwatch's gets no key file
	// beside it.
	if err := s.inspect(o); err != nil {
		db.Close()
		return nil, err
	}
	if s.keys, err = loadKeys(path, o); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if o.readOnly {
		return s, nil
	}
	if err := guard(path, func() error { return migrate(db, path, s.keys) }); err != nil {
		db.Close()
		return nil, err
	}
	err = guard(path, func() error {
		var err error
		s.db, err = scrub(db, path, bo)
		return err
	})
	if err != nil {
		// scrub closes db when it fails, but not when a damaged page
		// stopped it; closing twice is harmless.
		db.Close()
		return nil, err
	}
	return s, nil
}

// openDB opens the bbolt file, owner-only unless read-only (which changes
// nothing, not even a mode).
func openDB(path string, o options) (*bolt.DB, *bolt.Options, error) {
	if !o.readOnly {
		if err := makePrivate(path, "open store"); err != nil {
			return nil, nil, err
		}
	}
	bo := &bolt.Options{Timeout: o.lockTimeout, ReadOnly: o.readOnly}
	// On Windows bbolt grows the file itself to the initial mapping size;
	// elsewhere the file only grows with its data.
	if runtime.GOOS != "windows" && !o.readOnly {
		bo.InitialMmapSize = initialMmapSize
	}
	var db *bolt.DB
	err := guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bo)
		return err
	})
	if err != nil {
		return nil, nil, openError(path, err, o.lockTimeout)
	}
	return db, bo, nil
}

// openError says what bbolt's error on opening path means for an admin.
func openError(path string, err error, lockTimeout time.Duration) error {
	var oe *OpenError
	switch {
	case errors.As(err, &oe):
		return err
	case errors.Is(err, berrors.ErrTimeout):
		return &OpenError{Path: path, Err: ErrLocked, Detail: fmt.Sprintf("waited %v for its lock", lockTimeout)}
	case errors.Is(err, berrors.ErrInvalid):
		return &OpenError{Path: path, Err: ErrForeign, Detail: "not a bbolt database file"}
	case errors.Is(err, berrors.ErrVersionMismatch):
		return &OpenError{Path: path, Err: ErrForeign, Detail: "a bbolt file of a format version this bbolt does not read"}
	case strings.Contains(err.Error(), "file size too small"):
		// bbolt has no sentinel for a file shorter than its two meta pages.
		return &OpenError{Path: path, Err: ErrForeign, Detail: "too short to be a bbolt database file"}
	case errors.Is(err, berrors.ErrChecksum):
		return &OpenError{Path: path, Err: ErrDamaged, Detail: "both of its meta pages fail their checksum"}
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// inspect refuses a file that is not tagwatch's, or not of a schema this
// build reads, and walks every page unless told not to.
func (s *Store) inspect(o options) error {
	err := s.view(func(tx *bolt.Tx) error {
		v, err := readVersion(tx)
		if err != nil {
			return &OpenError{Path: s.path, Err: ErrDamaged, Detail: err.Error()}
		}
		if v == 0 {
			// No version: new, or written before versions existed; either
			// way only tagwatch's buckets may be there.
			var foreign []byte
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				if foreign == nil && !knownBucket(name) {
					foreign = name
				}
				return nil
			})
			if foreign != nil {
				return &OpenError{Path: s.path, Err: ErrForeign, Detail: fmt.Sprintf("a bbolt file with a bucket %q, which tagwatch does not use", foreign)}
			}
		}
		if want := len(migrations); v > want && !o.readOnly {
			return &OpenError{Path: s.path, Err: ErrNewerSchema, Detail: fmt.Sprintf("schema version %d, this tagwatch knows up to %d", v, want)}
		}
		if o.noVerify {
			return nil
		}
		// Both cost about 20 ms on a 32 MiB file (BenchmarkOpen): the
		// walk reads every page of every bucket; bbolt's check then finds
		// what the walk cannot (a freelist that hands out live pages). It
		// follows page ids unguarded, so only over pages the walk read.
		if err := walk(tx, nil); err != nil {
			return err
		}
		var problems []string
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			more := ""
			if len(problems) > 1 {
				more = fmt.Sprintf(" (and %d more problems)", len(problems)-1)
			}
			return &OpenError{Path: s.path, Err: ErrDamaged, Detail: oneLine(problems[0]) + more}
		}
		return nil
	})
	var oe *OpenError
	if errors.As(err, &oe) {
		return oe
	}
	if err != nil {
		return &OpenError{Path: s.path, Err: ErrDamaged, Detail: oneLine(err.Error())}
	}
	return nil
}

// view runs fn in a read transaction; a damaged page comes back as an error.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	err := guard(s.path, func() error { return s.db.View(fn) })
	s.noteDamage(err)
	return err
}

// update runs fn in a write transaction; a damaged page comes back as an
// error, and once one was met no write is tried again.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	if s.damaged.Load() {
		return &OpenError{Path: s.path, Err: ErrDamaged, Detail: "a damaged page was found earlier; writes are refused"}
	}
	err := guard(s.path, func() error { return s.db.Update(fn) })
	s.noteDamage(err)
	return err
}

func (s *Store) noteDamage(err error) {
	var oe *OpenError
	if errors.As(err, &oe) && oe.Err == ErrDamaged {
		s.damaged.Store(true)
	}
}

// hasData reports whether path is a file with something in it: bbolt
// makes an empty or missing file a new store.
func hasData(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// loadKeys picks the key: WithKey's, else the key file beside the store,
// made on first use. A key file left by an interrupted RotateKey opens the
// secrets it already encrypted. A read-only store without WithKey neither
// reads nor makes the key file (backup and check need no secret, and must
// leave no key behind): it gets a key of its own that is never written, so
// its secrets read as Unreadable.
func loadKeys(path string, o options) (*keyring, error) {
	if o.key != nil {
		return newKeyring(*o.key, o.keyFrom, o.extra...)
	}
	if o.readOnly {
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		return newKeyring(k, "no key (opened read-only)", o.extra...)
	}
	file := KeyFile(path)
	k, _, err := loadOrCreateKeyFile(file)
	if err != nil {
		return nil, err
	}
	extra := o.extra
	if pk, err := ReadKeyFile(pendingKeyFile(path)); err == nil {
		extra = append(extra, pk)
	}
	return newKeyring(k, file, extra...)
}

// makePrivate makes an existing file that holds secrets owner-only. A
// missing file is fine: it is created with 0600. what starts errors.
func makePrivate(path, what string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file (%v)", what, path, fi.Mode().Type())
	}
	perm := fi.Mode().Perm()
	// Windows has no group/other bits to speak of; its ACLs are the admin's.
	if runtime.GOOS == "windows" || perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, perm&0o700); err != nil {
		return fmt.Errorf("%s %s: file is open to group or others (mode %v) and holds secrets; making it private failed: %w", what, path, perm, err)
	}
	return nil
}

// KeyID is the id of the key the store encrypts secrets with (Key.ID), and
// KeyFrom where that key came from: for the log, never the key itself.
func (s *Store) KeyID() string   { return s.keys.id() }
func (s *Store) KeyFrom() string { return s.keys.from }

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
// gets the current time. A baseline accepted while the record was being
// checked is kept too (keepAccepted).
func (s *Store) PutImages(imgs []Image) error {
	if len(imgs) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error { return putImages(tx, imgs, time.Now().UTC()) })
	return s.wrap(err, "put %d images", len(imgs))
}

// putImages writes images within tx (PutImages, PutResults).
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
				FirstSeen  time.Time `json:"firstSeen"`
				Baseline   string    `json:"baseline"`
				AcceptedAt time.Time `json:"acceptedAt"`
			}
			if err := decode(raw, &old, bucketImages, key); err != nil {
				return err
			}
			if !old.FirstSeen.IsZero() {
				img.FirstSeen = old.FirstSeen
			}
			keepAccepted(&img, old.Baseline, old.AcceptedAt)
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
	err := s.view(func(tx *bolt.Tx) error {
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
	err = s.view(func(tx *bolt.Tx) error {
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
	err := s.update(func(tx *bolt.Tx) error {
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

// PutWatchers stores how the watchers' listings went, replacing each one's
// earlier state, in one transaction.
func (s *Store) PutWatchers(states []WatcherState) error {
	if len(states) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketWatchers)
		if err != nil {
			return err
		}
		for _, w := range states {
			if w.Name == "" {
				return errors.New("a watcher state has an empty name")
			}
			if err := put(b, bucketWatchers, []byte(w.Name), w); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(err, "put %d watcher states", len(states))
}

// Watchers returns the stored watcher states, sorted by name.
func (s *Store) Watchers() ([]WatcherState, error) {
	out := []WatcherState{}
	err := s.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketWatchers)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var w WatcherState
			if err := decode(v, &w, bucketWatchers, k); err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read watcher states")
	}
	return out, nil
}

// DeleteWatchers removes the states of watchers no longer configured.
func (s *Store) DeleteWatchers(names []string) error {
	if len(names) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketWatchers)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := b.Delete([]byte(n)); err != nil {
				return fmt.Errorf("bucket %s: delete %q: %w", bucketWatchers, n, err)
			}
		}
		return nil
	})
	return s.wrap(err, "delete %d watcher states", len(names))
}

// AppendHistory stores entries in one transaction, giving each the next Seq
// of the history bucket (whatever Seq they came with), and returns them with
// their Seq. Seqs only grow: a rolled-back or crashed append uses none.
// WithOutbox adds the notifications of the entries to the same transaction.
func (s *Store) AppendHistory(entries []HistoryEntry, opts ...HistoryOption) ([]HistoryEntry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	o := historyOpts(opts)
	var out []HistoryEntry
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		out, err = appendHistory(tx, entries, o)
		return err
	})
	if err != nil {
		return nil, s.wrap(err, "append %d history entries", len(entries))
	}
	return out, nil
}

// appendHistory writes entries within tx (AppendHistory, PutResults), and
// the outbox messages o routes for them: the messages are stored with their
// entries or not at all.
func appendHistory(tx *bolt.Tx, entries []HistoryEntry, o historyOptions) ([]HistoryEntry, error) {
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
	if o.route == nil {
		return out, nil
	}
	ob, err := bucket(tx, bucketOutbox)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for _, m := range o.route(out) {
		if _, err := addOutbox(ob, m, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// History returns up to limit entries, newest first, whose Seq is below
// before; before 0 starts at the newest. To page, pass the last returned
// entry's Seq as the next before. A limit of 0 or less means no limit.
func (s *Store) History(limit int, before uint64) ([]HistoryEntry, error) {
	out := []HistoryEntry{}
	err := s.view(func(tx *bolt.Tx) error {
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
// store cannot encode a Registry directly without losing them; here they
// are Sealed: encrypted, by variable (secrets.go). Schema 2 and before kept
// them in plain text under "secrets" (migrateV4).
type registryRecord struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	Values    map[string]string `json:"values,omitempty"`
	Sealed    map[string]string `json:"sealed,omitempty"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

func (s *Store) registryRecord(r Registry) registryRecord {
	return registryRecord{Kind: r.Kind, Name: r.Name, Values: r.Values, UpdatedAt: r.UpdatedAt,
		Sealed: s.keys.sealAll(r.Secrets, func(v string) []byte { return registryAD(r.Kind, r.Name, v) })}
}

// registry opens a record's secrets; those that do not open are Unreadable.
func (k *keyring) registry(rec registryRecord) (Registry, map[string]error) {
	r := Registry{Kind: rec.Kind, Name: rec.Name, Values: rec.Values, UpdatedAt: rec.UpdatedAt}
	var errs map[string]error
	r.Secrets, r.Unreadable, errs = k.openAll(rec.Sealed, func(v string) []byte { return registryAD(rec.Kind, rec.Name, v) })
	return r, errs
}

// PutRegistry saves (or replaces) a registry instance with its secrets,
// encrypted.
func (s *Store) PutRegistry(r Registry) error {
	key, err := pairKey(r.Kind, r.Name)
	if err != nil {
		return s.wrap(err, "put registry")
	}
	rec := s.registryRecord(r)
	err = s.update(func(tx *bolt.Tx) error {
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
	err = s.update(func(tx *bolt.Tx) error {
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
// including their Secrets, decrypted: the daemon needs them to connect. A
// secret the store's key does not decrypt is named in Unreadable instead.
// Code that answers the API must encode them as JSON, which drops Secrets.
func (s *Store) Registries() ([]Registry, error) {
	out := []Registry{}
	err := s.view(func(tx *bolt.Tx) error {
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
			r, _ := s.keys.registry(rec)
			out = append(out, r)
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
	err = s.update(func(tx *bolt.Tx) error {
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
	err := s.view(func(tx *bolt.Tx) error {
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
	err = s.update(func(tx *bolt.Tx) error {
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
	err = s.view(func(tx *bolt.Tx) error {
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
	return s.BackupTo(w, nil)
}

// BackupTo is Backup that tells size, when not nil, how many bytes the
// copy will have before it writes any (for a Content-Length).
func (s *Store) BackupTo(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, s.wrap(err, "backup")
	}
	return n, nil
}

// Size is how many bytes a backup of the file takes now.
func (s *Store) Size() (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	if err != nil {
		return 0, s.wrap(err, "size")
	}
	return n, nil
}

// SchemaVersion is the file's schema version (see migrate.go).
func (s *Store) SchemaVersion() (int, error) {
	var v int
	err := s.view(func(tx *bolt.Tx) error {
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
	// An OpenError names the file and what to do already.
	var oe *OpenError
	if errors.As(err, &oe) {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
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
