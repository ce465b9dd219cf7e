package metrics_test

import (
	"context"
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

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/metrics"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// scrape GETs /metrics the way Prometheus does and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// series finds the metric of a family whose labels include want.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series %s%v among %v", name, want, fam.GetMetric())
	return nil
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := series(t, fams, name, labels...)
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	t.Fatalf("%s is neither a gauge nor a counter", name)
	return 0
}

// TestScrapeAfterRealCycles runs two cycles against a real registry (one
// configured instance behind a proxy that sends Docker Hub's rate-limit
// headers, and the same registry reached directly through an implicit
// instance), with notifiers, and checks every series on /metrics.
func TestScrapeAfterRealCycles(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "seed"))

	target, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		res.Header.Set("Ratelimit-Limit", "100;w=21600")
		res.Header.Set("Ratelimit-Remaining", "76;w=21600")
		return nil
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	proxyHost := strings.TrimPrefix(proxy.URL, "http://")

	var delivered, refused atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer bad.Close()

	log := slog.New(slog.DiscardHandler)
	st := storetest.Open(t)
	live, err := registries.NewLive(registries.DefaultCatalog(), []registries.Config{{
		Kind: "custom", Name: "reg", Source: registries.SourceFile, Values: registries.Values{"url": proxy.URL},
	}}, nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var specs []*notify.Spec
	for _, nu := range [][2]string{{"bad", bad.URL}, {"hook", good.URL}} {
		s, err := notify.Parse(nu[0], map[string]string{"url": nu[1], "type": "webhook"})
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	nots, err := notify.New(specs, st, notify.Options{Log: log, Backoff: []time.Duration{}})
	if err != nil {
		t.Fatal(err)
	}
	defer nots.Close(context.Background())
	m := metrics.New(metrics.Options{Registries: live.Set, Store: st, Notifiers: nots.Status, Log: log})

	var imgs []watcher.StaticImage
	for _, ref := range []string{proxyHost + "/team/app:1.0.0", proxyHost + "/team/gone:1.0.0", reg.Host + "/team/app:1.0.0"} {
		img, err := registries.ParseImage(ref)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, watcher.StaticImage{Image: img})
	}
	var slowest time.Duration
	d := &watcher.Daemon{
		Sources:  []watcher.Scheduled{{Source: watcher.StaticSource{Images: imgs}}},
		Checker:  &watcher.Checker{Registries: live.Set, Observe: m.ObserveCheck},
		Store:    st,
		Log:      log,
		Platform: regtest.Platform("linux/amd64"),
		// As tagwatch serve wires them: the messages go to the outbox
		// with the updates, OnCycle wakes the senders.
		Route: nots.Route,
		OnCycle: func(rep watcher.CycleReport) {
			begin := time.Now()
			m.ObserveCycle(rep)
			nots.Wake()
			slowest = max(slowest, time.Since(begin))
		},
	}

	begin := time.Now()
	ctx := context.Background()
	if rep := d.RunCycle(ctx, d.Sources); rep.Images != 3 || rep.Errors != 1 || len(rep.Updates) != 0 {
		t.Fatalf("first cycle: %+v", rep)
	}
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "newer"))
	if rep := d.RunCycle(ctx, d.Sources); len(rep.Updates) != 2 {
		t.Fatalf("second cycle found %d updates, want 2: %+v", len(rep.Updates), rep)
	}
	// OnCycle only wakes the senders: a receiver that takes its time must
	// not hold up the cycle (generous, for a loaded CI machine).
	if slowest > 5*time.Second {
		t.Errorf("OnCycle took %v", slowest)
	}
	deadline := time.Now().Add(10 * time.Second)
	count := func(name string, field func(notify.Status) int64) int64 {
		for _, s := range nots.Status() {
			if s.Name == name {
				return field(s)
			}
		}
		return 0
	}
	failed := func() int64 { return count("bad", func(s notify.Status) int64 { return s.Failed }) }
	// The receiver's count moves before the sender records the send: wait
	// for both, or the scrape below races the sender's bookkeeping.
	sent := func() int64 { return count("hook", func(s notify.Status) int64 { return s.Sent }) }
	for delivered.Load() < 2 || failed() < 2 || sent() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("notifications: delivered %d, status %+v", delivered.Load(), nots.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}

	fams := scrape(t, metrics.Handler(m))
	implicit := "custom." + reg.Host
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"tagwatch_images_watched", nil, eq(3), "3"},
		{"tagwatch_images_failing", nil, eq(1), "1"},
		{"tagwatch_updates_available", []string{"kind", "minor"}, eq(2), "2"},
		{"tagwatch_updates_available", []string{"kind", "major"}, eq(0), "0"},
		{"tagwatch_updates_available", []string{"kind", "digest"}, eq(0), "0"},
		{"tagwatch_checks_total", []string{"registry", "custom.reg", "result", "ok"}, eq(2), "2"},
		{"tagwatch_checks_total", []string{"registry", "custom.reg", "result", "error"}, eq(2), "2"},
		{"tagwatch_checks_total", []string{"registry", implicit, "result", "ok"}, eq(2), "2"},
		{"tagwatch_registry_requests_total", []string{"registry", "custom.reg", "class", "tags"}, atLeast(2), ">= 2"},
		{"tagwatch_registry_requests_total", []string{"registry", "custom.reg", "class", "manifest"}, atLeast(2), ">= 2"},
		{"tagwatch_registry_requests_total", []string{"registry", implicit, "class", "tags"}, atLeast(2), ">= 2"},
		{"tagwatch_registry_requests_total", []string{"registry", "hub.public", "class", "tags"}, eq(0), "0"},
		{"tagwatch_registry_request_errors_total", []string{"registry", "custom.reg", "status", "404"}, atLeast(2), ">= 2"},
		{"tagwatch_registry_throttled_total", []string{"registry", "custom.reg"}, eq(0), "0"},
		{"tagwatch_registry_pulls_remaining", []string{"registry", "custom.reg"}, eq(76), "76"},
		{"tagwatch_registry_pulls_limit", []string{"registry", "custom.reg"}, eq(100), "100"},
		{"tagwatch_last_successful_cycle_timestamp_seconds", nil, between(begin, time.Now()), "within the test"},
		{"tagwatch_cycle_duration_seconds", nil, func(v float64) bool { return v > 0 && v < 60 }, "in (0, 60)"},
		{"tagwatch_cycles_total", nil, eq(2), "2"},
		// The cycle is over: nothing in flight; the limit is where the
		// limiter stands, at least one request.
		{"tagwatch_registry_requests_in_flight", []string{"registry", "custom.reg"}, eq(0), "0"},
		{"tagwatch_registry_concurrency_limit", []string{"registry", "custom.reg"}, atLeast(1), ">= 1"},
		{"tagwatch_registry_cycle_duration_seconds", []string{"registry", "custom.reg"}, func(v float64) bool { return v > 0 && v < 60 }, "in (0, 60)"},
		{"tagwatch_registry_cycle_duration_seconds", []string{"registry", implicit}, func(v float64) bool { return v > 0 && v < 60 }, "in (0, 60)"},
		// Two images on custom.reg, a tag list and a HEAD each at once.
		{"tagwatch_registry_cycle_peak_in_flight", []string{"registry", "custom.reg"}, atLeast(1), ">= 1"},
		{"tagwatch_notifier_sends_total", []string{"notifier", "hook"}, eq(2), "2"},
		{"tagwatch_notifier_failures_total", []string{"notifier", "hook"}, eq(0), "0"},
		{"tagwatch_notifier_sends_total", []string{"notifier", "bad"}, eq(0), "0"},
		{"tagwatch_notifier_failures_total", []string{"notifier", "bad"}, eq(2), "2"},
		{"tagwatch_notifier_retries_total", []string{"notifier", "bad"}, eq(0), "0"},
		{"tagwatch_notifier_queue_length", []string{"notifier", "hook"}, eq(0), "0"},
		{"tagwatch_notifier_undelivered", []string{"notifier", "bad"}, eq(2), "2"},
		{"tagwatch_notifier_undelivered", []string{"notifier", "hook"}, eq(0), "0"},
	}
	for _, c := range checks {
		if v := value(t, fams, c.name, c.labels...); !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	for _, id := range []string{"custom.reg", implicit} {
		h := series(t, fams, "tagwatch_check_duration_seconds", "registry", id).GetHistogram()
		if h == nil || h.GetSampleCount() == 0 || h.GetSampleSum() <= 0 {
			t.Errorf("tagwatch_check_duration_seconds{registry=%s} = %v", id, h)
		}
	}
	if h := series(t, fams, "tagwatch_check_duration_seconds", "registry", "custom.reg").GetHistogram(); h.GetSampleCount() != 4 {
		t.Errorf("custom.reg checks timed: %d, want 4", h.GetSampleCount())
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if delivered.Load() != 2 || refused.Load() != 2 {
		t.Errorf("receivers: delivered %d, refused %d", delivered.Load(), refused.Load())
	}

	// A restarted daemon that skips its start-up cycle: the last cycle's
	// time comes from the store until a cycle runs.
	fresh := scrape(t, metrics.Handler(metrics.New(metrics.Options{Registries: live.Set, Store: st, Log: log})))
	stored, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	var newest time.Time
	for _, img := range stored {
		if img.LastChecked.After(newest) {
			newest = img.LastChecked
		}
	}
	if v := value(t, fresh, "tagwatch_last_successful_cycle_timestamp_seconds"); int64(v) != newest.Unix() {
		t.Errorf("before a cycle: last success %v, want %v", v, newest.Unix())
	}
	if _, ok := fresh["tagwatch_cycle_duration_seconds"]; ok {
		t.Error("a cycle duration before any cycle")
	}
	if v := value(t, fresh, "tagwatch_images_watched"); v != 3 {
		t.Errorf("images watched after restart %v", v)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

func between(a, b time.Time) func(float64) bool {
	return func(v float64) bool { return v >= float64(a.Unix()) && v <= float64(b.Unix()+1) }
}
