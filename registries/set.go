package registries

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// DefaultName is the name of the anonymous instances present by default.
const DefaultName = "public"

// Defaults are the instances present with no configuration at all: the
// kinds the settings page lists as working anonymously, each named "public".
func Defaults(cat Catalog) []Config {
	var out []Config
	for _, k := range cat.Kinds() {
		if cat[k].Spec().Default {
			out = append(out, Config{Kind: k, Name: DefaultName, Source: SourceDefault, Values: Values{}})
		}
	}
	return out
}

// Set is the running set of registry instances. It is immutable once built:
// a settings change builds a new Set and swaps it in, so a check in flight
// keeps the instances it started with.
type Set struct {
	cat       Catalog
	opts      Options
	instances []*Instance // configured (file, UI) first, then defaults

	mu     sync.Mutex
	byHost map[string]*Instance // the instance each host resolved to, implicit ones included
}

// NewSet opens every config. Configured instances override the default of the
// same kind and name (configuring hub.public gives it credentials). Every
// invalid config is reported, not just the first.
func NewSet(cat Catalog, configs []Config, o Options) (*Set, error) {
	return newSet(cat, configs, o, nil)
}

// newSet builds a set, carrying over prev's instances whose settings did not
// change so their tokens stay cached.
func newSet(cat Catalog, configs []Config, o Options, prev *Set) (*Set, error) {
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	if o.large == nil {
		o.large = newLargeLists()
	}
	byID := map[string]Config{}
	for _, c := range Defaults(cat) {
		byID[c.ID()] = c
	}
	for _, c := range configs {
		byID[c.ID()] = c
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := byID[ids[i]], byID[ids[j]]
		if (a.Source == SourceDefault) != (b.Source == SourceDefault) {
			return b.Source == SourceDefault
		}
		if na, nb := narrowed(cat, a), narrowed(cat, b); na != nb {
			return na
		}
		return ids[i] < ids[j]
	})
	s := &Set{cat: cat, opts: o, byHost: map[string]*Instance{}}
	var errs []error
	for _, id := range ids {
		c := byID[id]
		if prev != nil {
			if in, ok := prev.Instance(c.Kind, c.Name); ok && reusable(in, c) {
				s.instances = append(s.instances, in)
				continue
			}
		}
		in, err := Open(cat, c, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.instances = append(s.instances, in)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// narrowed reports whether a config sets one of its kind's Narrowing
// variables: ocir.fra (region fra) must win fra.ocir.io over ocir.main.
func narrowed(cat Catalog, c Config) bool {
	p, ok := cat[c.Kind]
	if !ok {
		return false
	}
	for _, n := range p.Spec().Narrowing {
		if c.Values.Has(n) {
			return true
		}
	}
	return false
}

// Instances lists the instances, configured first, those narrowed to a
// region before the others: Resolve takes the first that serves a host.
func (s *Set) Instances() []*Instance { return s.instances }

// Instance finds an instance by kind and name.
func (s *Set) Instance(kind, name string) (*Instance, bool) {
	for _, in := range s.instances {
		if in.Kind == kind && in.Name == name {
			return in, true
		}
	}
	return nil, false
}

// Resolve picks the instance that serves an image: a configured instance
// before a default one. An image on a host nobody serves gets an implicit,
// anonymous custom instance for that host, kept for the Set's life so its
// tokens are reused.
func (s *Set) Resolve(img Image) (*Instance, error) {
	// The Set never changes, so neither does the instance of a host: with
	// 27 kinds and their host patterns, matching costs tens of
	// microseconds an image, a lookup well under one.
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.byHost[img.Host]; ok {
		return in, nil
	}
	for _, in := range s.instances {
		if in.Serves(img.Host) {
			s.byHost[img.Host] = in
			return in, nil
		}
	}
	in, err := Open(s.cat, Config{
		Kind:   "custom",
		Name:   img.Host,
		Source: SourceImplicit,
		Values: Values{"url": "https://" + img.Host},
	}, s.opts)
	if err != nil {
		return nil, fmt.Errorf("image %s: no registry serves %s: %w", img, img.Host, err)
	}
	s.byHost[img.Host] = in
	return in, nil
}
