package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNewerSchema is returned (wrapped) by Open for a file written by a newer
// tagwatch. Opening it anyway could drop or misread what the newer version
// stored, so the file is left untouched: upgrade tagwatch or restore a backup.
var ErrNewerSchema = errors.New("store schema is newer than this tagwatch")

// keySchemaVersion in the meta bucket holds the file's schema version,
// JSON-encoded like every other value. A file without it is version 0.
var keySchemaVersion = []byte("schema_version")

// migrations[i] takes a file from schema version i to i+1, so the code's
// version is len(migrations). Only ever append: files in the field have run
// the released steps, and editing one would leave them different from new files.
// keys is the store's key, for steps that encrypt.
var migrations = []func(tx *bolt.Tx, keys *keyring) error{
	migrateV1,
	migrateV2,
	migrateV3,
	migrateV4,
	migrateV5,
}

// bucketSince is the schema version that created a bucket.
func bucketSince(name []byte) int {
	switch string(name) {
	case string(bucketNotifiers):
		return 2
	case string(bucketWatchers):
		return 3
	case string(bucketOutbox):
		return 5
	}
	return 1
}

// migrateV1 creates the initial buckets.
func migrateV1(tx *bolt.Tx, _ *keyring) error {
	for _, name := range [][]byte{bucketMeta, bucketImages, bucketHistory, bucketRegistries, bucketRegistryTests, bucketSent} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateV2 adds the notifiers saved from Settings → Notifications.
func migrateV2(tx *bolt.Tx, _ *keyring) error {
	if _, err := tx.CreateBucketIfNotExists(bucketNotifiers); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketNotifiers, err)
	}
	return nil
}

// migrateV3 adds the watchers' listing states (an unreachable source's
// error and since when its images are stale).
func migrateV3(tx *bolt.Tx, _ *keyring) error {
	if _, err := tx.CreateBucketIfNotExists(bucketWatchers); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketWatchers, err)
	}
	return nil
}

// migrateV4 encrypts the secrets that schemas 1 to 3 kept in plain text (the
// "secrets" of registries and notifiers) with the store's key, and marks the
// file to be scrubbed: the plain text stays in the pages bbolt frees until
// Open rewrites the file (scrub).
func migrateV4(tx *bolt.Tx, keys *keyring) error {
	sealed := 0
	n, err := sealPlain(tx, bucketRegistries, func(k, v []byte) ([]byte, error) {
		var rec struct {
			registryRecord
			Secrets map[string]string `json:"secrets"`
		}
		if err := decode(v, &rec, bucketRegistries, k); err != nil || len(rec.Secrets) == 0 {
			return nil, err
		}
		r := rec.registryRecord
		r.Sealed = keys.sealAll(rec.Secrets, func(name string) []byte { return registryAD(r.Kind, r.Name, name) })
		return json.Marshal(r)
	})
	if err != nil {
		return err
	}
	sealed += n
	n, err = sealPlain(tx, bucketNotifiers, func(k, v []byte) ([]byte, error) {
		var rec struct {
			notifierRecord
			Secrets map[string]string `json:"secrets"`
		}
		if err := decode(v, &rec, bucketNotifiers, k); err != nil || len(rec.Secrets) == 0 {
			return nil, err
		}
		r := rec.notifierRecord
		r.Sealed = keys.sealAll(rec.Secrets, func(name string) []byte { return notifierAD(r.Name, name) })
		return json.Marshal(r)
	})
	if err != nil {
		return err
	}
	if sealed += n; sealed == 0 {
		return nil
	}
	meta, err := bucket(tx, bucketMeta)
	if err != nil {
		return err
	}
	return put(meta, bucketMeta, keyScrub, true)
}

// sealPlain rewrites the records of a bucket that conv changes (it returns
// nil for a record to keep) and counts them.
func sealPlain(tx *bolt.Tx, name []byte, conv func(k, v []byte) ([]byte, error)) (int, error) {
	b, err := bucket(tx, name)
	if err != nil {
		return 0, err
	}
	type kv struct{ k, v []byte }
	var changed []kv
	// bbolt forbids writing to a bucket while iterating it.
	err = b.ForEach(func(k, v []byte) error {
		nv, err := conv(k, v)
		if err != nil || nv == nil {
			return err
		}
		changed = append(changed, kv{append([]byte(nil), k...), nv})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range changed {
		if err := b.Put(c.k, c.v); err != nil {
			return 0, fmt.Errorf("bucket %s: put %q: %w", name, c.k, err)
		}
	}
	return len(changed), nil
}

// keyScrub in the meta bucket marks a file whose free pages may hold
// secrets (plain text before migrateV4, or encrypted with a key RotateKey
// retired). bbolt reuses freed pages but never clears them, so those bytes
// would stay in the file, and in every copy of it, until overwritten.
var keyScrub = []byte("scrub_free_pages")

// scrub rewrites a file marked with keyScrub: a compacted copy holds only
// live data, and replaces the file. On failure the mark stays, so the next
// Open tries again; db is closed.
func scrub(db *bolt.DB, path string, bo *bolt.Options) (*bolt.DB, error) {
	var marked bool
	err := db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			marked = meta.Get(keyScrub) != nil
		}
		return nil
	})
	if err != nil || !marked {
		return db, err
	}
	fail := func(err error) (*bolt.DB, error) {
		db.Close()
		return nil, fmt.Errorf("open store %s: rewriting the file to clear old secrets from its free pages: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".compact-*")
	if err != nil {
		return fail(err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	dst, err := bolt.Open(tmpName, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		os.Remove(tmpName)
		return fail(err)
	}
	err = bolt.Compact(dst, db, 0)
	if err == nil {
		err = dst.Update(func(tx *bolt.Tx) error {
			meta, err := bucket(tx, bucketMeta)
			if err != nil {
				return err
			}
			return meta.Delete(keyScrub)
		})
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmpName)
		return fail(err)
	}
	if fi, err := os.Stat(path); err != nil {
		os.Remove(tmpName)
		return fail(err)
	} else if err := sameOwner(tmpName, fi); err != nil {
		os.Remove(tmpName)
		return fail(err)
	}
	if err := db.Close(); err != nil {
		os.Remove(tmpName)
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return nil, fmt.Errorf("open store %s: replacing it with its rewritten copy: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err = bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// migrateV5 adds the notification outbox: messages recorded with the
// updates they announce, kept until their notifier's service accepts them.
func migrateV5(tx *bolt.Tx, _ *keyring) error {
	if _, err := tx.CreateBucketIfNotExists(bucketOutbox); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketOutbox, err)
	}
	return nil
}

// migrate brings the file at path to len(migrations). All missing steps and
// the new version run in one transaction: a crash or a failing step leaves
// the file at its old version, to be migrated again at the next Open.
func migrate(db *bolt.DB, path string, keys *keyring) error {
	want := len(migrations)
	var have int
	// Check first in a read transaction, so that an up-to-date or newer
	// file is not written to at all.
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		have, err = readVersion(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if have > want {
		return fmt.Errorf("open store %s: schema version %d, this tagwatch knows up to %d: %w", path, have, want, ErrNewerSchema)
	}
	if have == want {
		return nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for v := have; v < want; v++ {
			if err := migrations[v](tx, keys); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		meta, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		return put(meta, bucketMeta, keySchemaVersion, want)
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	return nil
}

// readVersion returns the schema version stored in tx's file; 0 when the
// file has none (new, or written before versions existed).
func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get(keySchemaVersion)
	if raw == nil {
		return 0, nil
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("bucket %s: decode %s %q: %w", bucketMeta, keySchemaVersion, raw, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("bucket %s: %s is negative (%d)", bucketMeta, keySchemaVersion, v)
	}
	return v, nil
}
