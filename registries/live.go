package registries

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
)

// Live holds the running Set and swaps it atomically when the instances
// saved from the UI change. Checks in flight keep the Set they started with;
// the next one uses the new Set.
type Live struct {
	cat  Catalog
	opts Options
	file []Config // from the config file and environment: read-only in the UI

	mu  sync.Mutex // serializes Apply
	cur atomic.Pointer[Set]
	ui  []Config
}

// NewLive builds the first Set from the file's instances and the UI's.
func NewLive(cat Catalog, file, ui []Config, o Options) (*Live, error) {
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	if o.large == nil {
		o.large = newLargeLists() // one for every Set this Live makes
	}
	l := &Live{cat: cat, opts: o, file: file}
	if err := l.Apply(ui); err != nil {
		return nil, err
	}
	return l, nil
}

// Set is the running set.
func (l *Live) Set() *Set { return l.cur.Load() }

// Catalog is the kinds this Live knows.
func (l *Live) Catalog() Catalog { return l.cat }

// FromFile reports whether the config file owns an instance: the UI shows
// those read-only and may not save over them.
func (l *Live) FromFile(kind, name string) bool {
	for _, c := range l.file {
		if c.Kind == kind && c.Name == name {
			return true
		}
	}
	return false
}

// ErrFromFile is returned when the UI tries to change an instance the config
// file owns.
var ErrFromFile = errors.New("this registry is defined in the config file; edit it there")

// Apply replaces the UI's instances and swaps in a new Set. Instances whose
// settings did not change are carried over with their token caches.
func (l *Live) Apply(ui []Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var configs []Config
	configs = append(configs, l.file...)
	for _, c := range ui {
		if l.FromFile(c.Kind, c.Name) {
			return fmt.Errorf("registry %s: %w", c.ID(), ErrFromFile)
		}
		c.Source = SourceUI
		configs = append(configs, c)
	}
	next, err := newSet(l.cat, configs, l.opts, l.cur.Load())
	if err != nil {
		return err
	}
	l.ui = ui
	l.cur.Store(next)
	return nil
}

// Check validates and opens one config the way Apply would, without
// swapping anything in: the UI's "Test connection" on unsaved settings.
func (l *Live) Check(c Config) (*Instance, error) {
	return Open(l.cat, c, l.opts)
}

// reusable reports whether an instance of the previous set can serve a config
// unchanged.
func reusable(in *Instance, c Config) bool {
	return in.Kind == c.Kind && in.Name == c.Name && in.Source == c.Source &&
		(c.Source == SourceDefault || maps.Equal(in.raw, c.Values))
}
