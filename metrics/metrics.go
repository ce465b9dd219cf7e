// Package metrics exposes tagwatch's state to Prometheus, on a registry of
// its own (never the global default one).
//
// Most series are read at scrape time from where the state already lives:
// the running registry set's request counters and rate-limit state, the
// store's image records (read once per cycle, on the first scrape after
// it), and the notifiers' counters. Only what exists nowhere else is kept
// here: per-check durations and results, and the last cycle's time and
// duration, overall and per registry.
package metrics

import (
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Store is what the metrics read of the store.
type Store interface {
	Images() ([]store.Image, error)
}

// Options say where the metrics read the state.
type Options struct {
	// Registries returns the running registry set (registries.Live.Set).
	Registries func() *registries.Set
	// Store holds the watched images and their last results.
	Store Store
	// Notifiers returns the notifiers' counters (notify.Notifiers.Status);
	// nil when there are none.
	Notifiers func() []notify.Status
	// Watchers returns the watchers and how their last listings went
	// (watcher.Daemon.Watchers); nil leaves the watcher series out.
	Watchers func() []store.WatcherState
	Log      *slog.Logger
}

// UpdateKinds are the values of tagwatch_updates_available's kind label;
// every one is reported, zero or not.
var UpdateKinds = []string{"major", "minor", "patch", "build", "prerelease", "digest"}

// Metrics collects tagwatch's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	checkDuration *prometheus.HistogramVec
	checks        *prometheus.CounterVec

	mu          sync.Mutex
	cycles      int64
	lastCycle   time.Duration
	lastSuccess time.Time
	lastLanes   []watcher.RegistryReport // the last cycle's, per registry instance
	dirty       bool                     // a cycle ended since the store was last read
	snap        *snapshot
}

// snapshot is what one read of the store says.
type snapshot struct {
	images     int
	failing    int
	updates    map[string]int
	registries []string // instance IDs the images name
	newest     time.Time
	// placed are the images with an update, one per place that runs them.
	placed []placedUpdate
}

// placedUpdate is an update where it runs: the labels of
// tagwatch_update_available_where.
type placedUpdate struct {
	watcher, kind, place, reference, update, latest string
}

// New makes the metrics and their registry.
func New(o Options) *Metrics {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	m := &Metrics{
		opts: o,
		reg:  prometheus.NewRegistry(),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tagwatch_check_duration_seconds",
			Help:    "How long checking one image took (listing tags, heading digests, waiting for the registry's turn), by registry instance.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"registry"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagwatch_checks_total",
			Help: "Image checks, by registry instance and result (ok or error).",
		}, []string{"registry", "result"}),
		dirty: true,
	}
	m.reg.MustRegister(
		m.checkDuration, m.checks, collector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in Prometheus' exposition formats: mount it at
// GET /metrics.
func Handler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.opts.Log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// Gatherer is the metrics' registry, for tests and for embedding in
// another exposition.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// ObserveCheck records one image check: set it as watcher.Checker.Observe.
func (m *Metrics) ObserveCheck(r watcher.Result, took time.Duration) {
	reg := r.Registry
	if reg == "" {
		reg = "none" // no instance could serve the image
	}
	result := "ok"
	if r.Error != "" {
		result = "error"
	}
	m.checkDuration.WithLabelValues(reg).Observe(took.Seconds())
	m.checks.WithLabelValues(reg, result).Inc()
}

// ObserveCycle records a finished cycle: call it from watcher.Daemon.OnCycle.
// It does no I/O: the store is read again on the next scrape.
func (m *Metrics) ObserveCycle(rep watcher.CycleReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cycles++
	m.lastCycle = rep.Duration
	m.lastLanes = rep.Registries
	if !rep.Aborted {
		m.lastSuccess = rep.StartedAt.Add(rep.Duration)
	}
	m.dirty = true
}

// state returns the store snapshot (read again when a cycle ended since)
// and the cycle figures.
func (m *Metrics) state() (snap *snapshot, cycles int64, last time.Duration, success time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if (m.dirty || m.snap == nil) && m.opts.Store != nil {
		if s, err := readStore(m.opts.Store); err != nil {
			m.opts.Log.Warn("metrics: reading the store", "err", err)
		} else {
			m.snap, m.dirty = s, false
		}
	}
	success = m.lastSuccess
	if success.IsZero() && m.snap != nil {
		// No cycle since start (a restart skips a recent one): the store
		// knows when images were last checked.
		success = m.snap.newest
	}
	return m.snap, m.cycles, m.lastCycle, success
}

func readStore(st Store) (*snapshot, error) {
	imgs, err := st.Images()
	if err != nil {
		return nil, err
	}
	s := &snapshot{images: len(imgs), updates: map[string]int{}}
	regs := map[string]bool{}
	for _, img := range imgs {
		if img.Error != "" {
			s.failing++
		}
		s.updates[img.Update]++
		if img.Registry != "" {
			regs[img.Registry] = true
		}
		if img.LastChecked.After(s.newest) {
			s.newest = img.LastChecked
		}
		if img.Update == "" || img.Update == "none" || img.Update == "unknown" {
			continue
		}
		for _, l := range img.Where {
			s.placed = append(s.placed, placedUpdate{l.Watcher, l.Kind, l.Place, img.Reference, img.Update, img.LatestTag})
		}
	}
	for r := range regs {
		s.registries = append(s.registries, r)
	}
	sort.Strings(s.registries)
	return s, nil
}

var (
	descImages      = prometheus.NewDesc("tagwatch_images_watched", "Images watched (one per reference and platform), as last stored.", nil, nil)
	descFailing     = prometheus.NewDesc("tagwatch_images_failing", "Watched images whose last check failed.", nil, nil)
	descUpdates     = prometheus.NewDesc("tagwatch_updates_available", "Watched images with an update available, by kind.", []string{"kind"}, nil)
	descLastSuccess = prometheus.NewDesc("tagwatch_last_successful_cycle_timestamp_seconds", "When the last complete check cycle ended (before any cycle since start: when an image was last checked), unix seconds.", nil, nil)
	descCycleDur    = prometheus.NewDesc("tagwatch_cycle_duration_seconds", "How long the last check cycle took.", nil, nil)
	descCycles      = prometheus.NewDesc("tagwatch_cycles_total", "Check cycles run since start.", nil, nil)
	descRequests    = prometheus.NewDesc("tagwatch_registry_requests_total", "HTTP requests sent to a registry instance, by class (ping, token, tags, manifest, other).", []string{"registry", "class"}, nil)
	descReqErrors   = prometheus.NewDesc("tagwatch_registry_request_errors_total", `Registry requests that failed, by HTTP status ("404", "429", …) or "network".`, []string{"registry", "status"}, nil)
	descThrottled   = prometheus.NewDesc("tagwatch_registry_throttled_total", "429 answers a registry instance sent and tagwatch waited out.", []string{"registry"}, nil)
	descRemaining   = prometheus.NewDesc("tagwatch_registry_pulls_remaining", "Pulls left in the rate-limit window, as the registry's ratelimit-remaining header last said (Docker Hub).", []string{"registry"}, nil)
	descInFlight    = prometheus.NewDesc("tagwatch_registry_requests_in_flight", "Requests in flight to a registry instance now.", []string{"registry"}, nil)
	descConcLimit   = prometheus.NewDesc("tagwatch_registry_concurrency_limit", "Requests a registry instance may have in flight now: where its limiter stands, following the registry's answers up to the kind's ceiling (or pinned by its concurrency variable).", []string{"registry"}, nil)
	descLaneDur     = prometheus.NewDesc("tagwatch_registry_cycle_duration_seconds", "How long the last check cycle took on a registry instance, from its first request to its last answer.", []string{"registry"}, nil)
	descLanePeak    = prometheus.NewDesc("tagwatch_registry_cycle_peak_in_flight", "The most requests in flight at once to a registry instance during the last check cycle.", []string{"registry"}, nil)
	descLimit       = prometheus.NewDesc("tagwatch_registry_pulls_limit", "Pulls allowed per rate-limit window, as the registry's ratelimit-limit header last said (Docker Hub).", []string{"registry"}, nil)
	descNSent       = prometheus.NewDesc("tagwatch_notifier_sends_total", "Notifications delivered, by notifier.", []string{"notifier"}, nil)
	descNFailed     = prometheus.NewDesc("tagwatch_notifier_failures_total", "Notifications given up on (refused, or not sent within the retry window), by notifier.", []string{"notifier"}, nil)
	descNRetries    = prometheus.NewDesc("tagwatch_notifier_retries_total", "Notification tries that failed and were tried again, by notifier.", []string{"notifier"}, nil)
	descNQueued     = prometheus.NewDesc("tagwatch_notifier_queue_length", "Notifications waiting in the outbox to be sent, by notifier.", []string{"notifier"}, nil)
	descNUndeliv    = prometheus.NewDesc("tagwatch_notifier_undelivered", "Notifications given up on and kept in the outbox for Retry now, by notifier.", []string{"notifier"}, nil)
	descWatcherUp   = prometheus.NewDesc("tagwatch_watcher_up", "1 when the watcher's last listing worked, 0 when it failed (its images are kept, marked stale); absent before its first listing.", []string{"watcher", "kind"}, nil)
	descWatcherOK   = prometheus.NewDesc("tagwatch_watcher_last_listed_timestamp_seconds", "When the watcher's last listing that worked ended, unix seconds.", []string{"watcher", "kind"}, nil)
	descWatcherImgs = prometheus.NewDesc("tagwatch_watcher_images", "Images in use the watcher's last listing that worked found (one per container, service or pod container).", []string{"watcher", "kind"}, nil)
	descPlaced      = prometheus.NewDesc("tagwatch_update_available_where", "1 for each place that runs an image with an update: the watcher, the kind of source that found it (docker, swarm, podman, kubernetes, containerd, config) and the place within it.", []string{"watcher", "kind", "place", "reference", "update", "latest_tag"}, nil)
)

// collector reads the current state at scrape time.
type collector struct{ m *Metrics }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descImages, descFailing, descUpdates, descLastSuccess, descCycleDur, descCycles,
		descRequests, descReqErrors, descThrottled, descRemaining, descLimit,
		descInFlight, descConcLimit, descLaneDur, descLanePeak,
		descNSent, descNFailed, descNRetries, descNQueued, descNUndeliv,
		descWatcherUp, descWatcherOK, descWatcherImgs, descPlaced} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	snap, cycles, last, success := m.state()
	m.mu.Lock()
	lanes := m.lastLanes
	m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	if snap != nil {
		gauge(descImages, float64(snap.images))
		gauge(descFailing, float64(snap.failing))
		for _, k := range UpdateKinds {
			gauge(descUpdates, float64(snap.updates[k]), k)
		}
		seen := map[placedUpdate]bool{}
		for _, p := range snap.placed {
			if !seen[p] { // one image twice on one place (two platforms) is one series
				seen[p] = true
				gauge(descPlaced, 1, p.watcher, p.kind, p.place, p.reference, p.update, p.latest)
			}
		}
	}
	if m.opts.Watchers != nil {
		for _, w := range m.opts.Watchers() {
			if w.LastTried.IsZero() {
				continue
			}
			up := 1.0
			if w.Error != "" {
				up = 0
			}
			gauge(descWatcherUp, up, w.Name, w.Kind)
			gauge(descWatcherImgs, float64(w.Images), w.Name, w.Kind)
			if !w.LastListed.IsZero() {
				gauge(descWatcherOK, float64(w.LastListed.UnixNano())/1e9, w.Name, w.Kind)
			}
		}
	}
	if !success.IsZero() {
		gauge(descLastSuccess, float64(success.UnixNano())/1e9)
	}
	if cycles > 0 {
		gauge(descCycleDur, last.Seconds())
	}
	counter(descCycles, float64(cycles))
	for _, l := range lanes {
		gauge(descLaneDur, l.Duration.Seconds(), l.Registry)
		gauge(descLanePeak, float64(l.PeakInFlight), l.Registry)
	}

	if m.opts.Registries != nil {
		for _, in := range instances(m.opts.Registries(), snap) {
			id := in.ID()
			st := in.Stats()
			for class, n := range st.RequestsByClass() {
				counter(descRequests, float64(n), id, class)
			}
			for status, n := range st.ErrorsByStatus() {
				counter(descReqErrors, float64(n), id, status)
			}
			counter(descThrottled, float64(st.Throttled()), id)
			if lim := in.Limiter(); lim != nil {
				gauge(descInFlight, float64(lim.InFlight()), id)
				gauge(descConcLimit, float64(lim.Limit()), id)
			}
			if rl := st.RateLimit(); !rl.Seen.IsZero() {
				gauge(descRemaining, float64(rl.Remaining), id)
				gauge(descLimit, float64(rl.Limit), id)
			}
		}
	}

	if m.opts.Notifiers != nil {
		for _, s := range m.opts.Notifiers() {
			counter(descNSent, float64(s.Sent), s.Name)
			counter(descNFailed, float64(s.Failed), s.Name)
			counter(descNRetries, float64(s.Retries), s.Name)
			gauge(descNQueued, float64(s.Queued), s.Name)
			gauge(descNUndeliv, float64(s.Undelivered), s.Name)
		}
	}
}

// instances are the set's instances plus the implicit ones (made on the fly
// for hosts no instance serves) that the stored images name: the set keeps
// those apart, and Resolve hands back the one it made.
func instances(set *registries.Set, snap *snapshot) []*registries.Instance {
	if set == nil {
		return nil
	}
	out := append([]*registries.Instance(nil), set.Instances()...)
	have := map[string]bool{}
	for _, in := range out {
		have[in.ID()] = true
	}
	if snap == nil {
		return out
	}
	for _, id := range snap.registries {
		host, ok := strings.CutPrefix(id, "custom.")
		if !ok || have[id] {
			continue
		}
		in, err := set.Resolve(registries.Image{Host: host})
		if err != nil || in.ID() != id {
			continue
		}
		have[id] = true
		out = append(out, in)
	}
	return out
}
