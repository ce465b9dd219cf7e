package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

// BenchmarkLatency is issue 15's table: a full check over a network's round
// trips. One real registry (Debian's docker-registry, anonymous, plain HTTP)
// holds 1,000 repositories × 5 tags, written straight into its storage; a
// regtest.Link in front of it adds a round trip of D to every exchange (and
// to each new connection) and counts, as the registry's side sees them,
// the requests and the most requests in flight at once. For D = 0, 50 ms
// and 200 ms and for 1,000 and 5,000 images (200 and 1,000 repositories ×
// 5 tags) it measures:
//
//   - bare: a plain net/http client making the same requests (one /v2/,
//     each repository's tag list, each repository:tag's HEAD) with 16 in
//     flight: the floor;
//   - check: `tagwatch check --json` of this tree, a child process (wall
//     time from start to exit, peak RSS from the kernel's rusage);
//   - serve: `tagwatch serve` of this tree on the same images: its first
//     cycle's own duration, from its log line (not the process's start);
//   - before: `tagwatch check --json` of another build, with
//     TAGWATCH_BENCH_BEFORE set to its binary or to a git revision of this
//     repository (built into a temporary directory).
//
// It prints one table; each run's results are checked (every image found,
// none failed). On loopback (D = 0) a run takes a second or two of CPU on
// a machine others share: each figure there is the best of three runs.
// Run it with
//
//	TAGWATCH_BENCH_BEFORE=c61659b go test -run XXX -bench Latency -benchtime 1x -timeout 60m ./cmd/tagwatch/
//
// TAGWATCH_BENCH_DELAYS (default 0,50ms,200ms) and TAGWATCH_BENCH_IMAGES
// (default 1000,5000) choose a part of the table. The 5,000 images × 200 ms
// row takes minutes (the before build alone some ten): it runs only with
// TAGWATCH_BENCH_LONG=1.
func BenchmarkLatency(b *testing.B) {
	delays := benchList(b, "TAGWATCH_BENCH_DELAYS", "0,50ms,200ms", func(s string) (time.Duration, error) {
		if s == "0" {
			return 0, nil
		}
		return time.ParseDuration(s)
	})
	counts := benchList(b, "TAGWATCH_BENCH_IMAGES", "1000,5000", strconv.Atoi)
	after := tagwatchBinary(b)
	before := ""
	if rev := os.Getenv("TAGWATCH_BENCH_BEFORE"); rev != "" {
		before = beforeBinary(b, rev)
	}

	const perRepo = 5
	tags := []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"}
	most := 0
	for _, n := range counts {
		most = max(most, n/perRepo)
	}
	reg := regtest.Start(b, regtest.Options{})
	seed := reg.Push(b, "seed/app:1.0.0", regtest.Image(b, "seed"))
	repos := make([]string, most)
	for i := range repos {
		repos[i] = fmt.Sprintf("bench/app%04d", i)
	}
	reg.FillStorage(b, seed, repos, tags...)

	var rows []benchRow
	for range b.N {
		rows = rows[:0]
		for _, n := range counts {
			for _, d := range delays {
				if n > 1000 && d >= 200*time.Millisecond && os.Getenv("TAGWATCH_BENCH_LONG") == "" {
					b.Logf("%d images at D=%v left out: set TAGWATCH_BENCH_LONG=1", n, d)
					continue
				}
				link := regtest.StartLink(b, reg.Host, d)
				dir := b.TempDir()
				cfg := filepath.Join(dir, "config.yml")
				writeBenchConfig(b, cfg, link.Host, repos[:n/perRepo], tags)
				runs := 1
				if d == 0 {
					runs = 3
				}
				measure := func(client string, run func() (time.Duration, int64)) benchRow {
					var best benchRow
					for range runs {
						link.TakePeak()
						reqs, conns := link.Requests(), link.Conns()
						took, rss := run()
						r := benchRow{images: n, delay: d, client: client, took: took, rss: rss,
							requests: link.Requests() - reqs, conns: link.Conns() - conns, peak: link.TakePeak()}
						b.Logf("%s", r)
						if best.took == 0 || r.took < best.took {
							best = r
						}
					}
					return best
				}
				bare := measure("bare client, 16 in flight", func() (time.Duration, int64) {
					return bareClient(b, link.Host, repos[:n/perRepo], tags, 16), 0
				})
				rows = append(rows, bare)
				if before != "" {
					r := measure("before: check", func() (time.Duration, int64) { return benchCheck(b, before, cfg, n) })
					r.floor = bare.took
					rows = append(rows, r)
				}
				r := measure("check", func() (time.Duration, int64) { return benchCheck(b, after, cfg, n) })
				r.floor = bare.took
				rows = append(rows, r)
				var summary string
				r = measure("serve: first cycle", func() (time.Duration, int64) {
					took, rss, s := benchServe(b, after, cfg, filepath.Join(b.TempDir(), "tagwatch.db"))
					summary = s
					return took, rss
				})
				r.floor, r.note = bare.took, summary
				rows = append(rows, r)
				link.Close()
			}
		}
	}
	b.StopTimer()
	printBenchTable(os.Stdout, rows)
}

type benchRow struct {
	images   int
	delay    time.Duration
	client   string
	took     time.Duration
	requests int64
	conns    int64 // connections opened
	peak     int
	rss      int64         // bytes; 0: not measured (in-process)
	floor    time.Duration // the bare client's time on the same images and delay
	note     string
}

func (r benchRow) String() string {
	s := fmt.Sprintf("%d images, D=%v, %s: %.2fs, %.2f req/image, %d connections, %d in flight at most",
		r.images, r.delay, r.client, r.took.Seconds(), float64(r.requests)/float64(r.images), r.conns, r.peak)
	if r.rss > 0 {
		s += fmt.Sprintf(", RSS %.0f MB", float64(r.rss)/1e6)
	}
	if r.note != "" {
		s += "; " + r.note
	}
	return s
}

func printBenchTable(w io.Writer, rows []benchRow) {
	fmt.Fprintln(w, "\n| images | D | client | wall time | × bare | requests/image | connections | peak in flight | peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio, rss := "", "—"
		if r.floor > 0 {
			ratio = fmt.Sprintf("%.2f", r.took.Seconds()/r.floor.Seconds())
		}
		if r.rss > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(r.rss)/1e6)
		}
		fmt.Fprintf(w, "| %d | %v | %s | %.2f s | %s | %.2f | %d | %d | %s |\n",
			r.images, r.delay, r.client, r.took.Seconds(), ratio, float64(r.requests)/float64(r.images), r.conns, r.peak, rss)
	}
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(w, "\nserve, %d images, D=%v: %s", r.images, r.delay, r.note)
		}
	}
	fmt.Fprintln(w)
}

func benchList[T any](b *testing.B, env, def string, parse func(string) (T, error)) []T {
	s := os.Getenv(env)
	if s == "" {
		s = def
	}
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("%s=%s: %v", env, s, err)
		}
		out = append(out, v)
	}
	return out
}

// beforeBinary is rev when it names a file, else the tagwatch binary built
// from that git revision of this repository, as CI builds it.
func beforeBinary(b *testing.B, rev string) string {
	if fi, err := os.Stat(rev); err == nil && !fi.IsDir() {
		return rev
	}
	dir := b.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", rev)
	archive.Dir = "../.."
	var tarball, errb bytes.Buffer
	archive.Stdout, archive.Stderr = &tarball, &errb
	if err := archive.Run(); err != nil {
		b.Fatalf("git archive %s: %v\n%s", rev, err, errb.String())
	}
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		b.Fatalf("untar %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, "tagwatch-before")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/tagwatch")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", rev, err, out)
	}
	return bin
}

func writeBenchConfig(b *testing.B, path, host string, repos, tags []string) {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "registries:\n  custom:\n    bench: {url: http://%s}\nimages:\n", host)
	for _, repo := range repos {
		for _, tag := range tags {
			fmt.Fprintf(&cfg, "  - image: %s/%s:%s\n", host, repo, tag)
		}
	}
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchCheck runs `bin check --json` on the config's images, checks that
// every image was checked, and returns its wall time and peak RSS.
func benchCheck(b *testing.B, bin, cfg string, images int) (time.Duration, int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "--json", "--config", cfg)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s check: %v\n%s", bin, err, lastLines(errb.String()+out.String()))
	}
	var results []struct{ Error, Update string }
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		b.Fatalf("%s check --json: %v", bin, err)
	}
	updates := 0
	for _, r := range results {
		if r.Error != "" {
			b.Fatalf("%s check: %s", bin, r.Error)
		}
		if r.Update != "none" {
			updates++
		}
	}
	// Four tags of five have a newer patch release.
	if len(results) != images || updates != images*4/5 {
		b.Fatalf("%s check: %d results, %d updates; want %d, %d", bin, len(results), updates, images, images*4/5)
	}
	return took, peakRSS(b, cmd)
}

// benchServe starts `bin serve` on a fresh store, waits for its first cycle's
// log line and stops it; it returns the cycle's duration as logged, the
// peak RSS and the line's account of the registry.
func benchServe(b *testing.B, bin, cfg, db string) (time.Duration, int64, string) {
	cmd := exec.Command(bin, "serve", "--config", cfg, "--data", db, "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = childEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	type cycle struct {
		took    time.Duration
		summary string
		err     error
	}
	done := make(chan cycle, 1)
	var logTail []string
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			mu.Lock()
			logTail = append(logTail, sc.Text())
			if len(logTail) > 20 {
				logTail = logTail[1:]
			}
			mu.Unlock()
			var line struct {
				Msg        string          `json:"msg"`
				Images     int             `json:"images"`
				Errors     int             `json:"errors"`
				Duration   json.RawMessage `json:"duration"`
				Registries string          `json:"registries"`
			}
			if sent || json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "cycle done" {
				continue
			}
			sent = true
			c := cycle{summary: line.Registries}
			c.took, c.err = parseLogDuration(line.Duration)
			if c.err == nil && line.Errors != 0 {
				c.err = fmt.Errorf("the cycle had %d errors of %d images", line.Errors, line.Images)
			}
			done <- c
		}
	}()
	var c cycle
	select {
	case c = <-done:
	case <-time.After(20 * time.Minute):
		c.err = fmt.Errorf("no cycle done within 20 minutes")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if c.err != nil {
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("%s serve: %v\n%s", bin, c.err, strings.Join(logTail, "\n"))
	}
	return c.took, peakRSS(b, cmd), c.summary
}

// parseLogDuration reads slog's JSON form of a duration: nanoseconds, or a
// string such as "1.5s".
func parseLogDuration(raw json.RawMessage) (time.Duration, error) {
	var ns int64
	if err := json.Unmarshal(raw, &ns); err == nil {
		return time.Duration(ns), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("duration %s: %v", raw, err)
	}
	return time.ParseDuration(s)
}

// bareClient makes the requests a check needs, and no more, with a plain
// net/http client and inFlight requests at a time: GET /v2/, then each
// repository's tag list and each repository:tag's manifest HEAD.
func bareClient(b *testing.B, host string, repos, tags []string, inFlight int) time.Duration {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: inFlight}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	do := func(method, path string) error {
		req, err := http.NewRequest(method, "http://"+host+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "+
			"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			return err
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %s", method, path, res.Status)
		}
		return nil
	}
	start := time.Now()
	if err := do(http.MethodGet, "/v2/"); err != nil {
		b.Fatal(err)
	}
	work := make(chan [2]string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				if err := do(w[0], w[1]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, repo := range repos {
		work <- [2]string{http.MethodGet, "/v2/" + repo + "/tags/list"}
		for _, tag := range tags {
			work <- [2]string{http.MethodHead, "/v2/" + repo + "/manifests/" + tag}
		}
	}
	close(work)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return time.Since(start)
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
