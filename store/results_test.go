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
