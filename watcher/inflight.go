package watcher

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// Tracker follows a running cycle's checks: which registry each one waits
// on, doing what, since when. The status shows it, so that an admin whose
// cycle takes long sees what it is waiting for. Safe for concurrent use; a
// nil *Tracker tracks nothing.
type Tracker struct {
	mu    sync.Mutex
	lanes map[string]*laneTrack // by registry instance ID
}

type laneTrack struct {
	registry, host string
	queued         int
	doing          string // the lane's own step (its token) while no check runs
	since          time.Time
	flights        map[int]*flight
}

// flight is one check in flight. It exists without a Tracker too: the check
// names its current step in its error when a deadline cuts it short.
type flight struct {
	image string
	since time.Time

	mu   sync.Mutex
	step string
}

func (f *flight) doing(what string) {
	f.mu.Lock()
	f.step = what
	f.mu.Unlock()
}

func (f *flight) what() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step
}

func (t *Tracker) lane(registry string) *laneTrack {
	if t.lanes == nil {
		t.lanes = map[string]*laneTrack{}
	}
	l, ok := t.lanes[registry]
	if !ok {
		l = &laneTrack{registry: registry, flights: map[int]*flight{}}
		t.lanes[registry] = l
	}
	return l
}

func (t *Tracker) queue(registry, host string, n int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	l := t.lane(registry)
	l.host, l.queued = host, l.queued+n
	t.mu.Unlock()
}

// doing sets the lane's own step ("" when done with it).
func (t *Tracker) doing(registry, what string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	l := t.lane(registry)
	l.doing, l.since = what, time.Now()
	t.mu.Unlock()
}

func (t *Tracker) start(registry string, i int, image string) *flight {
	f := &flight{image: image, since: time.Now(), step: "start"}
	if t == nil {
		return f
	}
	t.mu.Lock()
	l := t.lane(registry)
	l.queued--
	l.flights[i] = f
	t.mu.Unlock()
	return f
}

func (t *Tracker) done(registry string, i int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.lane(registry).flights, i)
	t.mu.Unlock()
}

// RegistryWait is one registry a running cycle is waiting for.
type RegistryWait struct {
	Registry string    `json:"registry"` // kind.name
	Host     string    `json:"host"`
	InFlight int       `json:"inFlight"` // checks under way
	Queued   int       `json:"queued"`   // checks waiting for their turn on this registry
	Since    time.Time `json:"since"`    // when the longest-running check (or the token request) started
	Seconds  float64   `json:"seconds"`  // how long that has been
	Doing    string    `json:"doing"`    // what it is doing: "list tags of team/app"
	Images   []string  `json:"images"`   // the checks under way, longest first (up to 5)
}

// Waiting lists the registries with checks under way or queued, the one
// waited on longest first.
func (t *Tracker) Waiting(now time.Time) []RegistryWait {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []RegistryWait
	for _, l := range t.lanes {
		if len(l.flights) == 0 && l.queued <= 0 && l.doing == "" {
			continue
		}
		w := RegistryWait{Registry: l.registry, Host: l.host, InFlight: len(l.flights), Queued: max(l.queued, 0), Images: []string{}}
		fs := make([]*flight, 0, len(l.flights))
		for _, f := range l.flights {
			fs = append(fs, f)
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].since.Before(fs[j].since) })
		switch {
		case len(fs) > 0:
			w.Since, w.Doing = fs[0].since, fs[0].what()
		case l.doing != "":
			w.Since, w.Doing = l.since, l.doing
		default:
			w.Since, w.Doing = now, "waiting for its turn"
		}
		for _, f := range fs[:min(len(fs), 5)] {
			w.Images = append(w.Images, f.image)
		}
		w.Seconds = now.Sub(w.Since).Seconds()
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Registry < out[j].Registry
	})
	return out
}

// waitingSummary is the status line of a running cycle: "3 of 10 checked;
// waiting for 127.0.0.1:5999 (4 images for 12s: list tags of team/slow; 4 queued)".
func waitingSummary(done, total int, waits []RegistryWait) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d checked", done, total)
	for i, w := range waits {
		if i == 3 {
			fmt.Fprintf(&b, ", and %d more", len(waits)-i)
			break
		}
		if i == 0 {
			b.WriteString("; waiting for ")
		} else {
			b.WriteString(", ")
		}
		wait := registries.Duration(time.Duration(w.Seconds) * time.Second)
		host := w.Host
		if host == "" {
			host = w.Registry
		}
		switch {
		case w.InFlight > 0:
			fmt.Fprintf(&b, "%s (%s for %s: %s", host, plural(w.InFlight, "image", "images"), wait, w.Doing)
		default:
			fmt.Fprintf(&b, "%s (%s for %s", host, w.Doing, wait)
		}
		if w.Queued > 0 {
			fmt.Fprintf(&b, "; %d queued", w.Queued)
		}
		b.WriteString(")")
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
