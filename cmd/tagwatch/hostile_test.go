package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// peakLimit is the memory a tagwatch process may reach, whatever its
// registries send.
const peakLimit = 100 << 20

// hostileCase is one misbehaving registry of the bad-day test: the images
// it serves and what each one's error must say. The words are
// registries.Explain's: the error is one sentence naming the host and the
// instance, the detail adds the facts (the request, the limit).
type hostileCase struct {
	m      regtest.Misbehaviour
	name   string // its registry instance: custom.NAME
	images int
	want   []string // one of them, in each image's error
	detail []string // one of them, in each image's error detail (none: no demand)
}

// TestBadDay is issue 12's bad day, run through the real binary: a healthy
// registry (the real distribution registry) next to six that misbehave
// (one sends its tag lists at a byte a second, one links to another page
// forever, one sends a 100 MB tag list, one garbage, one redirects in a
// loop, one answers 429 to everything), with short limits.
//
// `tagwatch serve` shows every healthy image's result through the API
// while the slow registry still holds the cycle, says what the cycle is
// waiting for (status, and Check now), ends the cycle at its deadline with
// every hostile image stored with an error that names its cause, and never
// goes past 100 MB. Then `tagwatch check` on the same images exits 1 within
// its --timeout, also under 100 MB.
//
// Memory is the children's peak resident set size (getrusage's ru_maxrss,
// which Go's os.ProcessState reports): what the kernel counted, for the
// real binary built as the Dockerfile builds it, not the race-instrumented
// test binary.
func TestBadDay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for deadlines")
	}
	bin := tagwatchBinary(t)
	reg := regtest.Start(t, regtest.Options{})
	var healthy []string
	for _, repo := range []string{"team/a", "team/b", "team/c"} {
		d := reg.Push(t, repo+":1.0.0", regtest.Image(t, repo))
		reg.Tag(t, repo, d, "1.1.0")
		healthy = append(healthy, reg.Host+"/"+repo+":1.0.0")
	}
	// The limits below: requests 4s, images 8s, the cycle 10s. The slow
	// registry's 12 images, 4 in flight at a time, cannot all be checked
	// before the cycle ends. Each ends on its request's deadline (4s), on
	// its own (8s: under load its list waited for room behind the first
	// round), or is cut by the cycle's; which depends on the machine's
	// load, so each is a right answer, and nothing else is.
	cases := []hostileCase{
		{regtest.SlowBody, "slow", 12, []string{"Timed out after 4s waiting for ", "Timed out after 8s waiting for ", "Not checked: the cycle's "}, // the cycle's: serve's 10s, check's 9s
			[]string{"of the body arrived within the 4s request deadline (limits.request)", "deadline passed"}},
		{regtest.EndlessLink, "endless", 1, []string{"exceeds 50 pages (limits.tagpages)"}, nil},
		// Four lists of 100 MB from one registry, read by its four workers
		// at once: memory must not add them up.
		{regtest.HugeTagList, "huge", 4, []string{"exceeds 8 MiB (limits.taglist)"}, nil},
		{regtest.GarbageJSON, "garbage", 1, []string{"sent an answer tagwatch cannot read (custom.garbage)"},
			[]string{"page 1 of the tag list is not valid JSON"}},
		{regtest.RedirectLoop, "loop", 1, []string{"(a redirect loop)"}, nil},
		{regtest.TooManyRequests, "throttled", 1, []string{"kept answering 429 Too Many Requests"}, nil},
	}
	var cfg strings.Builder
	cfg.WriteString("limits: {request: 4s, image: 8s, cycle: 10s, tagpages: 50}\nregistries:\n  custom:\n")
	hosts := map[string]*regtest.Hostile{}
	for _, c := range cases {
		h := regtest.StartHostile(t, c.m)
		hosts[c.name] = h
		// The slow registry is pinned at 4 in flight: its HEADs answer at
		// once, and a limiter left to follow them would grow past its lists'
		// timeouts and let the whole cycle finish before its deadline.
		pin := ""
		if c.m == regtest.SlowBody {
			pin = ", concurrency: 4"
		}
		fmt.Fprintf(&cfg, "    %s: {url: %s%s}\n", c.name, h.URL, pin)
	}
	cfg.WriteString("images:\n")
	for _, ref := range healthy {
		fmt.Fprintf(&cfg, "  - image: %s\n", ref)
	}
	hostileRef := map[string]hostileCase{}
	for _, c := range cases {
		for i := range c.images {
			ref := fmt.Sprintf("%s/%s/app%02d:1.0.0", hosts[c.name].Host, c.name, i)
			hostileRef[ref] = c
			fmt.Fprintf(&cfg, "  - image: %s\n", ref)
		}
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	slow := hosts["slow"].Host

	// ---- tagwatch serve ----
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--data", filepath.Join(dir, "tagwatch.db"), "--listen", "127.0.0.1:0")
	cmd.Env = childEnv()
	start := time.Now()
	c := startChild(t, cmd)
	started := time.Since(start)

	// Every healthy image's result is served while the slow registry still
	// holds the cycle.
	var during watcher.Status
	var healthyAfter time.Duration
	waitFor(t, "the healthy images' results in /api/v1/images", time.Minute, func() bool {
		var got struct{ Images []store.Image }
		c.getJSON(t, "/api/v1/images", &got)
		ok := 0
		for _, img := range got.Images {
			for _, ref := range healthy {
				if img.Reference == ref && img.Error == "" && img.Update == "minor" && img.LatestTag == "1.1.0" {
					ok++
				}
			}
		}
		if ok < len(healthy) {
			return false
		}
		healthyAfter, during = time.Since(start), c.status(t)
		return true
	})
	t.Logf("serve listening after %v; healthy images served after %v; status then: %s", started.Round(time.Millisecond), healthyAfter.Round(time.Millisecond), during.Summary)
	waitsForSlow := false
	for _, w := range during.Waiting {
		waitsForSlow = waitsForSlow || (w.Host == slow && w.Registry == "custom.slow" && w.InFlight == 4 && w.Queued > 0)
	}
	if !during.Running || !waitsForSlow || !strings.Contains(during.Summary, slow+" (4 images for ") {
		t.Errorf("when the healthy images were served the cycle was not waiting for %s: running=%v, waiting %+v, summary %q", slow, during.Running, during.Waiting, during.Summary)
	}
	// Check now, while stuck: it joins and says what the cycle waits for.
	res, err := http.Post(c.base+"/api/v1/check", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Started, Joined bool
		Message         string
		Waiting         []watcher.RegistryWait
	}
	err = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if err != nil || !answer.Joined || !strings.Contains(answer.Message, "joined the check running for") || !strings.Contains(answer.Message, slow+" (4 images for ") {
		t.Errorf("Check now during the stuck cycle: %+v, %v", answer, err)
	}
	t.Logf("Check now answered: %s", answer.Message)

	// The cycle ends at its deadline, every hostile image stored with its cause.
	waitFor(t, "the first cycle to end", time.Minute, func() bool { return c.status(t).Last != nil })
	last := c.status(t).Last
	t.Logf("first cycle: %v, %d images, %d errors, timed out: %v", last.Duration.Round(time.Millisecond), last.Images, last.Errors, last.TimedOut)
	if last.Duration > 10*time.Second+3*time.Second || !last.TimedOut {
		t.Errorf("the cycle took %v (timed out: %v); its deadline is 10s", last.Duration, last.TimedOut)
	}
	var got struct{ Images []store.Image }
	c.getJSON(t, "/api/v1/images", &got)
	checkHostileErrors(t, "serve", hostileRef, func(yield func(ref, err, detail string)) {
		for _, img := range got.Images {
			yield(img.Reference, img.Error, img.ErrorDetail)
		}
	})

	// Check now queued a second cycle, stuck on the same registries:
	// SIGTERM ends it at once.
	stopping := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of SIGTERM")
	}
	t.Logf("serve stopped %v after SIGTERM", time.Since(stopping).Round(time.Millisecond))
	servePeak := peakRSS(t, c.cmd)
	t.Logf("serve's peak RSS: %.1f MiB", float64(servePeak)/(1<<20))
	if servePeak > peakLimit {
		t.Errorf("serve's peak RSS %.1f MiB is over %d MiB", float64(servePeak)/(1<<20), peakLimit>>20)
	}

	// ---- tagwatch check ----
	const timeout = 9 * time.Second
	check := exec.Command(bin, "check", "--json", "--config", cfgPath, "--timeout", timeout.String())
	check.Env = childEnv()
	var stdout, stderr bytes.Buffer
	check.Stdout, check.Stderr = &stdout, &stderr
	start = time.Now()
	if err := check.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- check.Wait() }()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		check.Process.Kill()
		<-exited
		t.Fatalf("tagwatch check --timeout %v still running after a minute", timeout)
	}
	took := time.Since(start)
	checkPeak := peakRSS(t, check)
	t.Logf("tagwatch check --timeout %v: exit %d after %v, peak RSS %.1f MiB; stderr: %s", timeout, check.ProcessState.ExitCode(),
		took.Round(time.Millisecond), float64(checkPeak)/(1<<20), strings.TrimSpace(stderr.String()))
	if code := check.ProcessState.ExitCode(); code != exitFailed {
		t.Errorf("exit status %d, want %d", code, exitFailed)
	}
	if took > timeout+3*time.Second {
		t.Errorf("tagwatch check took %v; its deadline is %v", took, timeout)
	}
	if checkPeak > peakLimit {
		t.Errorf("tagwatch check's peak RSS %.1f MiB is over %d MiB", float64(checkPeak)/(1<<20), peakLimit>>20)
	}
	var results []watcher.Result
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("check --json: %v\n%s", err, stdout.String())
	}
	if len(results) != len(healthy)+len(hostileRef) {
		t.Errorf("%d results, want %d", len(results), len(healthy)+len(hostileRef))
	}
	for _, r := range results {
		for _, ref := range healthy {
			if r.Reference == ref && (r.Error != "" || r.Update != watcher.UpdateMinor) {
				t.Errorf("check: healthy %s: update %q, error %q", ref, r.Update, r.Error)
			}
		}
	}
	checkHostileErrors(t, "check", hostileRef, func(yield func(ref, err, detail string)) {
		for _, r := range results {
			yield(r.Reference, r.Error, r.ErrorDetail)
		}
	})
}

// checkHostileErrors checks that every hostile image was reported, with an
// error naming its cause, and logs what each case prints.
func checkHostileErrors(t *testing.T, what string, want map[string]hostileCase, each func(func(ref, err, detail string))) {
	t.Helper()
	seen := map[string]bool{}
	shown := map[regtest.Misbehaviour]bool{}
	mentions := func(s string, list []string) bool {
		for _, w := range list {
			if strings.Contains(s, w) {
				return true
			}
		}
		return false
	}
	each(func(ref, msg, detail string) {
		c, ok := want[ref]
		if !ok {
			return
		}
		seen[ref] = true
		if !mentions(msg, c.want) {
			t.Errorf("%s: %s (%s): error %q names none of %q", what, ref, c.m, msg, c.want)
		}
		if c.detail != nil && !mentions(detail, c.detail) {
			t.Errorf("%s: %s (%s): error detail %q names none of %q", what, ref, c.m, detail, c.detail)
		}
		if !strings.HasPrefix(detail, msg) {
			t.Errorf("%s: %s (%s): error detail %q does not start with the error %q", what, ref, c.m, detail, msg)
		}
		if !shown[c.m] {
			shown[c.m] = true
			t.Logf("%s: %s prints: %s\n\tdetail: %s", what, c.m, msg, detail)
		}
	})
	for ref := range want {
		if !seen[ref] {
			t.Errorf("%s: %s is not reported", what, ref)
		}
	}
}

// childEnv is the environment without tagwatch's own settings (CI's
// TAGWATCH_TEST_* are not tagwatch's) and without a Docker engine.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGWATCH_") && !strings.HasPrefix(kv, "DOCKER_HOST=") {
			env = append(env, kv)
		}
	}
	return env
}

// peakRSS is an exited child's peak resident set size in bytes.
func peakRSS(t testing.TB, cmd *exec.Cmd) int64 {
	t.Helper()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage on %s", runtime.GOOS)
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
