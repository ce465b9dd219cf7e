package notify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// logBuffer collects a test's logs, to look for secrets in them.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "tagwatch.db")
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fast are options for tests: short backoff, logs kept.
func fast(logs *logBuffer) notify.Options {
	o := notify.Options{Backoff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}, Timeout: 5 * time.Second}
	if logs != nil {
		o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// start parses the notifiers and runs them until the test ends.
func start(t *testing.T, st notify.Store, settings map[string]map[string]string, o notify.Options) *notify.Notifiers {
	t.Helper()
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	var specs []*notify.Spec
	for _, name := range names {
		s, err := notify.Parse(name, settings[name])
		if err != nil {
			t.Fatalf("notifier %s: %v", name, err)
		}
		specs = append(specs, s)
	}
	n, err := notify.New(specs, st, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

const (
	haRef  = "ghcr.io/home-assistant/home-assistant:2024.10.1"
	haLink = "https://github.com/home-assistant/core/releases/tag/2024.11.0"
)

// haUpdate is a minor update whose image record (link, display name) is in st.
func haUpdate(t *testing.T, st *store.Store) store.HistoryEntry {
	t.Helper()
	now := time.Now().UTC()
	img := store.Image{
		Key: haRef + " linux/amd64", Image: haRef, Reference: haRef, Registry: "ghcr.public", Platform: "linux/amd64",
		DisplayName: "Home Assistant", Link: haLink, Where: []store.Location{
			{Watcher: "k3s", Kind: "kubernetes", Place: "home/Deployment/home-assistant/home-assistant"},
			{Watcher: "local", Kind: "swarm", Place: "home/ha", Container: "home_ha", StaleSince: now.Add(-time.Hour)},
			{Watcher: "config", Kind: "config"},
		},
		Tag: "2024.10.1", Digest: "sha256:" + strings.Repeat("a", 64), LatestTag: "2024.11.0", LatestDigest: "sha256:" + strings.Repeat("b", 64),
		Update: "minor", LastChecked: now,
	}
	if err := st.PutImages([]store.Image{img}); err != nil {
		t.Fatal(err)
	}
	return store.HistoryEntry{
		Seq: 1, At: now, Key: img.Key, Reference: haRef, Registry: img.Registry, Update: "minor",
		FromTag: img.Tag, ToTag: img.LatestTag, FromDigest: img.Digest, ToDigest: img.LatestDigest,
	}
}

// update makes a history entry with no image record.
func update(ref, kind, from, to string) store.HistoryEntry {
	return store.HistoryEntry{
		At: time.Now().UTC(), Key: ref + " linux/amd64", Reference: ref, Registry: "hub.public", Update: kind,
		FromTag: from, ToTag: to, FromDigest: "sha256:" + strings.Repeat("1", 64), ToDigest: "sha256:" + strings.Repeat(kind[:1], 64),
	}
}

// hook hands a cycle's updates to the notifiers the way a cycle that
// recorded them without an outbox would (the daemon routes them in the
// transaction instead: TestRouteInTheHistoryTransaction).
func hook(n *notify.Notifiers) func(watcher.CycleReport) {
	return func(rep watcher.CycleReport) { n.Notify(rep.Updates) }
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestServices sends one update through real HTTP receivers standing in for
// ntfy, Gotify, a webhook and an Apprise API, and a real SMTP server, and
// reads what each got.
func TestServices(t *testing.T) {
	st := openStore(t, "")
	e := haUpdate(t, st)
	title := "tagwatch: " + haRef + " minor update"

	t.Run("ntfy", func(t *testing.T) {
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			fmt.Fprintf(w, `{"id":"x1","time":%d,"event":"message","topic":"updates"}`, time.Now().Unix())
		})
		n := start(t, st, map[string]map[string]string{
			"phone": {"url": "ntfy://" + rc.host() + "/updates?scheme=http&priority=high", "threshold": "minor", "images": `^ghcr\.io/home-assistant/`},
		}, fast(nil))
		hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
		h := rc.wait(t, 1)[0]
		if h.Method != http.MethodPost || h.Path != "/updates" {
			t.Errorf("%s %s", h.Method, h.Path)
		}
		if h.Header.Get("Title") != title || h.Header.Get("Priority") != "High" {
			t.Errorf("title %q priority %q", h.Header.Get("Title"), h.Header.Get("Priority"))
		}
		wantContains(t, "ntfy body", string(h.Body), "Home Assistant: ghcr.io/home-assistant/home-assistant", "2024.10.1 → 2024.11.0", "(minor update)", haLink,
			"\non k3s · home/Deployment/home-assistant/home-assistant (kubernetes), local · home/ha (swarm, stale), config list\n")
	})

	t.Run("gotify", func(t *testing.T) {
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			fmt.Fprint(w, `{"id":7,"appid":1,"message":"m","title":"t","priority":0,"date":"2024-05-01T12:00:00Z"}`)
		})
		n := start(t, st, map[string]map[string]string{
			"gotify": {"url": "gotify://" + rc.host() + "/AbCdEfGhIjKlMnO?disabletls=yes"},
		}, fast(nil))
		hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
		h := rc.wait(t, 1)[0]
		if h.Path != "/message" || (h.Query != "token=AbCdEfGhIjKlMnO" && h.Header.Get("X-Gotify-Key") != "AbCdEfGhIjKlMnO") {
			t.Errorf("path %s query %s", h.Path, h.Query)
		}
		m := decodeJSON(t, h.Body)
		if m["title"] != title {
			t.Errorf("title %v", m["title"])
		}
		wantContains(t, "gotify message", fmt.Sprint(m["message"]), "2024.10.1 → 2024.11.0", "minor", haLink)
	})

	t.Run("webhook", func(t *testing.T) {
		rc := newReceiver(t, nil)
		n := start(t, st, map[string]map[string]string{
			"hook": {"url": rc.URL + "/hook?source=tagwatch", "type": "webhook"},
		}, fast(nil))
		hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
		h := rc.wait(t, 1)[0]
		if h.Method != http.MethodPost || h.Path != "/hook" || h.Query != "source=tagwatch" || h.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s?%s %s", h.Method, h.Path, h.Query, h.Header.Get("Content-Type"))
		}
		m := decodeJSON(t, h.Body)
		if m["notifier"] != "hook" || m["title"] != title || m["test"] != false {
			t.Errorf("payload %v", m)
		}
		ups, _ := m["updates"].([]any)
		if len(ups) != 1 {
			t.Fatalf("updates %v", m["updates"])
		}
		u := ups[0].(map[string]any)
		want := map[string]any{
			"reference": haRef, "image": "ghcr.io/home-assistant/home-assistant", "displayName": "Home Assistant",
			"registry": "ghcr.public", "platform": "linux/amd64", "update": "minor", "tag": "2024.10.1", "latestTag": "2024.11.0",
			"digest": e.FromDigest, "latestDigest": e.ToDigest, "link": haLink, "detectedAt": e.At.Format(time.RFC3339Nano),
		}
		for k, v := range want {
			if u[k] != v {
				t.Errorf("updates[0].%s = %v, want %v", k, u[k], v)
			}
		}
		if w := fmt.Sprint(u["where"]); w != "[k3s · home/Deployment/home-assistant/home-assistant (kubernetes) local · home/ha (swarm, stale) config list]" {
			t.Errorf("updates[0].where = %s", w)
		}
	})

	t.Run("apprise", func(t *testing.T) {
		rc := newReceiver(t, nil)
		n := start(t, st, map[string]map[string]string{
			"apprise": {"url": rc.URL + "/notify/tagwatch", "type": "apprise"},
		}, fast(nil))
		hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
		h := rc.wait(t, 1)[0]
		if h.Path != "/notify/tagwatch" || h.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s", h.Path, h.Header.Get("Content-Type"))
		}
		m := decodeJSON(t, h.Body)
		if m["title"] != title || m["type"] != "info" {
			t.Errorf("payload %v", m)
		}
		wantContains(t, "apprise body", fmt.Sprint(m["body"]), "2024.10.1 → 2024.11.0", "minor", haLink)
	})

	t.Run("smtp", func(t *testing.T) {
		srv := startSMTP(t)
		n := start(t, st, map[string]map[string]string{
			"mail": {"url": "smtp://user:s3cret-pw@" + srv.addr + "/?from=tagwatch@lan&to=me@lan&fromname=tagwatch"},
		}, fast(nil))
		hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
		m := srv.wait(t, 1)[0]
		if m.Auth != "user:s3cret-pw" || m.From != "tagwatch@lan" || strings.Join(m.To, ",") != "me@lan" {
			t.Errorf("auth %q from %q to %q", m.Auth, m.From, m.To)
		}
		h, body := headerOf(t, m.Data)
		if h.Get("Subject") != title || h.Get("To") != "me@lan" || !strings.Contains(h.Get("From"), "tagwatch@lan") {
			t.Errorf("headers %v", h)
		}
		wantContains(t, "mail body", body, "2024.10.1 → 2024.11.0", "(minor update)", haLink)
	})
}

// TestTestMessage: Test sends a sample through one notifier, marked as a
// test, and changes no counter.
func TestTestMessage(t *testing.T) {
	rc := newReceiver(t, nil)
	dead := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.Error(w, "no", http.StatusForbidden)
	})
	n := start(t, openStore(t, ""), map[string]map[string]string{
		"hook":   {"url": rc.URL, "type": "webhook", "title": "{{.Notifier}}: {{.Image}} {{.LatestTag}}"},
		"broken": {"url": strings.Replace(dead.URL, "http://", "http://u:hunter2secret@", 1), "type": "apprise"},
	}, fast(nil))
	if err := n.Test(ctxTimeout(t, 5*time.Second), "hook"); err != nil {
		t.Fatal(err)
	}
	m := decodeJSON(t, rc.wait(t, 1)[0].Body)
	if m["test"] != true || m["title"] != "[test] hook: docker.io/library/nginx 1.26.0" {
		t.Errorf("payload %v", m)
	}
	err := n.Test(ctxTimeout(t, 5*time.Second), "broken")
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("broken: %v", err)
	}
	if err := n.Test(context.Background(), "nope"); !errors.Is(err, notify.ErrUnknown) {
		t.Errorf("unknown notifier: %v", err)
	}
	for _, s := range n.Status() {
		if s.Sent != 0 || s.Failed != 0 || s.Retries != 0 {
			t.Errorf("a test changed the counters: %+v", s)
		}
	}
}

// TestDedupeAcrossRestart: an update announced before a restart is not
// announced again after it, on the same bbolt file, even when the history
// repeats it (or another platform of the image reports it).
func TestDedupeAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	rc := newReceiver(t, nil)
	settings := map[string]map[string]string{"hook": {"url": rc.URL, "type": "webhook"}}

	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := haUpdate(t, st)
	n := start(t, st, settings, fast(nil))
	hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{e}})
	rc.wait(t, 1)
	n.Close(ctxTimeout(t, 5*time.Second))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := openStore(t, path)
	n2 := start(t, st2, settings, fast(nil))
	arm := e
	arm.Key = haRef + " linux/arm64"
	other := update("docker.io/library/redis:7.2.4", "patch", "7.2.4", "7.2.5")
	// One queue, in order: once the other update is in, the repeats were handled.
	hook(n2)(watcher.CycleReport{Updates: []store.HistoryEntry{e, arm}})
	hook(n2)(watcher.CycleReport{Updates: []store.HistoryEntry{e, other}})
	hits := rc.wait(t, 2)
	time.Sleep(50 * time.Millisecond)
	if got := rc.count(); got != 2 {
		t.Fatalf("receiver got %d requests, want 2 (the update once, then the other)", got)
	}
	var refs []string
	for _, h := range hits {
		ups := decodeJSON(t, h.Body)["updates"].([]any)
		refs = append(refs, ups[0].(map[string]any)["reference"].(string))
	}
	if refs[0] != haRef || refs[1] != other.Reference {
		t.Errorf("announced %v", refs)
	}
	if sent, err := st2.Sent("hook", notify.Key(other)); err != nil || !sent {
		t.Errorf("other update not marked sent: %v %v", sent, err)
	}
}

// TestFailuresRetryInTheBackground: a receiver answering 500 gets a try
// after each backoff wait until the retry window has passed, the cycle
// does not wait for them, and the message is then given up (kept in the
// outbox, failed) with its error, never with the url's secrets.
func TestFailuresRetryInTheBackground(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	logs := &logBuffer{}
	secrets := []string{"pw-secret-456", "tok-secret-123", "Zq8hT2vX9kLmN4pR7sW1yB3c"}
	u := strings.Replace(rc.URL, "http://", "http://me:pw-secret-456@", 1) + "/hooks/Zq8hT2vX9kLmN4pR7sW1yB3c?token=tok-secret-123"
	o := fast(logs)
	o.RetryFor = 300 * time.Millisecond // waits 10, 20, then 30 ms (a tenth of it) each
	st := openStore(t, "")
	n := start(t, st, map[string]map[string]string{"hook": {"url": u, "type": "webhook"}}, o)

	begin := time.Now()
	hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0")}})
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("OnCycle took %v", took)
	}
	status := waitStatus(t, n, func(s notify.Status) bool { return s.Failed == 1 })
	tookTries := time.Since(begin)
	time.Sleep(100 * time.Millisecond) // no try after giving up
	tries := rc.count()
	// The reason names the status; what the receiver wrote ("boom") goes
	// to the debug log only, never to the status or the outbox.
	const reason = "failed with a server error (500 Internal Server Error) for notifier hook"
	if tries < 4 || status.Retries != int64(tries-1) || status.Sent != 0 || status.Queued != 0 || status.Undelivered != 1 ||
		!strings.Contains(status.LastError, reason) || strings.Contains(status.LastError, "boom") ||
		!strings.Contains(logs.String(), `said="answered 500 Internal Server Error: boom"`) {
		t.Errorf("%d tries; status %+v", tries, status)
	}
	if tookTries < o.RetryFor {
		t.Errorf("given up after %v, before the retry window of %v", tookTries, o.RetryFor)
	}
	msgs, err := st.Outbox("hook")
	if err != nil || len(msgs) != 1 || msgs[0].State != store.OutboxFailed || msgs[0].Tries != tries ||
		!strings.Contains(msgs[0].LastError, reason) || strings.Contains(msgs[0].LastError, "boom") {
		t.Errorf("outbox %+v, %v", msgs, err)
	}
	if h := rc.all()[0]; h.Header.Get("Authorization") == "" || h.Query != "token=tok-secret-123" {
		t.Errorf("basic auth %q, query %q", h.Header.Get("Authorization"), h.Query)
	}
	for _, s := range secrets {
		if strings.Contains(status.LastError, s) || strings.Contains(status.URL, s) || strings.Contains(logs.String(), s) ||
			strings.Contains(fmt.Sprint(msgs), s) {
			t.Errorf("secret %q shown:\nstatus %+v\nlogs:\n%s", s, status, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "notification failed") || !strings.Contains(status.URL, "127.0.0.1:") || !strings.HasSuffix(status.URL, "/***?token=***") {
		t.Errorf("url %s; logs:\n%s", status.URL, logs.String())
	}
	t.Logf("%d tries in %v", tries, tookTries)
}

// TestHangingReceiver: a receiver that never answers does not delay the
// cycle; each try times out and is retried. The messages behind the one
// being tried wait: the receiver only ever sees the oldest. When the retry
// window has passed, they are all given up together, and Close does not
// hang either.
func TestHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	o := fast(nil)
	o.Timeout = 150 * time.Millisecond
	o.RetryFor = time.Second
	n := start(t, openStore(t, ""), map[string]map[string]string{"hook": {"url": rc.URL, "type": "webhook"}}, o)

	var ups []store.HistoryEntry
	for i := range 6 {
		ups = append(ups, update(fmt.Sprintf("docker.io/library/app%d:1.0.0", i), "major", "1.0.0", "2.0.0"))
	}
	begin := time.Now()
	hook(n)(watcher.CycleReport{Updates: ups})
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("OnCycle took %v while the receiver hangs", took)
	}
	waitStatus(t, n, func(s notify.Status) bool { return s.Retries >= 2 && s.Queued == 6 })
	st := waitStatus(t, n, func(s notify.Status) bool { return s.Failed == 6 })
	if st.Queued != 0 || st.Undelivered != 6 || !strings.Contains(st.LastError, "Timed out after") {
		t.Errorf("status %+v", st)
	}
	for _, h := range rc.all() {
		if ref := decodeJSON(t, h.Body)["updates"].([]any)[0].(map[string]any)["reference"]; ref != ups[0].Reference {
			t.Errorf("the receiver was sent %v while the oldest message was failing", ref)
		}
	}
	begin = time.Now()
	n.Close(ctxTimeout(t, 100*time.Millisecond))
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Close took %v", took)
	}
}

func waitStatus(t *testing.T, n *notify.Notifiers, ok func(notify.Status) bool) notify.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := n.Status()[0]
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never got there: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWants: threshold, digest and images decide which updates a notifier
// announces.
func TestWants(t *testing.T) {
	kinds := []string{"major", "minor", "patch", "build", "prerelease", "digest", "futurekind"}
	tests := []struct {
		settings map[string]string
		want     string // the kinds announced, in kinds order
	}{
		{map[string]string{}, "major minor patch build prerelease digest futurekind"},
		{map[string]string{"threshold": "all"}, "major minor patch build prerelease digest futurekind"},
		{map[string]string{"threshold": "digest"}, "major minor patch build prerelease digest"},
		{map[string]string{"threshold": "build"}, "major minor patch build prerelease"},
		{map[string]string{"threshold": "prerelease"}, "major minor patch build prerelease"},
		{map[string]string{"threshold": "patch"}, "major minor patch"},
		{map[string]string{"threshold": "minor"}, "major minor"},
		{map[string]string{"threshold": "major"}, "major"},
		{map[string]string{"threshold": "minor", "digest": "true"}, "major minor digest"},
		{map[string]string{"threshold": "all", "digest": "false"}, "major minor patch build prerelease futurekind"},
		{map[string]string{"threshold": "major", "images": "^ghcr\\.io/"}, ""},
		{map[string]string{"images": "library/nginx"}, "major minor patch build prerelease digest futurekind"},
	}
	for _, tt := range tests {
		vals := map[string]string{"url": "ntfy://ntfy.sh/t"}
		for k, v := range tt.settings {
			vals[k] = v
		}
		s, err := notify.Parse("x", vals)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range kinds {
			if s.Wants(update("docker.io/library/nginx:1.25.3", k, "1.25.3", "9")) {
				got = append(got, k)
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%v: announces %q, want %q", tt.settings, strings.Join(got, " "), tt.want)
		}
	}
	s, _ := notify.Parse("x", map[string]string{"url": "ntfy://ntfy.sh/t"})
	for _, k := range []string{"", "none", "unknown"} {
		e := update("docker.io/library/nginx:1.25.3", "x", "1", "2")
		e.Update = k
		if s.Wants(e) {
			t.Errorf("announces %q", k)
		}
	}
}

// TestBatch: a batch notifier sends one message per cycle with the updates
// it wants; the others send one message per update.
func TestBatch(t *testing.T) {
	batch := newReceiver(t, nil)
	single := newReceiver(t, nil)
	n := start(t, openStore(t, ""), map[string]map[string]string{
		"batch":  {"url": batch.URL, "type": "webhook", "batch": "true", "threshold": "patch", "images": "^docker\\.io/"},
		"single": {"url": single.URL, "type": "webhook", "threshold": "patch", "images": "^docker\\.io/"},
	}, fast(nil))
	ups := []store.HistoryEntry{
		update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0"),
		update("docker.io/library/redis:7.2.4", "patch", "7.2.4", "7.2.5"),
		update("docker.io/library/postgres:16", "major", "16", "17"),
		update("docker.io/library/alpine:latest", "digest", "latest", "latest"), // below the threshold
		update("ghcr.io/acme/app:1.0.0", "major", "1.0.0", "2.0.0"),             // not in images
	}
	hook(n)(watcher.CycleReport{Updates: ups})
	b := batch.wait(t, 1)
	s := single.wait(t, 3)
	time.Sleep(50 * time.Millisecond)
	if batch.count() != 1 || single.count() != 3 {
		t.Fatalf("batch got %d messages, single %d; want 1 and 3", batch.count(), single.count())
	}
	m := decodeJSON(t, b[0].Body)
	if got := len(m["updates"].([]any)); got != 3 || m["title"] != "tagwatch: 3 new updates" {
		t.Errorf("batch: %d updates, title %v", got, m["title"])
	}
	wantContains(t, "batch body", m["body"].(string),
		"- docker.io/library/nginx 1.25.3 → 1.26.0 (minor)", "- docker.io/library/redis 7.2.4 → 7.2.5 (patch)", "- docker.io/library/postgres 16 → 17 (major)")
	var refs []string
	for _, h := range s {
		refs = append(refs, decodeJSON(t, h.Body)["updates"].([]any)[0].(map[string]any)["reference"].(string))
	}
	if strings.Join(refs, " ") != "docker.io/library/nginx:1.25.3 docker.io/library/redis:7.2.4 docker.io/library/postgres:16" {
		t.Errorf("single: %v", refs)
	}
}

// TestTemplates: custom templates, and the default body of a digest update.
func TestTemplates(t *testing.T) {
	rc := newReceiver(t, nil)
	n := start(t, openStore(t, ""), map[string]map[string]string{
		"custom": {"url": rc.URL, "type": "apprise", "title": "{{.Update}}! {{.Image}}", "body": "{{range .Updates}}{{.Tag}}->{{.LatestTag}} {{short .LatestDigest}}{{end}}"},
		"plain":  {"url": rc.URL, "type": "apprise"},
	}, fast(nil))
	hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{update("docker.io/library/alpine:latest", "digest", "latest", "latest")}})
	hits := rc.wait(t, 2)
	got := map[string]map[string]any{}
	for _, h := range hits {
		m := decodeJSON(t, h.Body)
		got[m["title"].(string)] = m
	}
	if m, ok := got["digest! docker.io/library/alpine"]; !ok || m["body"] != "latest->latest sha256:dddddddddddd" {
		t.Errorf("custom: %v", got)
	}
	m, ok := got["tagwatch: docker.io/library/alpine:latest digest update"]
	if !ok {
		t.Fatalf("plain: %v", got)
	}
	if want := "docker.io/library/alpine\nlatest: new image sha256:111111111111 → sha256:dddddddddddd (digest update)"; m["body"] != want {
		t.Errorf("plain body %q, want %q", m["body"], want)
	}
}

// TestDeliveryFollowsNoRedirect: a webhook receiver that answers a delivery
// with a redirect to another server (a hijacked or mistyped url) gets no
// second request there: the body and the url's credentials go to the url
// configured, nowhere else, and the failure says why without the password.
func TestDeliveryFollowsNoRedirect(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, elsewhere.URL+"/collect", status)
			})
			o := fast(nil)
			o.RetryFor = 200 * time.Millisecond
			url := strings.Replace(rc.URL, "http://", "http://u:hunter2secret@", 1) + "/hook"
			n := start(t, openStore(t, ""), map[string]map[string]string{"hook": {"url": url, "type": "webhook"}}, o)
			hook(n)(watcher.CycleReport{Updates: []store.HistoryEntry{update("docker.io/library/nginx:1.26.0", "minor", "1.26.0", "1.27.0")}})
			st := waitStatus(t, n, func(s notify.Status) bool { return s.Failed == 1 })
			if got := rc.all(); len(got) == 0 || got[0].Header.Get("Authorization") == "" {
				t.Fatalf("the configured receiver got %d requests, the first without its credentials", len(got))
			}
			if elsewhere.count() != 0 {
				t.Errorf("the redirect was followed: %+v", elsewhere.all())
			}
			wantContains(t, "last error", st.LastError, fmt.Sprintf("answered %d %s, a redirect tagwatch does not follow", status, http.StatusText(status)))
			if strings.Contains(st.LastError, "hunter2secret") {
				t.Errorf("the last error holds the password: %s", st.LastError)
			}
		})
	}
}
