package watcher_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestSlowRegistryIsolated runs the daemon on a real bbolt file with a
// healthy real registry and a registry that sends every tag list at one
// byte a second, with 13 images: more than it gets through before the
// cycle's deadline with its requests in flight pinned at 4 (concurrency: 4;
// left to follow the registry, its fast answers to HEAD would let more
// tag lists in, and the rounds below would not be whole). The healthy images are stored while the
// slow registry still holds the cycle, the status says what the cycle is
// waiting for, and the cycle ends at its deadline with every slow image
// stored with an error that says why.
func TestSlowRegistryIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for deadlines")
	}
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{})
	var refs []string
	for _, repo := range []string{"team/a", "team/b", "team/c"} {
		d := reg.Push(t, repo+":1.0.0", regtest.Image(t, repo))
		reg.Tag(t, repo, d, "1.1.0")
		refs = append(refs, reg.Host+"/"+repo+":1.0.0")
	}
	slow := regtest.StartHostile(t, regtest.SlowBody)
	const slowImages = 13
	for i := range slowImages {
		refs = append(refs, fmt.Sprintf("%s/slow/app%02d:1.0.0", slow.Host, i))
	}

	const request, cycle = 2 * time.Second, 5 * time.Second
	slowRegistry := registries.Config{Kind: "custom", Name: "slow", Source: registries.SourceFile,
		Values: registries.Values{"url": slow.URL, "concurrency": "4"}}
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{slowRegistry}, registries.Options{Limits: registries.Limits{Request: request}})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t)
	d := &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: watchtest.Images(t, refs...)}}},
		Checker:  &watcher.Checker{Registries: func() *registries.Set { return set }, ImageTimeout: 4 * time.Second, CycleTimeout: cycle},
		Store:    st,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Platform: regtest.Platform("linux/amd64"),
	}
	start := time.Now()
	reports := make(chan watcher.CycleReport, 1)
	go func() { reports <- d.RunCycle(context.Background(), d.Sources) }()

	// The healthy images arrive in the store while the slow registry is
	// still being waited for.
	var healthyAt time.Duration
	var during watcher.Status
	for {
		if time.Since(start) > time.Minute {
			t.Fatal("the healthy images were not stored within a minute")
		}
		imgs := byReference(t, st)
		ok := 0
		for _, r := range refs[:3] {
			if img, found := imgs[r]; found && img.Error == "" && img.Update == "minor" {
				ok++
			}
		}
		if ok == 3 {
			healthyAt = time.Since(start)
			during = d.Status()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("healthy images stored after %v; status then: %s", healthyAt.Round(time.Millisecond), during.Summary)
	if !during.Running {
		t.Fatalf("the cycle had ended when the healthy images were stored (after %v): they waited for the slow registry", healthyAt)
	}
	if len(during.Waiting) == 0 || during.Waiting[0].Host != slow.Host || during.Waiting[0].InFlight != 4 || !strings.HasPrefix(during.Waiting[0].Doing, "list tags of slow/app") {
		t.Errorf("status while stuck: waiting %+v, want the slow registry first, with 4 checks listing tags", during.Waiting)
	}
	if !strings.Contains(during.Summary, "waiting for "+slow.Host+" (4 images for ") || !strings.Contains(during.Summary, "queued") || during.Deadline.IsZero() {
		t.Errorf("status summary %q (deadline %v) does not say what the cycle waits for", during.Summary, during.Deadline)
	}

	var rep watcher.CycleReport
	select {
	case rep = <-reports:
	case <-time.After(time.Minute):
		t.Fatal("the cycle did not end within a minute; its deadline is 5s")
	}
	took := time.Since(start)
	t.Logf("cycle ended after %v (report: %v, timed out: %v, %d images, %d errors)", took.Round(time.Millisecond), rep.Duration.Round(time.Millisecond), rep.TimedOut, rep.Images, rep.Errors)
	if took > cycle+3*time.Second || rep.Duration > cycle+3*time.Second {
		t.Errorf("the cycle took %v (its report says %v), its deadline is %v", took, rep.Duration, cycle)
	}
	if !rep.TimedOut || rep.Aborted || rep.Images != len(refs) || rep.Errors != slowImages || len(rep.Updates) != 3 {
		t.Errorf("report: timedOut=%v aborted=%v images=%d errors=%d updates=%d; want true false %d %d 3",
			rep.TimedOut, rep.Aborted, rep.Images, rep.Errors, len(rep.Updates), len(refs), slowImages)
	}
	if s := d.Status(); s.Running || len(s.Waiting) != 0 {
		t.Errorf("status after the cycle: %+v", s)
	}

	// Every slow image is stored, with an error that says why.
	var timedOut, cut, queued int
	imgs := byReference(t, st)
	for _, r := range refs[3:] {
		img, ok := imgs[r]
		if !ok {
			t.Errorf("%s was not stored", r)
			continue
		}
		// The words are registries.Explain's (sec-web): a sentence naming
		// the host and the instance, the facts in the detail.
		inst := "(" + img.Registry + ")"
		switch e := img.Error; {
		case e == "Timed out after 2s waiting for "+slow.Host+" "+inst+"." &&
			strings.Contains(img.ErrorDetail, "GET /v2/slow/app") && strings.Contains(img.ErrorDetail, "/tags/list: headers and") &&
			strings.Contains(img.ErrorDetail, "of the body arrived within the 2s request deadline (limits.request)"):
			timedOut++
		case strings.HasPrefix(e, "Not checked: the cycle's 5s deadline passed while waiting for "+slow.Host+" "+inst+" to list tags of slow/app"):
			cut++
		case e == "Not checked: the cycle's 5s deadline passed before its turn on "+slow.Host+" "+inst+".":
			queued++
		default:
			t.Errorf("%s: error %q (detail %q)", r, e, img.ErrorDetail)
		}
		if img.Update != "unknown" {
			t.Errorf("%s: update %q, want unknown", r, img.Update)
		}
	}
	t.Logf("slow images: %d timed out on their request, %d cut short by the cycle's deadline, %d never started", timedOut, cut, queued)
	// Two rounds of 4 time out on their request (at 2s and 4s) and the rest
	// are cut by the cycle at 5s; a loaded machine may shift a round.
	if timedOut < 4 || timedOut%4 != 0 || cut+queued < 1 {
		t.Errorf("want whole rounds of 4 timed out on their request, and the rest cut short by the cycle")
	}
	t.Logf("a slow image shows: %s", imgs[refs[3]].Error)
	t.Logf("one past the cycle's deadline shows: %s", imgs[refs[len(refs)-1]].Error)
}

// TestFailedCheckKeepsLastResult: an image whose registry fails for a cycle
// keeps its last result beside the error, so the update found again once
// the registry answers is not recorded (nor announced) a second time.
func TestFailedCheckKeepsLastResult(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	d0 := reg.Push(t, "team/app:1.0.0", regtest.Image(t, "a"))
	reg.Tag(t, "team/app", d0, "1.1.0")
	target, _ := url.Parse(reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && r.URL.Path != "/v2/" {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"maintenance"}]}`, http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	st := storetest.Open(t)
	d := newDaemon(t, st, host+"/team/app:1.0.0")
	ctx := context.Background()
	for i, tt := range []struct {
		broken  bool
		updates int
	}{{false, 1}, {true, 0}, {false, 0}} {
		broken.Store(tt.broken)
		rep := d.RunCycle(ctx, d.Sources)
		img := byReference(t, st)[host+"/team/app:1.0.0"]
		if len(rep.Updates) != tt.updates || img.Update != "minor" || img.LatestTag != "1.1.0" || (img.Error != "") != tt.broken {
			t.Errorf("cycle %d (registry broken: %v): %d new updates, record update=%q latestTag=%q error=%q",
				i+1, tt.broken, len(rep.Updates), img.Update, img.LatestTag, img.Error)
		}
	}
	hist, err := st.History(0, 0)
	if err != nil || len(hist) != 1 {
		t.Errorf("history: %d entries, %v; want the one update once", len(hist), err)
	}
}
