package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/robfig/cron/v3"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// DefaultCron checks every six hours.
const DefaultCron = "0 */6 * * *"

// Scheduled is a source with its schedule.
type Scheduled struct {
	Source Source
	Cron   string // standard 5-field cron; "" = DefaultCron
}

// Store is what the daemon needs of the bbolt store.
type Store interface {
	Images() ([]store.Image, error)
	// PutResults stores checked images and the updates they newly show,
	// in one transaction (with their notifications, store.WithOutbox).
	PutResults([]store.Image, []store.HistoryEntry, ...store.HistoryOption) ([]store.HistoryEntry, error)
	DeleteImages(keys []string) error
	PruneHistory(store.Retention, time.Time) (store.Pruned, error)
	Watchers() ([]store.WatcherState, error)
	PutWatchers([]store.WatcherState) error
	DeleteWatchers(names []string) error
}

// Daemon runs check cycles on schedule and on demand, and keeps their
// results in the store. One cycle runs at a time.
type Daemon struct {
	Sources  []Scheduled
	Checker  *Checker
	Store    Store
	Log      *slog.Logger
	Platform v1.Platform // default platform for targets that do not say
	// Jitter is the most a scheduled cycle is delayed at random, so many
	// tagwatch instances do not hit a registry at the same second.
	Jitter time.Duration
	// OnCycle, when set, receives each finished cycle's report (notifiers, metrics).
	OnCycle func(CycleReport)
	// Route, when set, makes the notifications of a cycle's new updates.
	// They are written to the store's outbox in the transaction that
	// records the updates, so a crash loses neither or both.
	Route store.Router
	// Retention bounds the history; it is applied after each cycle.
	Retention store.Retention

	trigger chan struct{}
	once    sync.Once

	mu      sync.Mutex
	status  Status
	tracker *Tracker // the running cycle's
	// states are the watchers' listing states (states.go), loaded from
	// the store once.
	states     map[string]store.WatcherState
	statesOnce sync.Once
}

// Status is what the UI shows of the daemon.
type Status struct {
	Running   bool      `json:"running"`
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Deadline is when the running cycle is cut short if it is still going.
	Deadline time.Time `json:"deadline,omitzero"`
	// Waiting lists the registries the running cycle is waiting for, the
	// one waited on longest first; Summary says it in one line.
	Waiting []RegistryWait `json:"waiting,omitempty"`
	Summary string         `json:"summary,omitempty"`
	Last    *CycleReport   `json:"last,omitempty"`
	// Watchers are the configured watchers and how their last listings
	// went: an unreachable one says why, and since when.
	Watchers []store.WatcherState `json:"watchers"`
}

// CycleReport sums up one cycle.
type CycleReport struct {
	StartedAt time.Time            `json:"startedAt"`
	Duration  time.Duration        `json:"duration"`
	Images    int                  `json:"images"`
	Errors    int                  `json:"errors"`
	Updates   []store.HistoryEntry `json:"updates"` // newly detected in this cycle
	Sources   map[string]string    `json:"sources"` // source name → "" or its listing error
	Aborted   bool                 `json:"aborted"`
	// TimedOut says the cycle's deadline passed: the images it had not
	// finished carry an error saying what they were waiting for.
	TimedOut bool `json:"timedOut,omitempty"`
	// Registries are what each registry instance's share took: its time,
	// requests and requests in flight, by instance ID.
	Registries []RegistryReport `json:"registries,omitempty"`
}

func (d *Daemon) init() {
	d.once.Do(func() {
		d.trigger = make(chan struct{}, 1)
		if d.Log == nil {
			d.Log = slog.Default()
		}
	})
}

// CheckNow asks for a cycle of every source. It returns false when one is
// already running or asked for: the request joins it rather than starting
// a second.
func (d *Daemon) CheckNow() bool {
	d.init()
	select {
	case d.trigger <- struct{}{}:
		return !d.Status().Running
	default:
		return false
	}
}

// Status reports the running cycle's progress, what it is waiting for, the
// last cycle and the watchers' states.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	s, t := d.status, d.tracker
	d.mu.Unlock()
	if s.Running && t != nil {
		s.Waiting = t.Waiting(time.Now())
		s.Summary = waitingSummary(s.Done, s.Total, s.Waiting)
	}
	s.Watchers = d.Watchers()
	return s
}

// Run checks on start (unless the store shows a recent cycle), then on each
// source's schedule and on CheckNow, until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.init()
	d.loadStates()
	d.pruneStates()
	scheds := make([]cron.Schedule, len(d.Sources))
	for i, s := range d.Sources {
		expr := s.Cron
		if expr == "" {
			expr = DefaultCron
		}
		sc, err := cron.ParseStandard(expr)
		if err != nil {
			return fmt.Errorf("watcher %s: cron %q: %w", s.Source.Name(), expr, err)
		}
		scheds[i] = sc
	}
	next := make([]time.Time, len(d.Sources))
	now := time.Now()
	for i := range next {
		next[i] = scheds[i].Next(now).Add(d.jitter())
	}
	if d.recentlyChecked(now, scheds) {
		d.Log.Info("skipping the start-up check: the store holds a recent cycle")
	} else {
		d.RunCycle(ctx, d.Sources)
	}
	for {
		soonest := time.Time{}
		for _, t := range next {
			if soonest.IsZero() || t.Before(soonest) {
				soonest = t
			}
		}
		var timer <-chan time.Time
		if !soonest.IsZero() {
			t := time.NewTimer(time.Until(soonest))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.trigger:
			d.RunCycle(ctx, d.Sources)
		case <-timer:
			now := time.Now()
			var due []Scheduled
			for i := range next {
				if !next[i].After(now) {
					due = append(due, d.Sources[i])
					next[i] = scheds[i].Next(now).Add(d.jitter())
				}
			}
			d.RunCycle(ctx, due)
		}
	}
}

func (d *Daemon) jitter() time.Duration {
	if d.Jitter <= 0 {
		return 0
	}
	return rand.N(d.Jitter)
}

// recentlyChecked reports whether every stored image was checked within the
// shortest schedule interval: then a restart repeats no work.
func (d *Daemon) recentlyChecked(now time.Time, scheds []cron.Schedule) bool {
	imgs, err := d.Store.Images()
	if err != nil || len(imgs) == 0 || len(scheds) == 0 {
		return false
	}
	interval := time.Duration(1<<63 - 1)
	for _, s := range scheds {
		a := s.Next(now)
		interval = min(interval, s.Next(a).Sub(a))
	}
	for _, img := range imgs {
		if now.Sub(img.LastChecked) > interval {
			return false
		}
	}
	return true
}

// storeEvery and storeBatch set how results reach the store during a
// cycle: in batches, each one transaction, at least once a second. A
// registry that answers at once has its images stored and shown while a
// slow one is still timing out.
const (
	storeEvery = time.Second
	storeBatch = 500
)

// RunCycle lists the sources, checks their images and stores the results as
// they come in, in batches of one transaction each (results and the updates
// they show together). Past the cycle's deadline the images not finished are
// stored with an error saying what they were waiting for. When ctx ends
// (shutdown) mid-cycle, the results already in are stored and the failed
// rest abandoned: their previous records stay. The updates of each batch
// go to the outbox (Route) in the batch's transaction; the history is
// pruned (Retention) once, after the cycle.
func (d *Daemon) RunCycle(ctx context.Context, sources []Scheduled) (rep CycleReport) {
	d.init()
	d.loadStates()
	rep = CycleReport{StartedAt: time.Now().UTC(), Sources: map[string]string{}}
	timeout := orDefault(d.Checker.CycleTimeout, DefaultCycleTimeout)
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, &DeadlineError{Scope: "cycle", Limit: timeout})
	defer cancel()
	tracker := &Tracker{}
	d.setStatus(func(s *Status) {
		*s = Status{Running: true, StartedAt: rep.StartedAt, Deadline: rep.StartedAt.Add(timeout), Last: s.Last}
		d.tracker = tracker
	})
	defer func() {
		rep.Duration = time.Since(rep.StartedAt)
		d.setStatus(func(s *Status) { s.Running = false; s.Last = &rep; d.tracker = nil })
		if d.OnCycle != nil && !rep.Aborted {
			d.OnCycle(rep)
		}
	}()

	groups := map[string]*group{}
	var order []string
	ran := map[string]bool{}
	failing := map[string]time.Time{} // watcher → stale since
	var states []store.WatcherState
	for _, sc := range sources {
		name := sc.Source.Name()
		ran[name] = true
		found, err := sc.Source.List(cctx)
		var bad ContainerErrors
		switch {
		case errors.As(err, &bad):
			// The engine answered; only some containers can't be watched.
			rep.Sources[name] = err.Error()
			d.Log.Warn("containers left out", "watcher", name, "err", err)
			states = append(states, d.listed(sc.Source, time.Now().UTC(), found, bad))
		case err != nil:
			rep.Sources[name] = err.Error()
			w := d.failed(sc.Source, time.Now().UTC(), err)
			failing[name] = w.FailingSince
			states = append(states, w)
			d.Log.Warn("listing images failed; keeping its images as they were, marked stale", "watcher", name,
				"since", w.FailingSince, "err", err)
			continue
		default:
			rep.Sources[name] = ""
			states = append(states, d.listed(sc.Source, time.Now().UTC(), found, nil))
		}
		for _, f := range found {
			if f.Target.Platform.OS == "" {
				f.Target.Platform = d.Platform
			}
			k := recordKey(f.Target)
			g, ok := groups[k]
			if !ok {
				g = &group{target: f.Target}
				groups[k] = g
				order = append(order, k)
			}
			g.found = append(g.found, f)
			// One place that cannot tell the digest in use (the config
			// list) is enough to keep a baseline for the record.
			g.target.Track = g.target.Track || f.Target.Track
		}
	}
	sort.Strings(order)
	targets := make([]Target, len(order))
	for i, k := range order {
		targets[i] = groups[k].target
	}
	d.setStatus(func(s *Status) { s.Total = len(targets) })

	prev := map[string]store.Image{}
	if imgs, err := d.Store.Images(); err == nil {
		for _, img := range imgs {
			prev[img.Key] = img
		}
	} else {
		d.Log.Error("reading the store", "err", err)
	}
	withBaselines(targets, order, prev)

	type finished struct {
		i int
		r Result
	}
	in := make(chan finished, 64)
	checker := *d.Checker
	checker.Progress = func(done int) { d.setStatus(func(s *Status) { s.Done = done }) }
	checker.Done = func(i int, r Result) { in <- finished{i, r} }
	checker.Tracker = tracker
	var lanesMu sync.Mutex
	checker.LaneDone = func(r RegistryReport) {
		lanesMu.Lock()
		rep.Registries = append(rep.Registries, r)
		lanesMu.Unlock()
	}
	go func() {
		checker.Run(cctx, targets)
		close(in)
	}()

	var opts []store.HistoryOption
	if d.Route != nil {
		opts = append(opts, store.WithOutbox(d.Route))
	}
	var pending []finished
	seen := map[string]bool{}
	flush := func() {
		if len(pending) == 0 {
			return
		}
		records := make([]store.Image, 0, len(pending))
		var history []store.HistoryEntry
		for _, f := range pending {
			k := order[f.i]
			rec := d.record(k, groups[k], f.r, prev[k])
			rec.Where = append(rec.Where, keptLocations(prev[k].Where, ran, failing)...)
			records = append(records, rec)
			if h, ok := newUpdate(prev[k], rec); ok {
				history = append(history, h)
			}
		}
		pending = pending[:0]
		h, err := d.Store.PutResults(records, history, opts...)
		if err != nil {
			d.Log.Error("storing results", "images", len(records), "updates", len(history), "err", err)
			return
		}
		rep.Updates = append(rep.Updates, h...)
	}
	tick := time.NewTicker(storeEvery)
	defer tick.Stop()
collect:
	for {
		select {
		case f, ok := <-in:
			if !ok {
				break collect
			}
			if f.r.Error != "" && ctx.Err() != nil {
				rep.Aborted = true
				continue // abandoned by a shutdown: keep the previous record
			}
			seen[order[f.i]] = true
			rep.Images++
			if f.r.Error != "" {
				rep.Errors++
				d.Log.Debug("check failed", "image", f.r.Reference, "registry", f.r.Registry, "reason", f.r.Error, "detail", f.r.ErrorDetail, "said", f.r.Raw())
			}
			pending = append(pending, f)
			if len(pending) >= storeBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
	flush()
	rep.TimedOut = cctx.Err() != nil && ctx.Err() == nil

	// Images not checked this cycle: a failing watcher's are kept, marked
	// stale; the rest are gone.
	var gone []string
	var stale []store.Image
	for k, img := range prev {
		if seen[k] || rep.Aborted {
			continue
		}
		switch kept, ok, changed := staleRecord(img, ran, failing); {
		case !ok:
			gone = append(gone, k)
		case changed:
			stale = append(stale, kept)
		}
	}
	if err := d.Store.PutWatchers(states); err != nil {
		d.Log.Error("storing the watchers' states", "err", err)
	}
	if _, err := d.Store.PutResults(stale, nil); err != nil {
		d.Log.Error("storing the images of watchers that failed to list", "images", len(stale), "err", err)
	}
	if len(gone) > 0 {
		if err := d.Store.DeleteImages(gone); err != nil {
			d.Log.Error("removing images no longer watched", "err", err)
		}
	}
	if d.Retention.Enabled() {
		p, err := d.Store.PruneHistory(d.Retention, time.Now().UTC())
		if err != nil {
			d.Log.Error("pruning history", "err", err)
		} else if p.History > 0 {
			d.Log.Info("history pruned", "entries", p.History, "sent_marks", p.Sent, "failed_messages", p.Outbox,
				"keep", d.Retention.Keep, "maxage", d.Retention.MaxAge)
		}
	}
	sort.Slice(rep.Registries, func(i, j int) bool { return rep.Registries[i].Registry < rep.Registries[j].Registry })
	d.Log.Info("cycle done", "images", rep.Images, "errors", rep.Errors, "updates", len(rep.Updates),
		"duration", time.Since(rep.StartedAt).Round(time.Millisecond), "aborted", rep.Aborted, "timedOut", rep.TimedOut,
		"registries", registriesSummary(rep.Registries))
	return rep
}

// registriesSummary is the cycle log line's account of each registry:
// "hub.public: 40 images in 1.2s, 52 requests, at most 16 in flight (limit 16 of 16)".
func registriesSummary(rs []RegistryReport) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		limit := fmt.Sprintf("limit %d of %d", r.Limit, r.Ceiling)
		if r.Pinned {
			limit = fmt.Sprintf("pinned at %d", r.Ceiling)
		}
		parts[i] = fmt.Sprintf("%s: %s in %s, %s, at most %d in flight (%s)", r.Registry, plural(r.Images, "image", "images"),
			r.Duration.Round(time.Millisecond), plural(int(r.Requests), "request", "requests"), r.PeakInFlight, limit)
	}
	return strings.Join(parts, "; ")
}

type group struct {
	target Target
	found  []Found
}

func (d *Daemon) setStatus(f func(*Status)) {
	d.mu.Lock()
	f(&d.status)
	d.mu.Unlock()
}

// recordKey names one checked thing: a reference, for one platform, from
// one digest in use, through the registry instance it names, if any.
// Containers that share all four share a check.
func recordKey(t Target) string {
	k := t.Image.Name() + ":" + t.Image.Tag + " " + t.Platform.String()
	if t.Digest != "" {
		k += " " + t.Digest
	}
	if t.Options.Registry != "" {
		k += " via " + t.Options.Registry
	}
	return k
}

func (d *Daemon) record(key string, g *group, r Result, prev store.Image) store.Image {
	rec := store.Image{
		Key:          key,
		Image:        r.Image,
		Reference:    r.Reference,
		Registry:     r.Registry,
		Platform:     g.target.Platform.String(),
		Tag:          r.Tag,
		Digest:       r.Digest,
		LatestTag:    r.LatestTag,
		LatestDigest: r.LatestDigest,
		Update:       string(r.Update),
		Error:        r.Error,
		ErrorDetail:  r.ErrorDetail,
		FirstSeen:    prev.FirstSeen,
		LastChecked:  r.CheckedAt,
		Baseline:     r.Baseline,
		AcceptedAt:   prev.AcceptedAt,
	}
	if rec.FirstSeen.IsZero() {
		rec.FirstSeen = r.CheckedAt
	}
	if r.Error != "" && prev.Key != "" {
		// A failed check says nothing new about the image: it keeps what
		// the last check that got through found, so that the same update
		// found again once the registry answers is not news twice.
		rec.LatestTag, rec.LatestDigest, rec.Update = prev.LatestTag, prev.LatestDigest, prev.Update
		if rec.Digest == "" {
			rec.Digest = prev.Digest
		}
		if g.target.tracked() {
			rec.Baseline, rec.Digest = prev.Baseline, prev.Digest
		}
	}
	for _, f := range g.found {
		rec.Where = append(rec.Where, f.Location)
		if rec.DisplayName == "" {
			rec.DisplayName = f.DisplayName
		}
		if rec.Link == "" && f.LinkTemplate != "" {
			link, err := renderLink(f.LinkTemplate, g.target.Image, r)
			if err != nil {
				d.Log.Warn("link template", "image", r.Reference, "err", err)
			}
			rec.Link = link
		}
	}
	if rec.Link == "" {
		rec.Link = registries.PageURL(g.target.Image)
	}
	return rec
}

// newUpdate says whether a result is an update not recorded before: a new
// latest tag or digest. The same update found again is not news.
func newUpdate(prev, now store.Image) (store.HistoryEntry, bool) {
	switch UpdateKind(now.Update) {
	case UpdateNone, UpdateUnknown, "":
		return store.HistoryEntry{}, false
	}
	if prev.Update == now.Update && prev.LatestTag == now.LatestTag && prev.LatestDigest == now.LatestDigest {
		return store.HistoryEntry{}, false
	}
	return store.HistoryEntry{
		At:         now.LastChecked,
		Key:        now.Key,
		Reference:  now.Reference,
		Registry:   now.Registry,
		Update:     now.Update,
		FromTag:    now.Tag,
		ToTag:      now.LatestTag,
		FromDigest: now.Digest,
		ToDigest:   now.LatestDigest,
	}, true
}

// LinkData is what a link.template can use: {{.Repository}}, {{.Tag}}, {{.LatestTag}}, …
type LinkData struct {
	Host, Repository, Tag, LatestTag, Digest, LatestDigest string
}

func renderLink(tmpl string, img registries.Image, r Result) (string, error) {
	t, err := template.New("link").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = t.Execute(&b, LinkData{Host: img.Host, Repository: img.Repository, Tag: r.Tag, LatestTag: r.LatestTag, Digest: r.Digest, LatestDigest: r.LatestDigest})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// ParseLinkTemplate checks a link template at load time.
func ParseLinkTemplate(s string) error {
	_, err := template.New("link").Parse(s)
	if err != nil {
		return errors.New("link.template: " + err.Error())
	}
	return nil
}

func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	return *p, nil
}
