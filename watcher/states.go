package watcher

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tagwatch/tagwatch/store"
)

// A source that cannot be listed (an engine down, a socket gone, a cluster
// refusing the token) must not make its images vanish, nor hold up the other
// sources: its images are kept as they were last listed, each location
// marked stale since the first failed listing, and the watcher's state says
// why. The next listing that works clears both.

// loadStates reads the stored watcher states once, so that a restart that
// skips its start-up cycle still shows which watcher was failing.
func (d *Daemon) loadStates() {
	d.statesOnce.Do(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.states == nil {
			d.states = map[string]store.WatcherState{}
		}
		saved, err := d.Store.Watchers()
		if err != nil {
			d.Log.Error("reading the watchers' states", "err", err)
			return
		}
		for _, w := range saved {
			if _, ok := d.states[w.Name]; !ok {
				d.states[w.Name] = w
			}
		}
	})
}

// pruneStates forgets stored states of watchers no longer configured.
func (d *Daemon) pruneStates() {
	configured := map[string]bool{}
	for _, s := range d.Sources {
		configured[s.Source.Name()] = true
	}
	d.mu.Lock()
	var gone []string
	for name := range d.states {
		if !configured[name] {
			gone = append(gone, name)
			delete(d.states, name)
		}
	}
	d.mu.Unlock()
	if err := d.Store.DeleteWatchers(gone); err != nil {
		d.Log.Error("forgetting removed watchers", "err", err)
	}
}

// Watchers is every configured watcher with how its last listing went,
// sorted by name. A watcher not listed yet has only a name and a kind.
func (d *Daemon) Watchers() []store.WatcherState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]store.WatcherState, 0, len(d.Sources))
	for _, s := range d.Sources {
		name := s.Source.Name()
		w, ok := d.states[name]
		if !ok {
			w = store.WatcherState{Name: name}
		}
		if k, ok := s.Source.(Kinder); ok {
			w.Kind = k.Kind()
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// maxProblems bounds the problems a state keeps: an engine of a thousand
// mislabelled containers must not make a huge record.
const maxProblems = 20

// listed records a listing that worked, or partly worked (bad are the
// containers left out); it returns the state to store.
func (d *Daemon) listed(src Source, at time.Time, found []Found, bad ContainerErrors) store.WatcherState {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := store.WatcherState{Name: src.Name(), LastListed: at, LastTried: at, Images: len(found)}
	for i, e := range bad {
		if i == maxProblems {
			w.Problems = append(w.Problems, fmt.Sprintf("… and %d more", len(bad)-maxProblems))
			break
		}
		w.Problems = append(w.Problems, e.Error())
	}
	w.Kind = sourceKind(src, found, d.states[w.Name].Kind)
	d.setState(w)
	return w
}

// failed records a listing that failed; it returns the state to store.
// Its images stay stale since the first failure.
func (d *Daemon) failed(src Source, at time.Time, err error) store.WatcherState {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.states[src.Name()]
	w.Name, w.Error, w.LastTried = src.Name(), err.Error(), at
	w.Kind = sourceKind(src, nil, w.Kind)
	if w.FailingSince.IsZero() {
		w.FailingSince = at
	}
	d.setState(w)
	return w
}

func (d *Daemon) setState(w store.WatcherState) {
	if d.states == nil {
		d.states = map[string]store.WatcherState{}
	}
	d.states[w.Name] = w
}

// sourceKind is what a source says it is, else the kind its locations
// name (a kubernetes source's are all "kubernetes"), else what was known.
func sourceKind(src Source, found []Found, known string) string {
	if k, ok := src.(Kinder); ok {
		return k.Kind()
	}
	for _, f := range found {
		if f.Location.Kind != "" {
			return f.Location.Kind
		}
	}
	return known
}

// keptLocations are the locations of prev a cycle keeps besides the ones
// it found: those of watchers that did not run in it (a cycle of due
// sources only) as they were, and those of watchers whose listing failed,
// marked stale since their first failure.
func keptLocations(prev []store.Location, ran map[string]bool, failing map[string]time.Time) []store.Location {
	var out []store.Location
	for _, l := range prev {
		if since, ok := failing[l.Watcher]; ok {
			if l.StaleSince.IsZero() {
				l.StaleSince = since
			}
			out = append(out, l)
			continue
		}
		if !ran[l.Watcher] {
			out = append(out, l)
		}
	}
	return out
}

// staleRecord is prev, not found by any source this cycle, as the cycle
// leaves it: ok is false when nothing keeps it (every watcher that found it
// listed it no more), changed when its locations moved or went stale.
func staleRecord(prev store.Image, ran map[string]bool, failing map[string]time.Time) (img store.Image, ok, changed bool) {
	kept := keptLocations(prev.Where, ran, failing)
	if len(kept) == 0 {
		return prev, false, false
	}
	changed = !slices.Equal(kept, prev.Where)
	prev.Where = kept
	return prev, true, changed
}
