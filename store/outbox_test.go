package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// routeTo makes one message per entry for each notifier.
func routeTo(notifiers ...string) Router {
	return func(saved []HistoryEntry) []OutboxMessage {
		var out []OutboxMessage
		for _, n := range notifiers {
			for _, e := range saved {
				out = append(out, OutboxMessage{Notifier: n, Updates: []HistoryEntry{e}})
			}
		}
		return out
	}
}

func outboxIDs(msgs []OutboxMessage) []uint64 {
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestAppendHistoryWithOutbox: the messages are written with the entries,
// carry their Seq, and a message the store refuses takes the entries down
// with it: one transaction.
func TestAppendHistoryWithOutbox(t *testing.T) {
	s := openTemp(t)
	saved, err := s.AppendHistory([]HistoryEntry{{Key: "a", ToTag: "2"}, {Key: "b", ToTag: "3"}}, WithOutbox(routeTo("phone", "mail")))
	if err != nil {
		t.Fatal(err)
	}
	phone, err := s.Outbox("phone")
	if err != nil {
		t.Fatal(err)
	}
	mail, _ := s.Outbox("mail")
	if len(phone) != 2 || len(mail) != 2 {
		t.Fatalf("phone %d, mail %d messages", len(phone), len(mail))
	}
	for i, m := range phone {
		if m.State != OutboxWaiting || m.Notifier != "phone" || m.CreatedAt.IsZero() || !m.Since.Equal(m.CreatedAt) ||
			!reflect.DeepEqual(m.Updates, []HistoryEntry{saved[i]}) || m.Updates[0].Seq == 0 {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	if ids := outboxIDs(phone); !slices.IsSorted(ids) || ids[0] == ids[1] {
		t.Errorf("ids %v", ids)
	}

	bad := func(saved []HistoryEntry) []OutboxMessage {
		return []OutboxMessage{{Notifier: "ok", Updates: saved}, {Notifier: "", Updates: saved}}
	}
	if _, err := s.AppendHistory([]HistoryEntry{{Key: "c"}}, WithOutbox(bad)); err == nil {
		t.Fatal("a message without a notifier was stored")
	}
	if h, _ := s.History(0, 0); len(h) != 2 {
		t.Errorf("history has %d entries after the failed append, want 2", len(h))
	}
	if ok, _ := s.Outbox("ok"); len(ok) != 0 {
		t.Errorf("a message of the failed append was stored: %+v", ok)
	}
	if h, _ := s.AppendHistory([]HistoryEntry{{Key: "d"}}); h[0].Seq != 3 {
		t.Errorf("seq after the failed append: %d", h[0].Seq)
	}
}

func TestOutboxLifecycle(t *testing.T) {
	s := openTemp(t)
	saved, err := s.AppendHistory([]HistoryEntry{{Key: "a"}, {Key: "b"}, {Key: "c"}}, WithOutbox(routeTo("hook")))
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := s.Outbox("hook")

	// A failed try: saved with its next try.
	m := msgs[0]
	m.Tries, m.LastTryAt, m.NextTryAt, m.LastError = 1, t0, t0.Add(time.Second), "answered 500"
	if ok, err := s.PutOutbox(m); !ok || err != nil {
		t.Fatalf("PutOutbox: %v %v", ok, err)
	}
	counts, err := s.OutboxCounts()
	if err != nil || counts["hook"] != (OutboxCount{Waiting: 3, NextTryAt: t0.Add(time.Second)}) {
		t.Errorf("counts %+v, %v", counts, err)
	}

	// Sent: marked and gone, in one go.
	if err := s.OutboxSent("hook", m.ID, []string{"key-a"}, t0); err != nil {
		t.Fatal(err)
	}
	if sent, _ := s.Sent("hook", "key-a"); !sent {
		t.Error("not marked sent")
	}
	if ok, err := s.PutOutbox(m); ok || err != nil {
		t.Errorf("PutOutbox brought a sent message back: %v %v", ok, err)
	}

	// Expired: the waiting ones whose window began before since.
	n, err := s.ExpireOutbox("hook", time.Now().Add(25*time.Hour), "gave up")
	if err != nil || n != 2 {
		t.Fatalf("expired %d, %v", n, err)
	}
	msgs, _ = s.Outbox("hook")
	if len(msgs) != 2 || msgs[0].State != OutboxFailed || msgs[0].LastError != "gave up" {
		t.Errorf("after expiry: %+v", msgs)
	}
	if c, _ := s.OutboxCounts(); c["hook"] != (OutboxCount{Failed: 2}) {
		t.Errorf("counts %+v", c)
	}

	// Retry now: a new window, due at once.
	at := time.Now().UTC().Add(time.Minute)
	if n, err := s.RetryOutbox("hook", at); err != nil || n != 2 {
		t.Fatalf("retry %d, %v", n, err)
	}
	msgs, _ = s.Outbox("hook")
	for _, m := range msgs {
		if m.State != OutboxWaiting || !m.Since.Equal(at) || m.Tries != 0 || !m.NextTryAt.IsZero() || m.CreatedAt.Equal(at) {
			t.Errorf("after retry: %+v", m)
		}
	}

	// A try that ends after a Retry now does not undo the retry.
	stale := msgs[0]
	stale.State, stale.Tries, stale.LastError = OutboxFailed, 9, "from before the retry"
	stale.Since = at.Add(-time.Hour)
	if ok, err := s.PutOutbox(stale); ok || err != nil {
		t.Errorf("a stale PutOutbox was saved: %v %v", ok, err)
	}
	if got, _ := s.Outbox("hook"); got[0].State != OutboxWaiting || !got[0].Since.Equal(at) {
		t.Errorf("after a stale put: %+v", got[0])
	}

	// Deleting the notifier deletes its outbox, not another's.
	if _, err := s.AddOutbox([]OutboxMessage{{Notifier: "other", Updates: saved[:1]}, {Notifier: "hook2", Updates: saved[:1]}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNotifier(Notifier{Name: "hook"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteNotifier("hook"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"hook": 0, "other": 1, "hook2": 1} {
		if got, _ := s.Outbox(name); len(got) != want {
			t.Errorf("%s has %d messages, want %d", name, len(got), want)
		}
	}
	if sent, _ := s.Sent("hook", "key-a"); !sent {
		t.Error("deleting the notifier dropped its sent marks")
	}
}

func TestPruneHistory(t *testing.T) {
	now := t0.Add(100 * 24 * time.Hour)
	fill := func(t *testing.T) *Store {
		s := openTemp(t)
		// 100 entries, one a day, each announced by phone a minute later;
		// mail failed every one of them, and still waits for the last two.
		// Two transactions: the fill runs once per case.
		var entries []HistoryEntry
		for day := range 100 {
			entries = append(entries, HistoryEntry{At: t0.Add(time.Duration(day) * 24 * time.Hour), Key: fmt.Sprint(day)})
		}
		saved, err := s.AppendHistory(entries, WithOutbox(func(saved []HistoryEntry) []OutboxMessage {
			var out []OutboxMessage
			for day, e := range saved {
				st := OutboxFailed
				if day >= 98 {
					st = OutboxWaiting
				}
				out = append(out, OutboxMessage{Notifier: "mail", Updates: []HistoryEntry{e}, CreatedAt: e.At, State: st})
			}
			return out
		}))
		if err != nil {
			t.Fatal(err)
		}
		err = s.update(func(tx *bolt.Tx) error {
			for _, e := range saved {
				k, _ := pairKey("phone", fmt.Sprint(e.Seq))
				if err := put(tx.Bucket(bucketSent), bucketSent, k, sentRecord{At: e.At.Add(time.Minute)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name       string
		r          Retention
		wantOldest uint64 // seq of the oldest entry kept
	}{
		{"keep 30", Retention{Keep: 30}, 71},
		{"30 days", Retention{MaxAge: 30 * 24 * time.Hour}, 71},
		{"keep 50 within 30 days", Retention{Keep: 50, MaxAge: 30 * 24 * time.Hour}, 71},
		{"keep 10 within 30 days", Retention{Keep: 10, MaxAge: 30 * 24 * time.Hour}, 91},
		{"keep more than there are", Retention{Keep: 1000}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fill(t)
			p, err := s.PruneHistory(tt.r, now)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := s.History(0, 0)
			if got := h[len(h)-1].Seq; got != tt.wantOldest || h[0].Seq != 100 || len(h) != int(101-tt.wantOldest) {
				t.Fatalf("history %d..%d (%d entries), want %d..100", got, h[0].Seq, len(h), tt.wantOldest)
			}
			gone := int(tt.wantOldest - 1)
			if p.History != gone || p.Sent != gone || p.Outbox != gone {
				t.Errorf("pruned %+v, want %d of each", p, gone)
			}
			for seq := uint64(1); seq <= 100; seq++ {
				sent, _ := s.Sent("phone", fmt.Sprint(seq))
				if sent != (seq >= tt.wantOldest) {
					t.Errorf("sent mark of entry %d kept: %v", seq, sent)
				}
			}
			mail, _ := s.Outbox("mail")
			if len(mail) != 100-gone {
				t.Errorf("%d outbox messages, want %d", len(mail), 100-gone)
			}
			// Again: nothing more to do.
			if p, err := s.PruneHistory(tt.r, now); err != nil || p != (Pruned{}) {
				t.Errorf("second prune: %+v, %v", p, err)
			}
			if h, _ := s.AppendHistory([]HistoryEntry{{At: now}}); h[0].Seq != 101 {
				t.Errorf("seq after pruning: %d", h[0].Seq)
			}
		})
	}

	// Waiting messages stay, however old: their retry window ends them.
	s := fill(t)
	if _, err := s.PruneHistory(Retention{Keep: 1}, now.Add(1000*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if mail, _ := s.Outbox("mail"); len(mail) != 2 || mail[0].State != OutboxWaiting {
		t.Errorf("after pruning all but one: %+v", mail)
	}
	if p, err := s.PruneHistory(Retention{}, now); err != nil || p != (Pruned{}) {
		t.Errorf("no retention pruned %+v, %v", p, err)
	}
}

func TestSentAt(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 891, time.UTC)
	raw, _ := json.Marshal(sentRecord{At: at})
	for _, tt := range []struct {
		v    string
		want time.Time
		err  bool
	}{
		{string(raw), at, false}, // as put writes it
		{`{"at": "2025-03-04T05:06:07Z"}`, at.Truncate(time.Second), false}, // decoded
		{`{"at":"2025-03-04T05:06:07Z","by":"x"}`, at.Truncate(time.Second), false},
		{`{"at":"yesterday"}`, time.Time{}, true},
		{`garbage`, time.Time{}, true},
	} {
		got, err := sentAt([]byte("k"), []byte(tt.v))
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("sentAt(%s) = %v, %v", tt.v, got, err)
		}
	}
}
