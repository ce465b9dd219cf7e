package registries

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Source says where an instance's settings come from; the UI shows it and
// only lets an admin change what it owns.
type Source string

const (
	SourceDefault  Source = "default"  // the anonymous instances present with no configuration
	SourceFile     Source = "file"     // the config file or TAGWATCH_* environment
	SourceUI       Source = "ui"       // saved from the Settings tab
	SourceImplicit Source = "implicit" // made on the fly for a host no instance serves
)

// Config is what it takes to make an instance: who it is and its variables.
type Config struct {
	Kind   string
	Name   string
	Source Source
	Values Values
}

// ID is the instance's name as admins write it: "hub.public".
func (c Config) ID() string { return c.Kind + "." + c.Name }

// Instance is one registry instance, connected: its kind's provider, its
// variables, and its own token cache, request counters and rate-limit state.
// Safe for concurrent use.
type Instance struct {
	Kind   string
	Name   string
	Source Source
	Values Values // validated; may hold secrets: see Public

	raw Values // as configured, to tell whether a new config changes it
	// outside names, for an implicit instance, the configured instances of
	// its host whose repositories patterns leave its images out: what an
	// admin must widen rather than configure anew.
	outside  []string
	provider Provider
	spec     Spec
	insecure bool // plain HTTP
	keys     authn.Keychain
	rt       http.RoundTripper // the instrumented transport under every request
	puller   *remote.Puller
	stats    *Stats
	repos    Repositories // the repositories it serves; none: all of its hosts'
	patterns patterns     // repos, compiled
	limits   Limits
	large    largeLists // shared by the instances of the same Options
	lim      *Limiter   // its requests in flight; shared by its sessions
}

// Options tune how instances reach registries.
type Options struct {
	// Transport is shared by every instance (NewTransport when nil).
	Transport *http.Transport
	// Platform is the default platform images are resolved to.
	Platform v1.Platform
	// Warn receives non-fatal remarks, e.g. TLS verification turned off.
	Warn func(instance, msg string)
	// Limits bound each request's time and each answer's size (zero
	// fields: the defaults).
	Limits Limits

	// stats, when set, are counted into instead of new ones (Isolated).
	stats *Stats
	// large is the large tag list gate the instances opened with these
	// Options share; NewSet and NewLive make one when it is nil.
	large largeLists
}

// Open validates a config against its kind and connects it. Nothing goes on
// the wire yet: tokens are fetched on first use.
func Open(cat Catalog, c Config, o Options) (*Instance, error) {
	p, err := cat.Provider(c.Kind)
	if err != nil {
		return nil, err
	}
	return open(p, c, o)
}

func open(p Provider, c Config, o Options) (*Instance, error) {
	var err error
	spec := p.Spec()
	vals := Values{}
	// A default instance is anonymous by definition; the settings page's
	// required variables (ECR's region and keys) are required of an instance
	// an admin configures.
	if c.Source != SourceDefault {
		if vals, err = spec.Validate(c.ID(), c.Values); err != nil {
			return nil, err
		}
	}
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	base, err := tlsTransport(o.Transport, vals)
	if err != nil {
		return nil, &FieldError{Registry: c.ID(), Variable: "cafile", Message: err.Error()}
	}
	base = withInstanceProxy(base, o.Transport, vals)
	if vals.Bool("insecure") && o.Warn != nil {
		o.Warn(c.ID(), "TLS certificate verification is off (insecure: true)")
	}
	stats := o.stats
	if stats == nil {
		stats = &Stats{}
	}
	limits := o.Limits.WithDefaults()
	lim := newInstanceLimiter(spec, c, vals)
	rt := &instrumented{next: &bounded{next: base, limits: limits, lim: lim}, stats: stats, pings: newPingCache(10 * time.Minute), maxWait: time.Minute, lim: lim}
	// A configured url's scheme is the admin's word, for every host the
	// instance serves (a Nexus's other connector ports too); an implicit
	// instance's "https://" is a guess, and go-containerregistry's fallback
	// to http is what lets it reach a plain-HTTP registry on a private address.
	if u, _ := parseURL(vals["url"]); u != nil && c.Source != SourceImplicit {
		rt.scheme, rt.host = u.Scheme, u.Host
		rt.serves = func(host string) bool { return p.Serves(vals, host) }
		if spec.URLPath {
			rt.prefix = apiPrefix(u.Path)
		}
	}
	// A default instance is anonymous by definition: it must not go looking
	// for credentials (GCR's application default credentials).
	keys, err := anonymous, error(nil)
	if c.Source != SourceDefault {
		keys, err = p.Keychain(vals, rt)
	}
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Registry = c.ID()
			return nil, fe
		}
		return nil, fmt.Errorf("registry %s: %w", c.ID(), err)
	}
	puller, err := remote.NewPuller(
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(keys),
		remote.WithUserAgent("tagwatch"),
		// go-containerregistry retries 5xx and 429 itself; keep it short
		// because the scheduler has its own backoff for a whole registry.
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 2}),
	)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", c.ID(), err)
	}
	repos, _ := ParseRepositories(vals["repositories"]) // checked by Validate
	u, _ := parseURL(vals["url"])
	return &Instance{
		Kind:     c.Kind,
		Name:     c.Name,
		Source:   c.Source,
		Values:   vals,
		raw:      maps.Clone(c.Values),
		provider: p,
		spec:     spec,
		insecure: u != nil && u.Scheme == "http",
		keys:     keys,
		rt:       rt,
		puller:   puller,
		stats:    stats,
		repos:    repos,
		patterns: repos.compile(),
		limits:   limits,
		large:    o.large,
		lim:      lim,
	}, nil
}

// newInstanceLimiter follows the registry up to the kind's ceiling, or
// stays at what the concurrency variable pins. An implicit instance on a
// public host gets no more than DefaultConcurrency: it is some registry on
// the internet, not the admin's own.
func newInstanceLimiter(spec Spec, c Config, vals Values) *Limiter {
	if n, pinned, err := ParseConcurrency(vals["concurrency"]); err == nil && pinned {
		return NewLimiter(n, true)
	}
	ceiling := spec.Ceiling()
	if c.Source == SourceImplicit {
		if u, _ := parseURL(vals["url"]); u == nil || !privateHost(u.Host) {
			ceiling = min(ceiling, DefaultConcurrency)
		}
	}
	return NewLimiter(ceiling, false)
}

// ID is "kind.name".
func (in *Instance) ID() string { return in.Kind + "." + in.Name }

// Spec is the instance's kind declaration.
func (in *Instance) Spec() Spec { return in.spec }

// Serves reports whether the instance serves images on host.
func (in *Instance) Serves(host string) bool { return in.provider.Serves(in.Values, host) }

// Repositories are the repository patterns the instance is limited to;
// none means every repository of its hosts.
func (in *Instance) Repositories() Repositories { return in.repos }

// Stats are the instance's request counts and rate-limit state.
func (in *Instance) Stats() *Stats { return in.stats }

// Limiter bounds and follows the instance's requests in flight.
func (in *Instance) Limiter() *Limiter { return in.lim }

// authenticator is a Provider whose instances may have credentials without
// a secret variable: a key file's path, or credentials found where the
// instance runs (GCR's application default credentials).
type authenticator interface {
	Authenticates(v Values) bool
}

// Anonymous reports whether the instance has no credentials at all.
func (in *Instance) Anonymous() bool {
	if in.Source == SourceDefault {
		return true
	}
	if a, ok := in.provider.(authenticator); ok {
		return !a.Authenticates(in.Values)
	}
	for _, v := range in.spec.Variables {
		if v.Secret && in.Values.Has(v.Name) {
			return false
		}
	}
	return true
}

// Hosts returns the host the instance's tile shows and the one a
// connection test without an image reaches ("" when it needs an image).
func (in *Instance) Hosts() (show, test string) { return hostsOf(in.provider, in.Values) }

// Host is the host an instance with a url serves, or "" for kinds that
// serve well-known hosts.
func (in *Instance) Host() string {
	if u, _ := parseURL(in.Values["url"]); u != nil {
		return u.Host
	}
	return ""
}

// Public returns the variables with every secret blanked, for anything that
// leaves the process: API answers, the UI, logs. Set reports which secrets
// are set without saying what they are.
func (in *Instance) Public() (vals Values, set []string) {
	vals = Values{}
	for k, v := range in.Values {
		if decl, ok := in.spec.Variable(k); ok && decl.Secret {
			set = append(set, k)
			continue
		}
		vals[k] = v
	}
	return vals, set
}

func (in *Instance) repo(img Image) (name.Repository, error) {
	opts := []name.Option{name.WeakValidation}
	if in.insecure {
		opts = append(opts, name.Insecure)
	}
	host := img.Host
	if host == DockerHub {
		host = name.DefaultRegistry
	}
	r, err := name.NewRepository(host+"/"+img.Repository, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("image %s: %w", img, err)
	}
	return r, nil
}

// MaxSessionScopes bounds the repositories one token is asked for: every
// scope is a query parameter, and token servers cap their URLs.
const MaxSessionScopes = 100

// Session returns the instance with one token for pulling every one of
// repositories on host, fetched now, where the instance's credentials are the
// same for every repository. A token server that grants several scopes at
// once then hands out one token for them all instead of one per repository;
// one that grants fewer is asked again for the missing scope on first use.
// On error the caller keeps using the instance itself.
func (in *Instance) Session(ctx context.Context, host string, repositories []string) (*Instance, error) {
	if _, same := in.keys.(staticKeychain); !same || len(repositories) < 2 || len(repositories) > MaxSessionScopes {
		return in, nil
	}
	first, err := in.repo(Image{Host: host, Repository: repositories[0]})
	if err != nil {
		return in, err
	}
	start := time.Now()
	op := "get a token for " + strconv.Itoa(len(repositories)) + " repositories of"
	auth, err := authn.Resolve(ctx, in.keys, first.Registry)
	if err != nil {
		return in, in.fail(Image{Host: host}, op, start, err)
	}
	scopes := make([]string, len(repositories))
	for i, r := range repositories {
		scopes[i] = first.Registry.Repo(r).Scope(transport.PullScope)
	}
	rt, err := transport.NewWithContext(ctx, first.Registry, auth, in.rt, scopes)
	if err != nil {
		return in, in.fail(Image{Host: host}, op, start, err)
	}
	puller, err := remote.NewPuller(remote.WithTransport(rt))
	if err != nil {
		return in, err
	}
	s := *in
	s.puller = puller
	return &s, nil
}

// Tags lists every tag of the image's repository, following pagination to
// the end, within the instance's page and byte limits.
func (in *Instance) Tags(ctx context.Context, img Image) ([]string, error) {
	repo, err := in.repo(img)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	target := img.WithTag("")
	// The pages draw on one byte allowance (the transport enforces it as
	// they stream in), so a long list is cut off however it is paged.
	ctx, budget := withTagBudget(ctx, in.limits.TagListBytes, in.large)
	defer budget.done()
	lister, err := in.puller.Lister(ctx, repo)
	if err != nil {
		return nil, in.failTags(target, start, 1, err)
	}
	tags := []string{}
	for pages := 0; lister.HasNext(); {
		if pages == in.limits.TagPages {
			return nil, in.failTags(target, start, pages, &TagPagesError{Limit: in.limits.TagPages})
		}
		page, err := lister.Next(ctx)
		pages++
		if err != nil {
			return nil, in.failTags(target, start, pages, err)
		}
		tags = append(tags, page.Tags...)
	}
	return tags, nil
}

// failTags is fail for a tag list, with the page it got to: a limit or an
// unreadable page is explained with it.
func (in *Instance) failTags(img Image, start time.Time, page int, err error) error {
	err = in.fail(img, "list tags of", start, err)
	var ce *CallError
	if errors.As(err, &ce) && ce.page == 0 {
		ce.page = page
	}
	return err
}

// Descriptor is what a HEAD on a tag says: the digest it points at and
// whether that is an index of several platforms.
type Descriptor struct {
	Digest    string
	MediaType string
}

// IsIndex reports whether the digest names a multi-platform index.
func (d Descriptor) IsIndex() bool {
	return strings.Contains(d.MediaType, "index") || strings.Contains(d.MediaType, "manifest.list")
}

// Head reads the digest behind a tag without downloading its manifest.
func (in *Instance) Head(ctx context.Context, img Image, tag string) (Descriptor, error) {
	repo, err := in.repo(img)
	if err != nil {
		return Descriptor{}, err
	}
	start := time.Now()
	d, err := in.puller.Head(ctx, repo.Tag(tag))
	if err != nil {
		return Descriptor{}, in.fail(img.WithTag(tag), "read the digest of", start, err)
	}
	return Descriptor{Digest: d.Digest.String(), MediaType: string(d.MediaType)}, nil
}

// PullReserve is how many pulls of a registry's allowance tagwatch leaves alone.
const PullReserve = 5

// PlatformDigest resolves a manifest digest to the digest of the manifest
// for one platform: itself when it is a single-platform image, the matching
// entry when it is an index. It costs one manifest GET.
func (in *Instance) PlatformDigest(ctx context.Context, img Image, digest string, p v1.Platform) (string, error) {
	repo, err := in.repo(img)
	if err != nil {
		return "", err
	}
	// Docker Hub counts manifest GETs (not HEADs) against the pull allowance;
	// leave the last few to the admin's own pulls.
	start := time.Now()
	op := "read the manifest " + digest + " of"
	// Errors name the manifest asked for, not the tag it was found behind.
	img = img.WithTag("")
	img.Digest = digest
	if rl := in.stats.RateLimit(); !rl.Seen.IsZero() && rl.Remaining < PullReserve {
		return "", in.fail(img, op, start, notice(fmt.Sprintf("%s's pull allowance is nearly used (%d of %d left); the digest comparison waits until it refills (%s).", img.Host, rl.Remaining, rl.Limit, in.ID())))
	}
	d, err := in.puller.Get(ctx, repo.Digest(digest))
	if err != nil {
		return "", in.fail(img, op, start, err)
	}
	if !d.MediaType.IsIndex() {
		return d.Digest.String(), nil
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(d.Manifest)))
	if err != nil {
		return "", in.fail(img, op, start, protocolError("the index is not a valid image index: "+err.Error()))
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.Satisfies(p) {
			return m.Digest.String(), nil
		}
	}
	return "", in.fail(img, op, start, notice(fmt.Sprintf("%s: the index %s has no image for platform %s (%s).", img.Name(), shortDigest(digest), p, in.ID())))
}

// Test checks that the registry answers and that the credentials are good:
// the /v2/ handshake, then an authenticated /v2/ request (for token
// registries, that means the token server accepted the credentials). With a
// repository it also lists that repository's tags, which proves pull access.
func (in *Instance) Test(ctx context.Context, host, repository string) error {
	if host == "" {
		host = in.Host()
	}
	if host == "" {
		return fmt.Errorf("registry %s: no host to test; name an image or a url", in.ID())
	}
	img := Image{Host: host, Repository: repository}
	if repository != "" {
		_, err := in.Tags(ctx, img)
		return err
	}
	start := time.Now()
	repo, err := in.repo(Image{Host: host, Repository: "tagwatch/test"})
	if err != nil {
		return err
	}
	auth, err := authn.Resolve(ctx, in.keys, repo.Registry)
	if err != nil {
		return in.fail(img, "sign in to", start, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, in.rt, nil)
	if err != nil {
		return in.fail(img, "connect to", start, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, repo.Registry.Scheme()+"://"+repo.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return in.fail(img, "connect to", start, err)
	}
	defer res.Body.Close() // CheckError reads the body for the registry's message
	if err := transport.CheckError(res, http.StatusOK); err != nil {
		return in.fail(img, "connect to", start, err)
	}
	return nil
}

// ErrUnauthorized marks a registry that refused the credentials (or their absence).
var ErrUnauthorized = errors.New("unauthorized")

// ErrNotFound marks a repository, tag or manifest the registry itself
// answered 404 for (errors.Is finds it in a CallError).
var ErrNotFound = errors.New("not found")

func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

// apiPrefix turns a url's path into the path the registry API is served
// under: "/artifactory/api/docker/docker-local/" and ".../v2" both give
// "/artifactory/api/docker/docker-local".
func apiPrefix(path string) string {
	path = strings.TrimRight(path, "/")
	path = strings.TrimSuffix(path, "/v2")
	return strings.TrimRight(path, "/")
}

// parseURL checks a url variable: http or https, a host, nothing else. Its
// errors never quote the url: it may hold a password (user:PW@host).
func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := err.Error()
		if i := strings.Index(msg, "\""); i >= 0 {
			msg = strings.TrimSpace(msg[:i]) // the quoted piece of the url
		}
		return nil, fmt.Errorf("is not a URL: %s", msg)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" || u.Host == "" {
			return nil, errors.New("must start with http:// or https://")
		}
		return nil, fmt.Errorf("must start with http:// or https://, not %s://", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("has no host")
	}
	return u, nil
}
