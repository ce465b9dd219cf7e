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
//
// WithOutbox adds the notifications of the history entries to the same
// transaction, as it does for AppendHistory: each update is recorded and
// queued for delivery together, or neither.
func (s *Store) PutResults(imgs []Image, history []HistoryEntry, opts ...HistoryOption) ([]HistoryEntry, error) {
	if len(imgs) == 0 && len(history) == 0 {
		return nil, nil
	}
	o := historyOpts(opts)
	var out []HistoryEntry
	err := s.update(func(tx *bolt.Tx) error {
		if len(imgs) > 0 {
			if err := putImages(tx, imgs, time.Now().UTC()); err != nil {
				return err
			}
		}
		if len(history) > 0 {
			var err error
			out, err = appendHistory(tx, history, o)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "put %d images and %d history entries", len(imgs), len(history))
	}
	return out, nil
}
