package watcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	// Track says nobody can tell the digest in use (an image listed in the
	// config without @sha256:): the digest accepted as current, Baseline,
	// stands in for it. The first digest seen behind the tag becomes the
	// baseline; a different one later is a digest update until the admin
	// accepts it (store.AcceptDigests). Ignored when Digest is known.
	Track bool
	// Baseline is the digest accepted as current, from the store; empty
	// when there is none yet.
	Baseline string
}

// tracked reports whether the target's digest in use is its baseline.
func (t Target) tracked() bool { return t.Track && t.Digest == "" }

// Result is what one check of one image found. Its JSON form is the
// contract of `tagwatch check --json` and of the API.
type Result struct {
	Image        string     `json:"image"`     // as given
	Reference    string     `json:"reference"` // normalized
	Registry     string     `json:"registry"`  // kind.name
	Tag          string     `json:"tag"`
	Digest       string     `json:"digest"` // in use (pinned or pulled), else the baseline (tracked), else behind the tag now
	LatestTag    string     `json:"latestTag"`
	LatestDigest string     `json:"latestDigest"` // behind latestTag now
	Update       UpdateKind `json:"update"`
	// Baseline is the digest accepted as current of a tracked target (see
	// Target.Track) after this check: the one it was compared with, or the
	// digest first seen, or the tag's new digest when only other platforms
	// changed. Empty for the others.
	Baseline string `json:"baseline,omitempty"`
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

// The defaults of a cycle's bounds, and why:
const (
	// DefaultImageTimeout: an image check is two to five requests of at
	// most the request deadline each, and a registry's 429 pause (up to a
	// minute is honoured) still fits in two minutes.
	DefaultImageTimeout = 2 * time.Minute
	// DefaultCycleTimeout: 1,000 images on one registry take seconds
	// (BenchmarkCycle) and 10,000 a few minutes; 30 minutes leaves room for
	// slow registries and ends well before the next cycle (every 6 hours).
	DefaultCycleTimeout = 30 * time.Minute
)

// Checker checks targets against their registries. A Checker is cheap; one
// Run is one cycle, and within a cycle each repository's tags are listed once
// and each repository:tag is read once, however many targets share them.
type Checker struct {
	// Registries returns the running registry set; it is read once per Run so
	// a settings change applies from the next cycle on.
	Registries func() *registries.Set
	// ImageTimeout bounds one image's check, from its first request to its
	// last, waits for 429s included (default 2m).
	ImageTimeout time.Duration
	// CycleTimeout bounds a whole Run (default 30m). Past it the checks in
	// flight are stopped and the rest are not started; each gets an error
	// saying so and which registry it was waiting for.
	CycleTimeout time.Duration
	// Progress, when set, is told how many targets are done after each one.
	Progress func(done int)
	// Observe, when set, receives each result and how long its check took
	// (metrics). It is called from the checking goroutines, concurrently.
	Observe func(r Result, took time.Duration)
	// Done, when set, receives each result as soon as it is known, with its
	// index in the targets, so that results can be stored while other
	// registries are still answering. Called concurrently.
	Done func(i int, r Result)
	// Tracker, when set, follows the checks in flight, for the status.
	Tracker *Tracker
	// LaneDone, when set, receives each registry instance's figures when
	// its last image is done. Called concurrently.
	LaneDone func(RegistryReport)
}

// DeadlineError is why a check was cut short: the image's or the cycle's
// deadline passed. It is a context.DeadlineExceeded.
type DeadlineError struct {
	Scope string // "image" or "cycle"
	Limit time.Duration
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("the %s's %s deadline passed", e.Scope, registries.Duration(e.Limit))
}

func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// Deadline names the deadline for registries.Explain, so that a request it
// cut short reads "Timed out after 2m …" whatever the request itself took.
func (e *DeadlineError) Deadline() (scope string, limit time.Duration) { return e.Scope, e.Limit }

// Run checks every target and returns one result per target, in order.
// A failed target carries its error; the others go on. Targets are checked
// in lanes, one per registry instance, each with its own concurrency: as
// many requests in flight as the instance's limiter allows, which follows
// how the registry answers. Checks wait on the network, not on the CPU.
func (c *Checker) Run(ctx context.Context, targets []Target) []Result {
	cy := &cycle{
		set:          c.Registries(),
		tags:         newMemo[[]string](),
		heads:        newMemo[registries.Descriptor](),
		plats:        newMemo[string](),
		imageTimeout: orDefault(c.ImageTimeout, DefaultImageTimeout),
		tracker:      c.Tracker,
	}
	cycleTimeout := orDefault(c.CycleTimeout, DefaultCycleTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, cycleTimeout, &DeadlineError{Scope: "cycle", Limit: cycleTimeout})
	defer cancel()

	results := make([]Result, len(targets))
	var done atomic.Int64
	finish := func(i int, r Result, took time.Duration) {
		results[i] = r
		if c.Observe != nil {
			c.Observe(r, took)
		}
		if c.Done != nil {
			c.Done(i, r)
		}
		if n := done.Add(1); c.Progress != nil {
			c.Progress(int(n))
		}
	}
	var lanes []*lane
	byID := map[string]*lane{}
	for i, t := range targets {
		in, err := cy.set.Pick(t.Image, t.Options.Registry)
		if err != nil {
			r := newResult(t)
			r.Registry = t.Options.Registry
			r.fail(err)
			finish(i, r, 0)
			continue
		}
		l, ok := byID[in.ID()]
		if !ok {
			l = &lane{in: in, host: t.Image.Host}
			byID[in.ID()] = l
			lanes = append(lanes, l)
		}
		l.jobs = append(l.jobs, i)
	}
	var wg sync.WaitGroup
	for _, l := range lanes {
		cy.tracker.queue(l.in.ID(), l.host, len(l.jobs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := l.run(ctx, cy, targets, finish)
			if c.LaneDone != nil {
				c.LaneDone(rep)
			}
		}()
	}
	wg.Wait()
	return results
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type cycle struct {
	set          *registries.Set
	tags         *memo[[]string]
	heads        *memo[registries.Descriptor]
	plats        *memo[string]
	imageTimeout time.Duration
	tracker      *Tracker
}

func newResult(t Target) Result {
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
	return r
}

// check checks one target of lane l. ctx is the cycle's; tk is the
// check's admission, which its first request (or its first wait on
// another check's request) clears.
func (cy *cycle) check(ctx context.Context, l *lane, i int, t Target, tk *registries.Ticket) Result {
	img := t.Image
	r := newResult(t)
	in := l.in
	r.Registry = in.ID()
	if s, ok := l.sessions[img.Name()]; ok {
		in = s
	}
	f := cy.tracker.start(in.ID(), i, img.String())
	defer cy.tracker.done(in.ID(), i)
	if ctx.Err() != nil {
		r.fail(cy.failure(ctx, ctx.Err(), in.ID(), img.Host, "its turn"))
		return r
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cy.imageTimeout, &DeadlineError{Scope: "image", Limit: cy.imageTimeout})
	defer cancel()
	ctx = registries.WithTicket(ctx, tk)
	fail := func(err error) Result {
		r.fail(cy.failure(ctx, err, in.ID(), img.Host, f.what()))
		r.Update = UpdateUnknown
		return r
	}

	// The digest of the tag in use does not depend on the tag list: both
	// go out at once, so a check costs one round trip, not two, and the
	// images of a repository do not wait for its list to read their own.
	f.doing("list tags of " + img.Repository)
	type head struct {
		d   registries.Descriptor
		err error
	}
	current := make(chan head, 1)
	hctx, stopHead := context.WithCancel(ctx)
	go func() {
		d, err := cy.head(hctx, in, img, img.Tag, tk)
		current <- head{d, err}
	}()
	tags, err := cy.tags.do(ctx, in.ID()+" "+img.Name(), tk.Clear, func() ([]string, error) {
		return in.Tags(ctx, img)
	})
	if err != nil {
		// The list's failure is the image's (its digest alone says
		// nothing of an update); the read of the digest is not needed.
		stopHead()
		<-current
		return fail(err)
	}
	dec := Decide(img.Tag, tags, t.Options)

	f.doing("read the digest of " + img.Repository + ":" + img.Tag)
	h := <-current
	stopHead()
	now, err := h.d, h.err
	if err != nil {
		return fail(err)
	}
	tracked := t.tracked()
	switch {
	case tracked:
		// The first digest seen is the baseline.
		r.Baseline = cmp.Or(t.Baseline, now.Digest)
		r.Digest = r.Baseline
	case r.Digest == "":
		r.Digest = now.Digest
	}
	r.LatestTag, r.LatestDigest, r.Update = img.Tag, now.Digest, UpdateNone

	if dec.Kind != UpdateNone && dec.Tag != img.Tag {
		f.doing("read the digest of " + img.Repository + ":" + dec.Tag)
		latest, err := cy.head(ctx, in, img, dec.Tag, tk)
		if err != nil {
			return fail(err)
		}
		r.LatestTag, r.LatestDigest, r.Update = dec.Tag, latest.Digest, dec.Kind
		return r
	}

	watch := dec.WatchDigest || (t.Pinned && t.Options.Digest == nil)
	if tracked && !watch {
		// A digest not watched is not held back: the baseline follows
		// the tag, so that turning watching on later starts from now.
		r.Baseline, r.Digest = now.Digest, now.Digest
		return r
	}
	inUse := t.Digest
	if tracked {
		inUse = r.Baseline
	}
	if !watch || inUse == "" || inUse == now.Digest || slices.Contains(t.SameImage, now.Digest) {
		return r
	}
	f.doing("compare the " + t.Platform.String() + " manifests of " + img.Repository + ":" + img.Tag)
	changed, err := cy.platformChanged(ctx, in, img, t, inUse, now.Digest, tk)
	if err != nil {
		return fail(err)
	}
	switch {
	case changed:
		r.Update = UpdateDigest
	case tracked:
		// Only other platforms changed: this platform's image is the
		// one accepted, now behind a new digest. The baseline moves to
		// it, so the next check need not compare manifests again (nor
		// take the old digest's disappearance for a replacement).
		r.Baseline, r.Digest = now.Digest, now.Digest
	}
	return r
}

// failure is the error a result shows. A check cut short by the cycle's
// deadline says what it was waiting for; the rest say what went wrong
// (registries.Explain): a registry call cut short by the image's deadline
// is explained as a timeout of that deadline (its cause names it).
func (cy *cycle) failure(ctx context.Context, err error, registry, host, doing string) error {
	var de *DeadlineError
	if ctx.Err() == nil || !errors.As(context.Cause(ctx), &de) {
		return err
	}
	if de.Scope == "cycle" {
		if doing == "its turn" {
			return cutShort(fmt.Sprintf("Not checked: the cycle's %s deadline passed before its turn on %s (%s).", registries.Duration(de.Limit), host, registry))
		}
		return cutShort(fmt.Sprintf("Not checked: the cycle's %s deadline passed while waiting for %s (%s) to %s.", registries.Duration(de.Limit), host, registry, doing))
	}
	var ce *registries.CallError
	if errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ce) {
		// Cut short while waiting on another image's request (the
		// memo), or between requests: no registry call to explain.
		return cutShort(fmt.Sprintf("Timed out after %s waiting for %s (%s) to %s: the image's deadline passed.", registries.Duration(de.Limit), host, registry, doing))
	}
	return err
}

// cutShort is a check the image's or the cycle's deadline ended outside
// any registry call: tagwatch's own sentence, shown as it is.
type cutShort string

func (c cutShort) Error() string { return string(c) }

func (cy *cycle) head(ctx context.Context, in *registries.Instance, img registries.Image, tag string, tk *registries.Ticket) (registries.Descriptor, error) {
	return cy.heads.do(ctx, in.ID()+" "+img.Name()+":"+tag, tk.Clear, func() (registries.Descriptor, error) {
		return in.Head(ctx, img, tag)
	})
}

// platformChanged compares what the target's platform gets from the digest in
// use and from the tag now. An index digest differs from the platform
// manifest digest an engine may report, and an index is rebuilt when any
// platform changes; only a change of this platform's manifest is an update.
func (cy *cycle) platformChanged(ctx context.Context, in *registries.Instance, img registries.Image, t Target, inUse, now string, tk *registries.Ticket) (bool, error) {
	p := t.Platform
	if p.OS == "" {
		p = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	resolve := func(d string) (string, error) {
		return cy.plats.do(ctx, in.ID()+" "+img.Name()+"@"+d+" "+p.String(), tk.Clear, func() (string, error) {
			return in.PlatformDigest(ctx, img, d, p)
		})
	}
	newer, err := resolve(now)
	if err != nil {
		return false, err
	}
	if newer == inUse || slices.Contains(t.SameImage, newer) {
		return false, nil // the digest in use is this platform's manifest, still current
	}
	if len(t.SameImage) > 0 {
		// The engine's digests include the running image's own manifest,
		// and this platform's manifest is none of them: it changed.
		return true, nil
	}
	older, err := resolve(inUse)
	if errors.Is(err, registries.ErrNotFound) {
		// The registry no longer has the manifest in use: it was replaced.
		return true, nil
	}
	if err != nil {
		// Anything else (a deadline, a body over its cap, a 500) says
		// nothing about the image: no update is made up from it.
		return false, err
	}
	return older != newer, nil
}

// memo runs a function once per key for the life of a cycle; concurrent
// callers of the same key wait for the one call in flight, or for their
// own context to end. A caller about to wait calls waiting first (its
// check then stands for no request about to be made).
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

func (m *memo[V]) do(ctx context.Context, key string, waiting func(), f func() (V, error)) (V, error) {
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
	select {
	case <-e.done:
		return e.v, e.err
	default:
	}
	waiting()
	select {
	case <-e.done:
		return e.v, e.err
	case <-ctx.Done():
		var zero V
		return zero, context.Cause(ctx)
	}
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
