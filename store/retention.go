package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention bounds the history. Zero values mean no bound.
type Retention struct {
	Keep   int           // the newest entries kept
	MaxAge time.Duration // entries detected longer ago are removed
}

// Enabled reports whether r bounds anything.
func (r Retention) Enabled() bool { return r.Keep > 0 || r.MaxAge > 0 }

// maxPrune bounds one PruneHistory transaction: the first run after a
// retention is set on a long history finishes over the next cycles rather
// than in one long write.
const maxPrune = 20000

// Pruned counts what PruneHistory removed.
type Pruned struct {
	History int // entries
	Sent    int // sent marks of those entries
	Outbox  int // failed outbox messages of those entries
}

// PruneHistory removes the oldest history entries beyond r, then the sent
// marks and failed outbox messages older than the oldest entry kept, in one
// transaction. It reads a handful of records when there is nothing to
// remove; bbolt reuses the freed pages, the file does not shrink.
func (s *Store) PruneHistory(r Retention, now time.Time) (Pruned, error) {
	var p Pruned
	if !r.Enabled() {
		return p, nil
	}
	var cutoff time.Time
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge)
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketHistory)
		if err != nil {
			return err
		}
		c := b.Cursor()
		last, _ := c.Last()
		first, v := c.First()
		if first == nil {
			return nil
		}
		if len(first) != 8 || len(last) != 8 {
			return fmt.Errorf("bucket %s: key %x is not a sequence number", bucketHistory, first)
		}
		// Entries are only ever removed from the oldest end, so the
		// sequence numbers in between are all there.
		count := int(binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1)
		var doomed [][]byte
		keptAt := now // when nothing is kept, every mark is older
		for k := first; k != nil; k, v = c.Next() {
			var e struct {
				At time.Time `json:"at"`
			}
			if err := decode(v, &e, bucketHistory, k); err != nil {
				return err
			}
			over := r.Keep > 0 && count-len(doomed) > r.Keep
			old := !cutoff.IsZero() && e.At.Before(cutoff)
			if (!over && !old) || len(doomed) == maxPrune {
				keptAt = e.At
				break
			}
			doomed = append(doomed, k)
		}
		if len(doomed) == 0 {
			return nil
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("bucket %s: delete %x: %w", bucketHistory, k, err)
			}
		}
		p.History = len(doomed)
		// A mark is made after its update was detected: one older than
		// the oldest entry kept belongs to an entry just removed.
		if p.Sent, err = pruneOlder(tx, bucketSent, keptAt, func(k, v []byte) (time.Time, bool, error) {
			at, err := sentAt(k, v)
			return at, true, err
		}); err != nil {
			return err
		}
		p.Outbox, err = pruneOlder(tx, bucketOutbox, keptAt, func(k, v []byte) (time.Time, bool, error) {
			var m OutboxMessage
			err := decode(v, &m, bucketOutbox, k)
			// Waiting messages are still being tried: their retry window
			// ends them, not the history's.
			return m.CreatedAt, m.State == OutboxFailed, err
		})
		return err
	})
	if err != nil {
		return Pruned{}, s.wrap(err, "prune history")
	}
	return p, nil
}

// pruneOlder deletes the values of a bucket whose time (from when) is
// before t and that when says may go.
func pruneOlder(tx *bolt.Tx, name []byte, t time.Time, when func(k, v []byte) (time.Time, bool, error)) (int, error) {
	b, err := bucket(tx, name)
	if err != nil {
		return 0, err
	}
	var doomed [][]byte
	err = b.ForEach(func(k, v []byte) error {
		at, may, err := when(k, v)
		if err != nil {
			return err
		}
		if may && at.Before(t) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("bucket %s: delete %q: %w", name, k, err)
		}
	}
	return len(doomed), nil
}

// sentAt is the time of a sent mark. Every mark is scanned when the
// history is pruned: the shape put writes ({"at":"<RFC 3339>"}) is read
// without the JSON decoder, ten times faster; anything else is decoded.
func sentAt(k, v []byte) (time.Time, error) {
	const prefix, suffix = `{"at":"`, `"}`
	if len(v) > len(prefix)+len(suffix) && string(v[:len(prefix)]) == prefix && string(v[len(v)-len(suffix):]) == suffix {
		if at, err := time.Parse(time.RFC3339Nano, string(v[len(prefix):len(v)-len(suffix)])); err == nil {
			return at, nil
		}
	}
	var m sentRecord
	err := decode(v, &m, bucketSent, k)
	return m.At, err
}
