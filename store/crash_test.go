package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child (TestCrashHelperProcess)
// that writes to a store in a loop, SIGKILLs it, and checks what is on disk.
const (
	crashPathEnv  = "TAGWATCH_STORE_CRASH_PATH"
	crashRoundEnv = "TAGWATCH_STORE_CRASH_ROUND"
	// crashResultsEnv makes the child write each batch with one
	// PutResults (with its outbox message) instead of PutImages then
	// AppendHistory.
	crashResultsEnv = "TAGWATCH_STORE_CRASH_RESULTS"

	crashImages  = 200 // images per batch: one PutImages
	crashHistory = 5   // history entries per batch: one AppendHistory
)

func crashImageKey(round, batch, i int) string {
	return fmt.Sprintf("r%d-b%05d-i%03d", round, batch, i)
}

func crashHistoryKey(round, batch, i int) string {
	return fmt.Sprintf("r%d-b%05d-h%d", round, batch, i)
}

// TestCrashHelperProcess is the child side of TestCrashSafety; run on its
// own it does nothing. It writes batches until it is killed, and reports
// each batch on stdout only after both of its transactions returned.
func TestCrashHelperProcess(t *testing.T) {
	path := os.Getenv(crashPathEnv)
	if path == "" {
		t.Skip("child process of TestCrashSafety")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	s, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Bounded, in case the parent dies without killing us.
	for batch := range 100000 {
		imgs := make([]Image, crashImages)
		for i := range imgs {
			imgs[i] = testImage(crashImageKey(round, batch, i), i)
		}
		hist := make([]HistoryEntry, crashHistory)
		for i := range hist {
			hist[i] = HistoryEntry{At: time.Now(), Key: crashHistoryKey(round, batch, i)}
		}
		if os.Getenv(crashResultsEnv) != "" {
			// One notification per batch, in the batch's transaction.
			route := func(saved []HistoryEntry) []OutboxMessage {
				return []OutboxMessage{{Notifier: "phone", Updates: saved}}
			}
			if _, err := s.PutResults(imgs, hist, WithOutbox(route)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			fmt.Printf("committed %d\n", batch)
			continue
		}
		if err := s.PutImages(imgs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if _, err := s.AppendHistory(hist); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Printf("committed %d\n", batch)
	}
	os.Exit(4)
}

// TestCrashSafety kills a writing process at different moments and checks
// after each kill that the file opens, is intact, holds every batch the
// child reported and no part of any other batch, and takes new writes. All
// rounds use the same file, so damage from one kill would show in the next.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	rounds := []struct {
		afterBatches int           // kill once the child reported this many
		delay        time.Duration // and this much later, to land anywhere in a batch
	}{
		{1, 0},
		{8, 3 * time.Millisecond},
		{3, 11 * time.Millisecond},
		{15, 23 * time.Millisecond},
		{5, 37 * time.Millisecond},
	}
	deadline := time.Now().Add(90 * time.Second)

	var keep []string // image keys that every later round must still have
	var histLen int   // history entries committed so far, parent's included
	for round, r := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("out of time before round %d", round)
		}
		reported := killChild(t, path, round, r.afterBatches, r.delay, time.Until(deadline))

		s, err := Open(path, WithLockTimeout(5*time.Second))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if v, err := s.SchemaVersion(); err != nil || v != len(migrations) {
			t.Fatalf("round %d: schema version %d, %v", round, v, err)
		}

		// Images: this round's batches are complete, and form a prefix
		// 0..imgBatches-1 that covers every reported batch.
		imgs, err := s.Images()
		if err != nil {
			t.Fatal(err)
		}
		have := make(map[string]bool, len(imgs))
		for _, img := range imgs {
			have[img.Key] = true
		}
		for _, k := range keep {
			if !have[k] {
				t.Fatalf("round %d: image %s from an earlier round is gone", round, k)
			}
		}
		imgBatches := 0
		for ; have[crashImageKey(round, imgBatches, 0)]; imgBatches++ {
			for i := range crashImages {
				if k := crashImageKey(round, imgBatches, i); !have[k] {
					t.Fatalf("round %d: batch %d is partial: %s missing", round, imgBatches, k)
				}
			}
			keep = append(keep, crashImageKey(round, imgBatches, 0), crashImageKey(round, imgBatches, crashImages-1))
		}
		if imgBatches < reported {
			t.Fatalf("round %d: child reported %d batches, %d are stored", round, reported, imgBatches)
		}
		wantImages := len(keep) / 2 * crashImages
		wantImages += round // the parent's own image per round
		if len(imgs) != wantImages {
			t.Fatalf("round %d: %d images stored, want %d: a partial batch beyond the last whole one?", round, len(imgs), wantImages)
		}

		// History: Seq runs 1..N with no gap, in write order, and this
		// round's entries are whole batches, each written after its images.
		hist, err := s.History(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range hist {
			if want := uint64(len(hist) - i); e.Seq != want {
				t.Fatalf("round %d: history position %d has Seq %d, want %d (gap or disorder)", round, i, e.Seq, want)
			}
		}
		if len(hist) < histLen {
			t.Fatalf("round %d: history shrank from %d to %d", round, histLen, len(hist))
		}
		added := hist[:len(hist)-histLen] // newest first
		if len(added)%crashHistory != 0 {
			t.Fatalf("round %d: %d history entries added, not whole batches of %d", round, len(added), crashHistory)
		}
		histBatches := len(added) / crashHistory
		for i, e := range added {
			batch, n := histBatches-1-i/crashHistory, crashHistory-1-i%crashHistory
			if want := crashHistoryKey(round, batch, n); e.Key != want {
				t.Fatalf("round %d: history Seq %d is %s, want %s", round, e.Seq, e.Key, want)
			}
		}
		if histBatches < reported || histBatches > imgBatches || histBatches < imgBatches-1 {
			t.Fatalf("round %d: %d history batches with %d image batches, %d reported", round, histBatches, imgBatches, reported)
		}

		// The file takes new writes, and Seq carries on.
		if err := s.PutImages([]Image{testImage(fmt.Sprintf("r%d-parent", round), 0)}); err != nil {
			t.Fatalf("round %d: write after crash: %v", round, err)
		}
		got, err := s.AppendHistory([]HistoryEntry{{Key: fmt.Sprintf("r%d-parent", round)}})
		if err != nil {
			t.Fatalf("round %d: append after crash: %v", round, err)
		}
		if got[0].Seq != uint64(len(hist)+1) {
			t.Fatalf("round %d: Seq after crash = %d, want %d", round, got[0].Seq, len(hist)+1)
		}
		histLen = len(hist) + 1
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d reported batches; %d image batches and %d history batches on disk",
			round, reported, imgBatches, histBatches)
	}
}

// killChild starts the writer on path, SIGKILLs it delay after it reported
// afterBatches batches, and returns how many batches it reported in all.
func killChild(t *testing.T, path string, round, afterBatches int, delay, timeout time.Duration, env ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(append(os.Environ(), crashPathEnv+"="+path, crashRoundEnv+"="+strconv.Itoa(round)), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	lines := make(chan int)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				batch, _ := strconv.Atoi(n)
				lines <- batch
			}
		}
	}()

	reported := 0
	timer := time.After(timeout)
wait:
	for reported < afterBatches {
		select {
		case batch, ok := <-lines:
			if !ok {
				break wait
			}
			reported = batch + 1
		case <-timer:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child reported %d of %d batches in %v", round, reported, afterBatches, timeout)
		}
	}
	if reported < afterBatches {
		cmd.Wait()
		t.Fatalf("round %d: child stopped after %d batches: %s", round, reported, stderr.String())
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Lines the child printed before it died count as reported too.
	for batch := range lines {
		reported = batch + 1
	}
	err = cmd.Wait()
	if cmd.ProcessState.ExitCode() != -1 { // -1: ended by a signal
		t.Fatalf("round %d: child was not killed but exited: %v: %s", round, err, stderr.String())
	}
	return reported
}
