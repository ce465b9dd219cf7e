package watcher

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/registries"
)

// Target is one image to check: a reference, the digest in use when known,
// and its options.
type Target struct {
	Image registries.Image
	// Digest is the digest in use: pinned in the reference, or what the
	// Docker engine pulled (RepoDigests). Empty when unknown.
	Digest string
	// Pinned says the digest was written in the reference: the admin asked
	// for that exact image, so a change behind the tag is always reported
	// unless digest watching is turned off explicitly.
	Pinned   bool
	Platform v1.Platform
	Options  TagOptions
	// SameImage are other digests the engine knows the running image by,
	// among them its own manifest's (Podman records the manifest list's
	// and the platform manifest's). A tag that now names one of them, or
	// a list whose manifest for the platform is one of them, has not moved.
	SameImage []string
}

// Result is what one check of one image found. Its JSON form is the
// contract of `tagwatch check --json` and of the API.
type Result struct {
	Image        string     `json:"image"`     // as given
	Reference    string     `json:"reference"` // normalized
	Registry     string     `json:"registry"`  // kind.name
	Tag          string     `json:"tag"`
	Digest       string     `json:"digest"` // in use (pinned or pulled), else behind the tag now
	LatestTag    string     `json:"latestTag"`
	LatestDigest string     `json:"latestDigest"` // behind latestTag now
	Update       UpdateKind `json:"update"`
	// Error is what went wrong, in one short sentence that says what to do
	// (registries.Explain); ErrorDetail adds the facts behind it. Neither
	// quotes what the registry sent.
	Error       string    `json:"error"`
	ErrorDetail string    `json:"errorDetail,omitempty"`
	CheckedAt   time.Time `json:"checkedAt"`

	// Canceled says the check was stopped before it finished (the daemon
	// stopping): not a result to keep.
	Canceled bool `json:"-"`
	// raw is what the registry said, for the debug log.
	raw string
}

// fail records err as the result's error.
func (r *Result) fail(err error) {
	p := registries.Explain(err)
	r.Error, r.ErrorDetail = p.Reason, p.Detail
	r.Canceled = p.Class == registries.ClassCanceled
	r.raw = registries.Raw(err)
}

// Raw is what the registry said when the check failed (bodies included,
// truncated, secrets removed): for the debug log only.
func (r Result) Raw() string { return r.raw }

// Checker checks targets against their registries. A Checker is cheap; one
// Run is one cycle, and within a cycle each repository's tags are listed once
// and each repository:tag is read once, however many targets share them.
type Checker struct {
	// Registries returns the running registry set; it is read once per Run so
	// a settings change applies from the next cycle on.
	Registries func() *registries.Set
	// Workers bounds the checks in flight (default: 4 per CPU).
	Workers int
	// PerRegistry bounds the requests in flight to one registry instance (default 4).
	PerRegistry int
	// Progress, when set, is told how many targets are done after each one.
	Progress func(done int)
	// Observe, when set, receives each result and how long its check took
	// (metrics). It is called from the checking goroutines, concurrently.
	Observe func(r Result, took time.Duration)
}

// Run checks every target and returns one result per target, in order.
// A failed target carries its error; the others go on.
func (c *Checker) Run(ctx context.Context, targets []Target) []Result {
	cy := &cycle{
		set:    c.Registries(),
		tags:   newMemo[[]string](),
		heads:  newMemo[registries.Descriptor](),
		plats:  newMemo[string](),
		limits: map[string]chan struct{}{},
		per:    c.PerRegistry,
	}
	if cy.per <= 0 {
		cy.per = 4
	}
	workers := c.Workers
	if workers <= 0 {
		workers = 4 * runtime.NumCPU()
	}
	cy.sessions = cy.openSessions(ctx, targets)
	results := make([]Result, len(targets))
	var done atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				start := time.Now()
				results[i] = cy.check(ctx, targets[i])
				if c.Observe != nil {
					c.Observe(results[i], time.Since(start))
				}
				if n := done.Add(1); c.Progress != nil {
					c.Progress(int(n))
				}
			}
		}()
	}
	for i := range targets {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

type cycle struct {
	set      *registries.Set
	sessions map[string]*registries.Instance // by instance ID + " " + repository name
	tags     *memo[[]string]
	heads    *memo[registries.Descriptor]
	plats    *memo[string]

	mu     sync.Mutex
	limits map[string]chan struct{}
	per    int
}

// openSessions asks each registry instance for one token covering all the
// cycle's repositories on it (in chunks), rather than one per repository.
// An instance that cannot do that is used as it is.
func (cy *cycle) openSessions(ctx context.Context, targets []Target) map[string]*registries.Instance {
	type group struct {
		in    *registries.Instance
		host  string
		repos []string
	}
	groups := map[string]*group{}
	var order []string
	seen := map[string]bool{}
	for _, t := range targets {
		in, err := cy.set.Pick(t.Image, t.Options.Registry)
		if err != nil {
			continue
		}
		key := in.ID() + " " + t.Image.Host
		g, ok := groups[key]
		if !ok {
			g = &group{in: in, host: t.Image.Host}
			groups[key] = g
			order = append(order, key)
		}
		if name := in.ID() + " " + t.Image.Name(); !seen[name] {
			seen[name] = true
			g.repos = append(g.repos, t.Image.Repository)
		}
	}
	out := map[string]*registries.Instance{}
	for _, key := range order {
		g := groups[key]
		for start := 0; start < len(g.repos); start += registries.MaxSessionScopes {
			chunk := g.repos[start:min(start+registries.MaxSessionScopes, len(g.repos))]
			s, err := g.in.Session(ctx, g.host, chunk)
			if err != nil || s == g.in {
				continue // each repository gets its own token on first use
			}
			for _, repo := range chunk {
				out[g.in.ID()+" "+g.host+"/"+repo] = s
			}
		}
	}
	return out
}

// limit takes a slot of the instance's concurrency budget.
func (cy *cycle) limit(in *registries.Instance) func() {
	cy.mu.Lock()
	ch, ok := cy.limits[in.ID()]
	if !ok {
		ch = make(chan struct{}, cy.per)
		cy.limits[in.ID()] = ch
	}
	cy.mu.Unlock()
	ch <- struct{}{}
	return func() { <-ch }
}

func (cy *cycle) check(ctx context.Context, t Target) Result {
	img := t.Image
	r := Result{
		Image:     img.Given,
		Reference: img.String(),
		Tag:       img.Tag,
		Digest:    t.Digest,
		Update:    UpdateUnknown,
		CheckedAt: time.Now().UTC(),
	}
	if r.Image == "" {
		r.Image = r.Reference
	}
	in, err := cy.set.Pick(img, t.Options.Registry)
	if err != nil {
		r.Registry = t.Options.Registry
		r.fail(err)
		return r
	}
	r.Registry = in.ID()
	if s, ok := cy.sessions[in.ID()+" "+img.Name()]; ok {
		in = s
	}

	tags, err := cy.tags.do(in.ID()+" "+img.Name(), func() ([]string, error) {
		defer cy.limit(in)()
		return in.Tags(ctx, img)
	})
	if err != nil {
		r.fail(err)
		return r
	}
	dec := Decide(img.Tag, tags, t.Options)

	now, err := cy.head(ctx, in, img, img.Tag)
	if err != nil {
		r.fail(err)
		return r
	}
	if r.Digest == "" {
		r.Digest = now.Digest
	}
	r.LatestTag, r.LatestDigest, r.Update = img.Tag, now.Digest, UpdateNone

	if dec.Kind != UpdateNone && dec.Tag != img.Tag {
		latest, err := cy.head(ctx, in, img, dec.Tag)
		if err != nil {
			r.fail(err)
			r.Update = UpdateUnknown
			return r
		}
		r.LatestTag, r.LatestDigest, r.Update = dec.Tag, latest.Digest, dec.Kind
		return r
	}

	watch := dec.WatchDigest || (t.Pinned && t.Options.Digest == nil)
	if !watch || t.Digest == "" || t.Digest == now.Digest || slices.Contains(t.SameImage, now.Digest) {
		return r
	}
	changed, err := cy.platformChanged(ctx, in, img, t, now.Digest)
	if err != nil {
		r.fail(err)
		r.Update = UpdateUnknown
		return r
	}
	if changed {
		r.Update = UpdateDigest
	}
	return r
}

func (cy *cycle) head(ctx context.Context, in *registries.Instance, img registries.Image, tag string) (registries.Descriptor, error) {
	return cy.heads.do(in.ID()+" "+img.Name()+":"+tag, func() (registries.Descriptor, error) {
		defer cy.limit(in)()
		return in.Head(ctx, img, tag)
	})
}

// platformChanged compares what the target's platform gets from the digest in
// use and from the tag now. An index digest differs from the platform
// manifest digest an engine may report, and an index is rebuilt when any
// platform changes; only a change of this platform's manifest is an update.
func (cy *cycle) platformChanged(ctx context.Context, in *registries.Instance, img registries.Image, t Target, now string) (bool, error) {
	p := t.Platform
	if p.OS == "" {
		p = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	resolve := func(d string) (string, error) {
		return cy.plats.do(in.ID()+" "+img.Name()+"@"+d+" "+p.String(), func() (string, error) {
			defer cy.limit(in)()
			return in.PlatformDigest(ctx, img, d, p)
		})
	}
	newer, err := resolve(now)
	if err != nil {
		return false, err
	}
	if newer == t.Digest || slices.Contains(t.SameImage, newer) {
		return false, nil // the digest in use is this platform's manifest, still current
	}
	if len(t.SameImage) > 0 {
		// The engine's digests include the running image's own manifest,
		// and this platform's manifest is none of them: it changed.
		return true, nil
	}
	older, err := resolve(t.Digest)
	if err != nil {
		// The registry no longer has the manifest in use: it was replaced.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
		return true, nil
	}
	return older != newer, nil
}

// memo runs a function once per key for the life of a cycle; concurrent
// callers of the same key wait for the one call in flight.
type memo[V any] struct {
	mu sync.Mutex
	m  map[string]*memoEntry[V]
}

type memoEntry[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func newMemo[V any]() *memo[V] { return &memo[V]{m: map[string]*memoEntry[V]{}} }

func (m *memo[V]) do(key string, f func() (V, error)) (V, error) {
	m.mu.Lock()
	e, ok := m.m[key]
	if !ok {
		e = &memoEntry[V]{done: make(chan struct{})}
		m.m[key] = e
		m.mu.Unlock()
		e.v, e.err = f()
		close(e.done)
		return e.v, e.err
	}
	m.mu.Unlock()
	<-e.done
	return e.v, e.err
}

// String is a one-line human summary of a result.
func (r Result) String() string {
	if r.Error != "" {
		return fmt.Sprintf("%s\t%s\terror: %s", r.Image, r.Registry, r.Error)
	}
	if r.Update == UpdateNone {
		return fmt.Sprintf("%s\t%s\tup to date (%s)", r.Image, r.Registry, short(r.Digest))
	}
	return fmt.Sprintf("%s\t%s\t%s update: %s → %s (%s)", r.Image, r.Registry, r.Update, r.Tag, r.LatestTag, short(r.LatestDigest))
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
