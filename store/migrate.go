package store

import (
	"encoding/json"
	"errors"
	"fmt"

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
var migrations = []func(tx *bolt.Tx) error{
	migrateV1,
	migrateV2,
	migrateV3,
}

// bucketSince is the schema version that created a bucket.
func bucketSince(name []byte) int {
	switch string(name) {
	case string(bucketNotifiers):
		return 2
	case string(bucketOutbox):
		return 3
	}
	return 1
}

// migrateV1 creates the initial buckets.
func migrateV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketImages, bucketHistory, bucketRegistries, bucketRegistryTests, bucketSent} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateV2 adds the notifiers saved from Settings → Notifications.
func migrateV2(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketNotifiers); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketNotifiers, err)
	}
	return nil
}

// migrateV3 adds the notification outbox: messages recorded with the
// updates they announce, kept until their notifier's service accepts them.
func migrateV3(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketOutbox); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketOutbox, err)
	}
	return nil
}

// migrate brings the file at path to len(migrations). All missing steps and
// the new version run in one transaction: a crash or a failing step leaves
// the file at its old version, to be migrated again at the next Open.
func migrate(db *bolt.DB, path string) error {
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
			if err := migrations[v](tx); err != nil {
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
