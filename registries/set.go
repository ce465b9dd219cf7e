package registries

import (
	"errors"
	"fmt"
	"sort"
	"strings"
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
	byHost map[string][]*Instance // the instances that serve each host, in the order Resolve prefers them
	// implicit are the anonymous instances made for hosts, or repositories
	// of hosts, that no instance serves.
	implicit map[string]*Instance
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
	s := &Set{cat: cat, opts: o, byHost: map[string][]*Instance{}, implicit: map[string]*Instance{}}
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

// Resolve picks the instance that serves an image. Among the instances
// that serve its host, the one with the longest repositories pattern that
// matches its repository wins (an instance limited to repositories serves
// no other); then a configured instance before a default one, one narrowed
// to a region before one that is not, and the first by name. An image
// nobody serves gets an implicit, anonymous custom instance for its host,
// kept for the Set's life so its tokens are reused.
func (s *Set) Resolve(img Image) (*Instance, error) { return s.Pick(img, "") }

// Pick is Resolve for an image that may name its instance (the registry
// of an images: entry, the tagwatch.registry label): with a name, that
// instance, provided it exists and serves the image, else a *NamedError
// that names both.
func (s *Set) Pick(img Image, named string) (*Instance, error) {
	if named != "" {
		kind, name, _ := strings.Cut(named, ".")
		in, ok := s.Instance(kind, name)
		if !ok {
			return nil, &NamedError{Image: img, Instance: named, Missing: true}
		}
		if err := namedServes(named, in.provider, in.Values, in.repos, img); err != nil {
			return nil, err
		}
		return in, nil
	}
	// The Set never changes, so neither do the instances of a host: with
	// 27 kinds and their host patterns, matching costs tens of
	// microseconds an image, a lookup well under one.
	s.mu.Lock()
	defer s.mu.Unlock()
	serving, ok := s.byHost[img.Host]
	if !ok {
		for _, in := range s.instances {
			if in.Serves(img.Host) {
				serving = append(serving, in)
			}
		}
		s.byHost[img.Host] = serving
	}
	var best *Instance
	longest := -1
	for _, in := range serving {
		if n, ok := in.patterns.match(img.Repository); ok && n > longest {
			best, longest = in, n
		}
	}
	if best != nil {
		return best, nil
	}
	if in, ok := s.implicit[img.Host]; ok {
		return in, nil
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
	// The host has instances, but their patterns leave this repository out
	// (an instance without patterns would have matched).
	for _, sv := range serving {
		in.outside = append(in.outside, sv.ID())
	}
	s.implicit[img.Host] = in
	return in, nil
}
