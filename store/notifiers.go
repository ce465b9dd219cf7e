package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// notifierRecord is a Notifier as stored, its secrets encrypted (Sealed;
// Notifier.Secrets is json:"-"). Schema 2 kept them in plain text under
// "secrets" (migrateV4).
type notifierRecord struct {
	Name      string            `json:"name"`
	Settings  map[string]string `json:"settings,omitempty"`
	Sealed    map[string]string `json:"sealed,omitempty"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// notifier opens a record's secrets; those that do not open are Unreadable.
func (k *keyring) notifier(rec notifierRecord) (Notifier, map[string]error) {
	n := Notifier{Name: rec.Name, Settings: rec.Settings, UpdatedAt: rec.UpdatedAt}
	var errs map[string]error
	n.Secrets, n.Unreadable, errs = k.openAll(rec.Sealed, func(key string) []byte { return notifierAD(rec.Name, key) })
	return n, errs
}

// PutNotifier saves (or replaces) a notifier with its secrets, encrypted.
func (s *Store) PutNotifier(n Notifier) error {
	if n.Name == "" {
		return s.wrap(fmt.Errorf("empty notifier name"), "put notifier")
	}
	rec := notifierRecord{Name: n.Name, Settings: n.Settings, UpdatedAt: n.UpdatedAt,
		Sealed: s.keys.sealAll(n.Secrets, func(key string) []byte { return notifierAD(n.Name, key) })}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketNotifiers)
		if err != nil {
			return err
		}
		return put(b, bucketNotifiers, []byte(n.Name), rec)
	})
	return s.wrap(err, "put notifier %s", n.Name)
}

// DeleteNotifier removes a notifier and its outbox; existed reports whether
// it was stored. Its sent marks stay: a notifier saved again under the name
// does not announce the same updates twice.
func (s *Store) DeleteNotifier(name string) (existed bool, err error) {
	if name == "" {
		return false, s.wrap(fmt.Errorf("empty notifier name"), "delete notifier")
	}
	err = s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketNotifiers)
		if err != nil {
			return err
		}
		existed = b.Get([]byte(name)) != nil
		if err := b.Delete([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: delete %q: %w", bucketNotifiers, name, err)
		}
		// Its messages would otherwise go out if a notifier of the same
		// name came back, announcing what it was not set up for.
		return deleteOutbox(tx, name)
	})
	if err != nil {
		return false, s.wrap(err, "delete notifier %s", name)
	}
	return existed, nil
}

// Notifiers returns the saved notifiers sorted by name, including their
// Secrets, decrypted: the daemon needs the url to send. A secret the
// store's key does not decrypt is named in Unreadable instead. Code that
// answers the API must encode them as JSON, which drops Secrets.
func (s *Store) Notifiers() ([]Notifier, error) {
	out := []Notifier{}
	err := s.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketNotifiers)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var rec notifierRecord
			if err := decode(v, &rec, bucketNotifiers, k); err != nil {
				return err
			}
			n, _ := s.keys.notifier(rec)
			out = append(out, n)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read notifiers")
	}
	return out, nil
}
