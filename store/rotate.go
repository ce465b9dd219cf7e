package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// CheckSecrets decrypts every saved secret and returns an *UnreadableError
// naming those the store's key does not decrypt; nil when all do. The
// daemon logs it at start-up and runs on: reads leave those secrets out.
func (s *Store) CheckSecrets() error {
	ue := &UnreadableError{Path: s.path, KeyFrom: s.keys.from, KeyID: s.keys.id()}
	others := map[string]bool{}
	note := func(what string, errs map[string]error) {
		names := make([]string, 0, len(errs))
		for n := range errs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ue.Secrets = append(ue.Secrets, what+": "+n)
			var ke *keyError
			if errors.As(errs[n], &ke) && errors.Is(ke, ErrOtherKey) {
				others[ke.keyID] = true
			} else {
				ue.Damaged++
			}
		}
	}
	err := s.view(func(tx *bolt.Tx) error {
		regs, err := bucket(tx, bucketRegistries)
		if err != nil {
			return err
		}
		err = regs.ForEach(func(k, v []byte) error {
			var rec registryRecord
			if err := decode(v, &rec, bucketRegistries, k); err != nil {
				return err
			}
			_, errs := s.keys.registry(rec)
			note("registry "+rec.Kind+"."+rec.Name, errs)
			return nil
		})
		if err != nil {
			return err
		}
		nots, err := bucket(tx, bucketNotifiers)
		if err != nil {
			return err
		}
		return nots.ForEach(func(k, v []byte) error {
			var rec notifierRecord
			if err := decode(v, &rec, bucketNotifiers, k); err != nil {
				return err
			}
			_, errs := s.keys.notifier(rec)
			note("notifier "+rec.Name, errs)
			return nil
		})
	})
	if err != nil {
		return s.wrap(err, "check secrets")
	}
	if len(ue.Secrets) == 0 {
		return nil
	}
	for id := range others {
		ue.OtherKeys = append(ue.OtherKeys, id)
	}
	sort.Strings(ue.OtherKeys)
	return ue
}

// Rotation is what RotateKey did.
type Rotation struct {
	Secrets int    // secrets encrypted again
	OldID   string // the key they were encrypted with (Key.ID)
	NewID   string // the key they are encrypted with now
	// KeyFile is the key file that now holds the new key; "" when the key
	// came from WithKey and the caller keeps the new one.
	KeyFile string
}

// RotateKey encrypts every secret of the store file at path again under a
// new key, in one bbolt transaction, then rewrites the file so that no copy
// of the old ciphertexts stays in its free pages. The daemon must be
// stopped: it holds bbolt's lock on the file, and RotateKey then fails with
// ErrLocked.
//
// With WithKey (a key from the environment), next must be given and the
// caller keeps it where the daemon will find it. Without, the key file
// beside the store (KeyFile) is rotated: next, or a new random key when nil,
// is first written to FILE.key.new, the secrets are encrypted again, then
// FILE.key.new replaces FILE.key. If that is interrupted, Open decrypts with
// both keys, and RotateKey run again finishes with the key in FILE.key.new.
//
// A secret that no key decrypts fails the rotation and leaves the file as
// it was: enter it again in the UI (or delete its registry or notifier)
// first.
func RotateKey(path string, next *Key, opts ...Option) (Rotation, error) {
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := os.Stat(path); err != nil {
		return Rotation{}, fmt.Errorf("rotate key: store %s: %w", path, err)
	}
	var (
		newKey  Key
		pending string // the key file being replaced, while in progress
		wrote   bool   // this call wrote pending
	)
	if o.key != nil {
		if next == nil {
			return Rotation{}, fmt.Errorf("rotate key of %s: the current key comes from %s: give the new key too", path, o.keyFrom)
		}
		newKey = *next
	} else {
		keyInfo, err := os.Stat(KeyFile(path))
		if err != nil {
			return Rotation{}, fmt.Errorf("rotate key of %s: %w (start tagwatch once to make it, or give the key it uses with %s)", path, err, KeyEnv)
		}
		pending = pendingKeyFile(path)
		pk, err := ReadKeyFile(pending)
		switch {
		case err == nil:
			// An earlier rotation stopped half-way: finish it with its key.
			if next != nil && next.ID() != pk.ID() {
				return Rotation{}, fmt.Errorf("rotate key of %s: %s holds the new key of an interrupted rotation: run again without a new key to finish that one, or delete the file if its rotation never started",
					path, pending)
			}
			newKey = pk
		case errors.Is(err, fs.ErrNotExist):
			if next != nil {
				newKey = *next
			} else if newKey, err = NewKey(); err != nil {
				return Rotation{}, err
			}
			if err := WriteKeyFile(pending, newKey); err != nil {
				return Rotation{}, fmt.Errorf("rotate key of %s: %w", path, err)
			}
			wrote = true
			if err := sameOwner(pending, keyInfo); err != nil {
				os.Remove(pending)
				return Rotation{}, fmt.Errorf("rotate key of %s: %w", path, err)
			}
		default:
			return Rotation{}, fmt.Errorf("rotate key of %s: %w", path, err)
		}
	}
	undo := func() {
		if wrote {
			os.Remove(pending)
		}
	}

	s, err := Open(path, append(opts, withExtraKey(newKey))...)
	if err != nil {
		undo()
		return Rotation{}, fmt.Errorf("rotate key: %w", err)
	}
	rot := Rotation{OldID: s.keys.id(), NewID: newKey.ID()}
	if err := s.CheckSecrets(); err != nil {
		s.Close()
		undo()
		return Rotation{}, fmt.Errorf("rotate key: nothing changed: %w", err)
	}
	next2, err := newKeyring(newKey, "the new key")
	if err != nil {
		s.Close()
		undo()
		return Rotation{}, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		n, err := reseal(tx, bucketRegistries, func(k, v []byte) ([]byte, int, error) {
			var rec registryRecord
			if err := decode(v, &rec, bucketRegistries, k); err != nil {
				return nil, 0, err
			}
			r, errs := s.keys.registry(rec)
			if len(errs) > 0 {
				return nil, 0, fmt.Errorf("registry %s.%s: %v", r.Kind, r.Name, r.Unreadable)
			}
			rec.Sealed = next2.sealAll(r.Secrets, func(name string) []byte { return registryAD(r.Kind, r.Name, name) })
			b, err := json.Marshal(rec)
			return b, len(rec.Sealed), err
		})
		if err != nil {
			return err
		}
		rot.Secrets += n
		n, err = reseal(tx, bucketNotifiers, func(k, v []byte) ([]byte, int, error) {
			var rec notifierRecord
			if err := decode(v, &rec, bucketNotifiers, k); err != nil {
				return nil, 0, err
			}
			nt, errs := s.keys.notifier(rec)
			if len(errs) > 0 {
				return nil, 0, fmt.Errorf("notifier %s: %v", nt.Name, nt.Unreadable)
			}
			rec.Sealed = next2.sealAll(nt.Secrets, func(name string) []byte { return notifierAD(nt.Name, name) })
			b, err := json.Marshal(rec)
			return b, len(rec.Sealed), err
		})
		if err != nil {
			return err
		}
		rot.Secrets += n
		meta, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		return put(meta, bucketMeta, keyScrub, true)
	})
	if err != nil {
		s.Close()
		undo()
		return Rotation{}, fmt.Errorf("rotate key: nothing changed: %w", s.wrap(err, "re-encrypt secrets"))
	}
	// Committed: from here on the new key is the one that decrypts.
	if pending != "" {
		if err := os.Rename(pending, KeyFile(path)); err != nil {
			s.Close()
			return rot, fmt.Errorf("rotate key: the secrets are encrypted with the new key in %s, but it did not replace %s: %w (rename it by hand)", pending, KeyFile(path), err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			s.Close()
			return rot, err
		}
		rot.KeyFile = KeyFile(path)
	}
	bo := &bolt.Options{Timeout: o.lockTimeout}
	var db *bolt.DB
	err = guard(path, func() error {
		var err error
		db, err = scrub(s.db, path, bo)
		return err
	})
	if err != nil {
		s.db.Close() // scrub closed it, unless a damaged page stopped it
		return rot, fmt.Errorf("rotate key: the secrets are encrypted with the new key, but %w; the next start of tagwatch tries again", err)
	}
	if err := db.Close(); err != nil {
		return rot, fmt.Errorf("close store %s: %w", path, err)
	}
	return rot, nil
}

// reseal rewrites every record of a bucket with conv, counting what conv
// reports.
func reseal(tx *bolt.Tx, name []byte, conv func(k, v []byte) ([]byte, int, error)) (int, error) {
	b, err := bucket(tx, name)
	if err != nil {
		return 0, err
	}
	type kv struct{ k, v []byte }
	var all []kv
	total := 0
	err = b.ForEach(func(k, v []byte) error {
		nv, n, err := conv(k, v)
		if err != nil {
			return err
		}
		total += n
		all = append(all, kv{append([]byte(nil), k...), nv})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, e := range all {
		if err := b.Put(e.k, e.v); err != nil {
			return 0, fmt.Errorf("bucket %s: put %q: %w", name, e.k, err)
		}
	}
	return total, nil
}
