package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// States of an outbox message.
const (
	// OutboxWaiting: not sent yet; tried again at NextTryAt.
	OutboxWaiting = "waiting"
	// OutboxFailed: given up on (the service refused it, or the retry
	// window passed); kept, and visible, until retried or pruned.
	OutboxFailed = "failed"
)

// OutboxMessage is one notification to send through one notifier: the
// updates it announces, and how its delivery goes. It is written in the
// transaction that records the updates, and deleted in the transaction
// that marks them sent, so an update recorded is announced even across a
// crash, and an update marked sent is not announced again.
type OutboxMessage struct {
	ID       uint64         `json:"id"` // assigned by the store, increasing
	Notifier string         `json:"notifier"`
	Updates  []HistoryEntry `json:"updates"` // copies: history retention may drop the originals
	State    string         `json:"state"`   // OutboxWaiting or OutboxFailed
	// CreatedAt is when the updates were recorded; Since starts the
	// retry window: CreatedAt, or the last Retry now.
	CreatedAt time.Time `json:"createdAt"`
	Since     time.Time `json:"since"`
	Tries     int       `json:"tries"`
	LastTryAt time.Time `json:"lastTryAt,omitzero"`
	NextTryAt time.Time `json:"nextTryAt,omitzero"` // zero: at once
	LastError string    `json:"lastError,omitempty"`
}

// Router turns the updates an AppendHistory call has just recorded (with
// their Seq) into outbox messages. It runs inside the write transaction,
// so it must not use the store.
type Router func(saved []HistoryEntry) []OutboxMessage

type historyOptions struct {
	route Router
}

// HistoryOption changes what AppendHistory and PutResults write with the
// entries.
type HistoryOption func(*historyOptions)

func historyOpts(opts []HistoryOption) historyOptions {
	var o historyOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithOutbox has AppendHistory (or PutResults) write route's messages in
// the same transaction as the entries: either both are stored, or neither.
func WithOutbox(route Router) HistoryOption {
	return func(o *historyOptions) { o.route = route }
}

// outboxKey is notifier NUL id, id big-endian: a notifier's messages are
// together, oldest first.
func outboxKey(notifier string, id uint64) ([]byte, error) {
	return pairKey(notifier, string(binary.BigEndian.AppendUint64(nil, id)))
}

func outboxPrefix(notifier string) ([]byte, error) {
	if notifier == "" || strings.IndexByte(notifier, 0) >= 0 {
		return nil, fmt.Errorf("bad notifier name %q", notifier)
	}
	return []byte(notifier + "\x00"), nil
}

// addOutbox stores m under the next id, filling in the defaults.
func addOutbox(b *bolt.Bucket, m OutboxMessage, now time.Time) (OutboxMessage, error) {
	id, err := b.NextSequence()
	if err != nil {
		return m, fmt.Errorf("bucket %s: next sequence: %w", bucketOutbox, err)
	}
	m.ID = id
	if m.State == "" {
		m.State = OutboxWaiting
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if m.Since.IsZero() {
		m.Since = m.CreatedAt
	}
	key, err := outboxKey(m.Notifier, id)
	if err != nil {
		return m, err
	}
	return m, put(b, bucketOutbox, key, m)
}

// AddOutbox stores messages in one transaction, giving each an ID, and
// returns them as stored.
func (s *Store) AddOutbox(msgs []OutboxMessage) ([]OutboxMessage, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	out := make([]OutboxMessage, len(msgs))
	now := time.Now().UTC()
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			if out[i], err = addOutbox(b, m, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "add %d outbox messages", len(msgs))
	}
	return out, nil
}

// Outbox returns a notifier's messages, waiting and failed, oldest first.
func (s *Store) Outbox(notifier string) ([]OutboxMessage, error) {
	prefix, err := outboxPrefix(notifier)
	if err != nil {
		return nil, s.wrap(err, "read outbox")
	}
	out := []OutboxMessage{}
	err = s.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m OutboxMessage
			if err := decode(v, &m, bucketOutbox, k); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "read outbox of %s", notifier)
	}
	return out, nil
}

// OutboxCount sums up a notifier's outbox.
type OutboxCount struct {
	Waiting int `json:"waiting"`
	Failed  int `json:"failed"`
	// NextTryAt is the soonest retry of a waiting message that has
	// failed a try; zero when none has.
	NextTryAt time.Time `json:"nextTryAt,omitzero"`
}

// OutboxCounts counts every notifier's waiting and failed messages.
func (s *Store) OutboxCounts() (map[string]OutboxCount, error) {
	out := map[string]OutboxCount{}
	err := s.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var m struct {
				Notifier  string    `json:"notifier"`
				State     string    `json:"state"`
				NextTryAt time.Time `json:"nextTryAt"`
			}
			if err := decode(v, &m, bucketOutbox, k); err != nil {
				return err
			}
			c := out[m.Notifier]
			if m.State == OutboxFailed {
				c.Failed++
			} else {
				c.Waiting++
				if !m.NextTryAt.IsZero() && (c.NextTryAt.IsZero() || m.NextTryAt.Before(c.NextTryAt)) {
					c.NextTryAt = m.NextTryAt
				}
			}
			out[m.Notifier] = c
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err, "count outbox")
	}
	return out, nil
}

// PutOutbox saves the delivery state of a message read from the outbox,
// unless it changed meanwhile: one deleted (sent, its notifier deleted,
// pruned) stays deleted, one retried (a new retry window) keeps the retry.
// ok is false then.
func (s *Store) PutOutbox(m OutboxMessage) (ok bool, err error) {
	key, err := outboxKey(m.Notifier, m.ID)
	if err != nil {
		return false, s.wrap(err, "put outbox message")
	}
	err = s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		raw := b.Get(key)
		if raw == nil {
			return nil
		}
		var stored OutboxMessage
		if err := decode(raw, &stored, bucketOutbox, key); err != nil {
			return err
		}
		if !stored.Since.Equal(m.Since) {
			return nil
		}
		ok = true
		return put(b, bucketOutbox, key, m)
	})
	if err != nil {
		return false, s.wrap(err, "put outbox message %s/%d", m.Notifier, m.ID)
	}
	return ok, nil
}

// OutboxSent records that notifier's service accepted message id: in one
// transaction, each of keys is marked sent (see MarkSent) and the message
// deleted.
func (s *Store) OutboxSent(notifier string, id uint64, keys []string, at time.Time) error {
	key, err := outboxKey(notifier, id)
	if err != nil {
		return s.wrap(err, "outbox sent")
	}
	err = s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		sent, err := bucket(tx, bucketSent)
		if err != nil {
			return err
		}
		for _, k := range keys {
			sk, err := pairKey(notifier, k)
			if err != nil {
				return err
			}
			if sent.Get(sk) == nil {
				if err := put(sent, bucketSent, sk, sentRecord{At: at}); err != nil {
					return err
				}
			}
		}
		if err := b.Delete(key); err != nil {
			return fmt.Errorf("bucket %s: delete %q: %w", bucketOutbox, key, err)
		}
		return nil
	})
	return s.wrap(err, "outbox sent %s/%d", notifier, id)
}

// RetryOutbox starts a new retry window at at for every message of
// notifier: failed ones wait again, and every waiting one is due at once.
// It returns how many messages there are.
func (s *Store) RetryOutbox(notifier string, at time.Time) (int, error) {
	return s.changeOutbox(notifier, "retry outbox", func(m *OutboxMessage) bool {
		if m.State == OutboxFailed {
			m.State, m.Since, m.Tries = OutboxWaiting, at, 0
		}
		m.NextTryAt = time.Time{}
		return true
	})
}

// ExpireOutbox gives up on notifier's waiting messages whose retry window
// began before since, with lastError as the reason, and returns how many.
func (s *Store) ExpireOutbox(notifier string, since time.Time, lastError string) (int, error) {
	return s.changeOutbox(notifier, "expire outbox", func(m *OutboxMessage) bool {
		if m.State != OutboxWaiting || !m.Since.Before(since) {
			return false
		}
		m.State, m.NextTryAt = OutboxFailed, time.Time{}
		if m.LastError == "" {
			m.LastError = lastError
		}
		return true
	})
}

// changeOutbox rewrites, in one transaction, the messages of notifier that
// change reports changed; it returns how many.
func (s *Store) changeOutbox(notifier, op string, change func(m *OutboxMessage) bool) (int, error) {
	prefix, err := outboxPrefix(notifier)
	if err != nil {
		return 0, s.wrap(err, "%s", op)
	}
	n := 0
	err = s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketOutbox)
		if err != nil {
			return err
		}
		type kv struct {
			k []byte
			m OutboxMessage
		}
		var changed []kv
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m OutboxMessage
			if err := decode(v, &m, bucketOutbox, k); err != nil {
				return err
			}
			if change(&m) {
				changed = append(changed, kv{append([]byte(nil), k...), m})
			}
		}
		// Put after the walk: bbolt cursors do not survive writes.
		for _, c := range changed {
			if err := put(b, bucketOutbox, c.k, c.m); err != nil {
				return err
			}
		}
		n = len(changed)
		return nil
	})
	if err != nil {
		return 0, s.wrap(err, "%s of %s", op, notifier)
	}
	return n, nil
}

// deleteOutbox removes every message of notifier in tx.
func deleteOutbox(tx *bolt.Tx, notifier string) error {
	prefix, err := outboxPrefix(notifier)
	if err != nil {
		return err
	}
	b, err := bucket(tx, bucketOutbox)
	if err != nil {
		return err
	}
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("bucket %s: delete %q: %w", bucketOutbox, k, err)
		}
	}
	return nil
}
