package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bigStore writes a store the size of the house plan's largest case:
// 10,000 images and 50,000 history entries with one sent mark each, and
// returns its path, closed.
func bigStore(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "tagwatch.db")
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Image, 10000)
	for i := range batch {
		batch[i] = testImage(fmt.Sprintf("ghcr.io/example/image-%05d:latest@linux/amd64", i), i)
	}
	if err := s.PutImages(batch); err != nil {
		b.Fatal(err)
	}
	for round := range 50 {
		hist := make([]HistoryEntry, 1000)
		for i := range hist {
			img := batch[(round*1000+i)%len(batch)]
			hist[i] = HistoryEntry{At: t0.Add(time.Duration(round) * time.Hour), Key: img.Key, Reference: img.Reference, Registry: "ghcr.public",
				Update: "patch", FromTag: "1.2.3", ToTag: fmt.Sprintf("1.2.%d", 4+round), FromDigest: img.Digest, ToDigest: img.LatestDigest}
		}
		saved, err := s.AppendHistory(hist)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range saved {
			if err := s.OutboxSent("phone", 0, []string{fmt.Sprintf("%s %s", e.Reference, e.ToTag)}, e.At); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkOpen measures what verifying a big file on open costs: Open
// with its walk over every page, Open without it, and the full Check
// (every record decoded, then bbolt's own check). It reports the file size.
func BenchmarkOpen(b *testing.B) {
	path := bigStore(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		run  func() error
	}{
		{"walk", func() error {
			s, err := Open(path)
			if err != nil {
				return err
			}
			return s.Close()
		}},
		{"nowalk", func() error {
			s, err := Open(path, WithoutVerify())
			if err != nil {
				return err
			}
			return s.Close()
		}},
		{"check", func() error {
			s, err := Open(path, ReadOnly(), WithoutVerify())
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := s.Check()
			if err == nil && len(rep.Problems) > 0 {
				err = fmt.Errorf("problems: %v", rep.Problems)
			}
			return err
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if err := bm.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
		})
	}
}

// sizes are the bytes of s's file up to its highest page in use (what a
// compacted copy would need, free pages aside), its free pages, and the
// file's size, which bbolt grows in steps of up to 16 MiB.
func sizes(b *testing.B, s *Store) (used int64, free int, file int64) {
	b.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	return used, s.db.Stats().FreePageN, fi.Size()
}

// BenchmarkYearOfCycles is a year of six-hourly cycles (1,460) on 1,000
// images, into a new file, as `tagwatch serve` writes them: each cycle
// rewrites every image record, records its updates with one outbox message
// each for one notifier, delivers them (sent mark, message deleted), and
// prunes the history when a retention is set. Updates come at a rate of
// one new version per image every 30 days on average (about 8 a cycle).
// It prints the sizes every quarter and reports the final ones.
func BenchmarkYearOfCycles(b *testing.B) {
	const images, cycles = 1000, 1460
	for _, tc := range []struct {
		name string
		keep Retention
	}{
		{"none", Retention{}},
		{"keep2000", Retention{Keep: 2000}},
		{"maxage90d", Retention{MaxAge: 90 * 24 * time.Hour}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var size, used int64
			var hist int
			for b.Loop() {
				rng := rand.New(rand.NewPCG(1, 2))
				s, err := Open(filepath.Join(b.TempDir(), "tagwatch.db"))
				if err != nil {
					b.Fatal(err)
				}
				batch := make([]Image, images)
				version := make([]int, images)
				for i := range batch {
					batch[i] = testImage(fmt.Sprintf("ghcr.io/example/image-%04d:1.0.0 linux/amd64", i), 0)
				}
				for cycle := range cycles {
					now := t0.Add(time.Duration(cycle) * 6 * time.Hour)
					var ups []HistoryEntry
					for i := range batch {
						batch[i].LastChecked = now
						if rng.IntN(120) == 0 { // 120 cycles = 30 days
							version[i]++
							batch[i].LatestTag = fmt.Sprintf("1.0.%d", version[i])
							ups = append(ups, HistoryEntry{At: now, Key: batch[i].Key, Reference: batch[i].Reference, Registry: "ghcr.public",
								Update: "patch", FromTag: "1.0.0", ToTag: batch[i].LatestTag, FromDigest: batch[i].Digest, ToDigest: batch[i].LatestDigest})
						}
					}
					if err := s.PutImages(batch); err != nil {
						b.Fatal(err)
					}
					route := func(saved []HistoryEntry) []OutboxMessage {
						out := make([]OutboxMessage, len(saved))
						for i, e := range saved {
							out[i] = OutboxMessage{Notifier: "phone", Updates: []HistoryEntry{e}, CreatedAt: now}
						}
						return out
					}
					if _, err := s.AppendHistory(ups, WithOutbox(route)); err != nil {
						b.Fatal(err)
					}
					msgs, err := s.Outbox("phone")
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range msgs {
						e := m.Updates[0]
						if err := s.OutboxSent("phone", m.ID, []string{e.Reference + " " + e.ToTag + " " + e.ToDigest}, now); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := s.PruneHistory(tc.keep, now); err != nil {
						b.Fatal(err)
					}
					if (cycle+1)%365 == 0 {
						used, free, file := sizes(b, s)
						b.Logf("%s: after %d cycles (%d days): %.2f MiB of pages in use, %d free pages, file %.2f MiB",
							tc.name, cycle+1, (cycle+1)/4, float64(used)/(1<<20), free, float64(file)/(1<<20))
					}
				}
				h, err := s.History(0, 0)
				if err != nil {
					b.Fatal(err)
				}
				hist = len(h)
				used, _, size = sizes(b, s)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(used)/(1<<20), "used-MiB")
			b.ReportMetric(float64(size)/(1<<20), "file-MiB")
			b.ReportMetric(float64(hist), "history-entries")
		})
	}
}

// BenchmarkPruneHistory is the retention's cost after a cycle, on a
// history at its bound of 10,000 entries with a sent mark each: "idle"
// has nothing to remove (the usual cycle), "cycle" first records a
// cycle's 8 updates, which pushes 8 entries and their marks out.
func BenchmarkPruneHistory(b *testing.B) {
	const keep = 10000
	s := openTemp(b)
	var entries []HistoryEntry
	for i := range keep {
		entries = append(entries, HistoryEntry{At: t0.Add(time.Duration(i) * time.Minute), Key: fmt.Sprint(i), Reference: "ghcr.io/example/app:1.0.0",
			Update: "patch", FromTag: "1.0.0", ToTag: fmt.Sprintf("1.0.%d", i)})
	}
	saved, err := s.AppendHistory(entries)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.update(func(tx *bolt.Tx) error {
		for _, e := range saved {
			k, _ := pairKey("phone", e.Reference+" "+e.ToTag)
			if err := put(tx.Bucket(bucketSent), bucketSent, k, sentRecord{At: e.At.Add(time.Second)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	r := Retention{Keep: keep}
	now := t0.Add(keep * time.Minute)
	b.Run("idle", func(b *testing.B) {
		for b.Loop() {
			if p, err := s.PruneHistory(r, now); err != nil || p.History != 0 {
				b.Fatal(p, err)
			}
		}
	})
	b.Run("cycle", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			ups := make([]HistoryEntry, 8)
			for i := range ups {
				now = now.Add(time.Minute)
				ups[i] = HistoryEntry{At: now, Key: "new", Reference: "ghcr.io/example/app:1.0.0", Update: "patch"}
			}
			if _, err := s.AppendHistory(ups); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if p, err := s.PruneHistory(r, now); err != nil || p.History != 8 {
				b.Fatal(p, err)
			}
		}
	})
}
