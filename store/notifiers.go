package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// notifierRecord is a Notifier as stored, secrets included (Notifier.Secrets
// is json:"-"). Its fields mirror Notifier's so that the two convert.
type notifierRecord struct {
	Name      string            `json:"name"`
	Settings  map[string]string `json:"settings,omitempty"`
	Secrets   map[string]string `json:"secrets,omitempty"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// PutNotifier saves (or replaces) a notifier with its secrets.
func (s *Store) PutNotifier(n Notifier) error {
	if n.Name == "" {
		return s.wrap(fmt.Errorf("empty notifier name"), "put notifier")
	}
	rec := notifierRecord(n)
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
// Secrets: the daemon needs the url to send. Code that answers the API must
// encode them as JSON, which drops Secrets.
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
			out = append(out, Notifier(rec))
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "read notifiers")
	}
	return out, nil
}
