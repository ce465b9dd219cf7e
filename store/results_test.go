package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestPutResults(t *testing.T) {
	s := openTemp(t)
	first := testImage("a", 1)
	first.FirstSeen = t0
	got, err := s.PutResults([]Image{first, testImage("b", 2)}, []HistoryEntry{{Key: "a", Update: "patch"}, {Key: "b", Update: "patch"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("history entries returned: %+v", got)
	}
	// A later batch keeps FirstSeen, and Seq carries on.
	again := testImage("a", 3)
	again.FirstSeen = t0.Add(time.Hour)
	got, err = s.PutResults([]Image{again}, []HistoryEntry{{Key: "a", Update: "minor"}})
	if err != nil || len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("second batch: %+v, %v", got, err)
	}
	img, ok, err := s.Image("a")
	if err != nil || !ok || !img.FirstSeen.Equal(t0) || img.LatestTag != "2024.10.3" {
		t.Errorf("image a: %+v, %v, %v", img, ok, err)
	}
	// Images alone, or nothing at all.
	if got, err := s.PutResults([]Image{testImage("c", 4)}, nil); err != nil || got != nil {
		t.Errorf("images alone: %v, %v", got, err)
	}
	if got, err := s.PutResults(nil, nil); err != nil || got != nil {
		t.Errorf("nothing: %v, %v", got, err)
	}
	// A bad record fails the batch, its history included.
	if _, err := s.PutResults([]Image{testImage("d", 5), {Reference: "no key"}}, []HistoryEntry{{Key: "d"}}); err == nil {
		t.Fatal("a record without a key was stored")
	}
	if _, ok, _ := s.Image("d"); ok {
		t.Error("image d of the failed batch is stored")
	}
	hist, err := s.History(0, 0)
	if err != nil || len(hist) != 3 {
		t.Errorf("history after the failed batch: %d entries, %v; want 3", len(hist), err)
	}
}

// TestPutResultsWithOutbox: the notifications of a batch's updates are
// written in the batch's transaction, as AppendHistory's are; a message the
// store refuses takes the batch's images and entries down with it.
func TestPutResultsWithOutbox(t *testing.T) {
	s := openTemp(t)
	saved, err := s.PutResults([]Image{testImage("a", 1), testImage("b", 2)},
		[]HistoryEntry{{Key: "a", ToTag: "2"}}, WithOutbox(routeTo("phone", "mail")))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"phone", "mail"} {
		msgs, err := s.Outbox(n)
		if err != nil || len(msgs) != 1 || len(msgs[0].Updates) != 1 || msgs[0].Updates[0] != saved[0] || saved[0].Seq != 1 {
			t.Fatalf("%s's outbox: %+v, %v; want one message with the saved entry %+v", n, msgs, err, saved)
		}
	}
	// Images alone route nothing.
	if _, err := s.PutResults([]Image{testImage("c", 3)}, nil, WithOutbox(routeTo("phone"))); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := s.Outbox("phone"); len(msgs) != 1 {
		t.Errorf("phone has %d messages after a batch without updates, want 1", len(msgs))
	}

	bad := func(saved []HistoryEntry) []OutboxMessage {
		return []OutboxMessage{{Notifier: "", Updates: saved}}
	}
	if _, err := s.PutResults([]Image{testImage("d", 4)}, []HistoryEntry{{Key: "d"}}, WithOutbox(bad)); err == nil {
		t.Fatal("a message without a notifier was stored")
	}
	if _, ok, _ := s.Image("d"); ok {
		t.Error("the image of the refused batch is stored")
	}
	if h, _ := s.History(0, 0); len(h) != 1 {
		t.Errorf("history has %d entries after the refused batch, want 1", len(h))
	}
}

// TestCrashSafetyResults kills a child writing with PutResults at
// different moments: each batch's images and history entries are on disk
// together or not at all, which two transactions cannot promise.
func TestCrashSafetyResults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	deadline := time.Now().Add(60 * time.Second)
	for round, r := range []struct {
		afterBatches int
		delay        time.Duration
	}{{1, 0}, {6, 3 * time.Millisecond}, {3, 11 * time.Millisecond}, {9, 23 * time.Millisecond}} {
		reported := killChild(t, path, round, r.afterBatches, r.delay, time.Until(deadline), crashResultsEnv+"=1")
		s, err := Open(path, WithLockTimeout(5*time.Second))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		imgs, err := s.Images()
		if err != nil {
			t.Fatal(err)
		}
		hist, err := s.History(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := s.Outbox("phone")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		have := map[string]bool{}
		for _, img := range imgs {
			have[img.Key] = true
		}
		for _, e := range hist {
			have[e.Key] = true
		}
		batches := 0
		for b := 0; ; b++ {
			n := 0
			for i := range crashImages {
				if have[crashImageKey(round, b, i)] {
					n++
				}
			}
			for i := range crashHistory {
				if have[crashHistoryKey(round, b, i)] {
					n++
				}
			}
			if n == 0 {
				break
			}
			if n != crashImages+crashHistory {
				t.Fatalf("round %d: batch %d has %d of its %d records", round, b, n, crashImages+crashHistory)
			}
			batches++
		}
		if batches < reported {
			t.Fatalf("round %d: %d batches reported, %d on disk", round, reported, batches)
		}
		if want := fmt.Sprint(batches * crashHistory); fmt.Sprint(countRound(hist, round)) != want {
			t.Fatalf("round %d: %d history entries of this round, want %s", round, countRound(hist, round), want)
		}
		// Each batch's notification is there with its entries, or neither:
		// a message per whole batch, holding exactly its entries.
		inRound := 0
		for _, m := range msgs {
			if countRound(m.Updates, round) == 0 {
				continue
			}
			inRound++
			if len(m.Updates) != crashHistory {
				t.Fatalf("round %d: a message holds %d updates, want its batch's %d", round, len(m.Updates), crashHistory)
			}
			for _, u := range m.Updates {
				if !have[u.Key] || u.Seq == 0 {
					t.Fatalf("round %d: message for %s (seq %d), whose history entry is not stored", round, u.Key, u.Seq)
				}
			}
		}
		if inRound != batches {
			t.Fatalf("round %d: %d outbox messages for %d whole batches", round, inRound, batches)
		}
		t.Logf("round %d: killed after %d reported batches; %d whole batches on disk", round, reported, batches)
	}
}

func countRound(hist []HistoryEntry, round int) int {
	n := 0
	prefix := fmt.Sprintf("r%d-", round)
	for _, e := range hist {
		if len(e.Key) > len(prefix) && e.Key[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}
