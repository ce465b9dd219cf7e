package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutResults writes checked images and the updates they newly show in one
// transaction, as PutImages and AppendHistory would one after the other.
// Together, a crash cannot keep the records and lose their history entries
// (the next cycle, finding the update already on record, would never
// announce it) nor the reverse (it would be announced twice). The daemon
// stores a cycle's results in such batches as they come in, so healthy
// registries' images are stored while a slow one is still answering.
func (s *Store) PutResults(imgs []Image, history []HistoryEntry) ([]HistoryEntry, error) {
	if len(imgs) == 0 && len(history) == 0 {
		return nil, nil
	}
	var out []HistoryEntry
	err := s.db.Update(func(tx *bolt.Tx) error {
		if len(imgs) > 0 {
			if err := putImages(tx, imgs, time.Now().UTC()); err != nil {
				return err
			}
		}
		if len(history) > 0 {
			var err error
			out, err = appendHistory(tx, history)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "put %d images and %d history entries", len(imgs), len(history))
	}
	return out, nil
}
