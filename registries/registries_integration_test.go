package registries_test

// These tests run the real CNCF distribution registry (internal/regtest) and
// check what a user of each registry kind sees through the Instance API:
// tags, digests, errors, and what it costs in requests.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real registries")
	}
	t.Parallel()
}

func openInstance(t *testing.T, kind, name string, vals registries.Values) *registries.Instance {
	t.Helper()
	in, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: kind, Name: name, Source: registries.SourceFile, Values: vals}, registries.Options{})
	if err != nil {
		t.Fatalf("Open %s.%s: %v", kind, name, err)
	}
	return in
}

func image(t *testing.T, ref string) registries.Image {
	t.Helper()
	img, err := registries.ParseImage(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ctx is a generous deadline that only stops a test whose bound does not
// work: the bounds under test (a request's, an image's) are far shorter.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// check does what a check of one image does: list its tags, read the digest
// of its tag.
func check(ctx context.Context, in *registries.Instance, img registries.Image) ([]string, registries.Descriptor, error) {
	tags, err := in.Tags(ctx, img)
	if err != nil {
		return nil, registries.Descriptor{}, err
	}
	d, err := in.Head(ctx, img, img.Tag)
	return tags, d, err
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// TestCredentials checks each way of giving credentials, against the auth
// schemes a self-hosted registry uses: anonymous, htpasswd (Basic) and a
// token server (Bearer).
func TestCredentials(t *testing.T) {
	integration(t)
	users := map[string]string{"alice": "alice-pw"}
	regs := map[string]*regtest.Registry{
		"anonymous": regtest.Start(t, regtest.Options{}),
		"htpasswd":  regtest.Start(t, regtest.Options{Users: users}),
		"token":     regtest.Start(t, regtest.Options{Users: users, Token: true}),
	}
	digests := map[string]string{}
	for mode, r := range regs {
		digests[mode] = r.Push(t, "team/app:1.0.0", regtest.Image(t, mode)).String()
	}
	good := registries.Values{"login": "alice", "password": "alice-pw"}
	for _, tc := range []struct {
		name, reg, kind string
		values          registries.Values // url is added
		refused         bool              // the registry refuses: ErrUnauthorized
	}{
		{name: "custom anonymous", reg: "anonymous", kind: "custom"},
		{name: "custom htpasswd login", reg: "htpasswd", kind: "custom", values: good},
		{name: "custom htpasswd auth", reg: "htpasswd", kind: "custom", values: registries.Values{"auth": basicAuth("alice", "alice-pw")}},
		{name: "custom htpasswd no credentials", reg: "htpasswd", kind: "custom", refused: true},
		{name: "custom htpasswd wrong password", reg: "htpasswd", kind: "custom", values: registries.Values{"login": "alice", "password": "wrong"}, refused: true},
		{name: "custom token login", reg: "token", kind: "custom", values: good},
		{name: "custom token auth", reg: "token", kind: "custom", values: registries.Values{"auth": basicAuth("alice", "alice-pw")}},
		{name: "custom token no credentials", reg: "token", kind: "custom", refused: true},
		{name: "custom token wrong password", reg: "token", kind: "custom", values: registries.Values{"login": "alice", "password": "wrong"}, refused: true},
		{name: "gitea htpasswd", reg: "htpasswd", kind: "gitea", values: good},
		{name: "gitea token", reg: "token", kind: "gitea", values: good},
		{name: "gitea wrong password", reg: "token", kind: "gitea", values: registries.Values{"login": "alice", "password": "wrong"}, refused: true},
		{name: "forgejo htpasswd", reg: "htpasswd", kind: "forgejo", values: good},
		{name: "forgejo token", reg: "token", kind: "forgejo", values: good},
		{name: "forgejo wrong password", reg: "htpasswd", kind: "forgejo", values: registries.Values{"login": "alice", "password": "wrong"}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := regs[tc.reg]
			vals := registries.Values{"url": r.URL}
			for k, v := range tc.values {
				vals[k] = v
			}
			in := openInstance(t, tc.kind, "corp", vals)
			img := image(t, r.Host+"/team/app:1.0.0")
			ctx := ctx(t)

			tags, d, err := check(ctx, in, img)
			testErr := in.Test(ctx, "", "")
			if tc.refused {
				errs := map[string]error{"Tags": err, "Test of the repository": in.Test(ctx, "", "team/app")}
				// A token server hands an anonymous client a token that
				// opens /v2/ (and no repository): only bad credentials
				// fail the registry-wide Test.
				if len(tc.values) > 0 || tc.reg != "token" {
					errs["Test"] = testErr
				}
				for what, err := range errs {
					if !errors.Is(err, registries.ErrUnauthorized) {
						t.Errorf("%s: err = %v, want one wrapping ErrUnauthorized", what, err)
						continue
					}
					if !strings.Contains(err.Error(), r.Host) || !strings.Contains(err.Error(), tc.kind+".corp") {
						t.Errorf("%s: error %q does not name both the registry %s and the instance %s.corp", what, err, r.Host, tc.kind)
					}
					t.Logf("%s: user sees: %v", what, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if testErr != nil {
				t.Errorf("Test: %v", testErr)
			}
			if len(tags) != 1 || tags[0] != "1.0.0" || d.Digest != digests[tc.reg] || d.IsIndex() {
				t.Errorf("tags %v, digest %s (%s); want [1.0.0], %s", tags, d.Digest, d.MediaType, digests[tc.reg])
			}
			// On the token registry the credentials went to the token
			// server, not to the registry.
			if n := in.Stats().Requests(registries.RequestToken); (tc.reg == "token") != (n > 0) {
				t.Errorf("%d token requests on the %s registry", n, tc.reg)
			}
		})
	}
}

// TestGitLab trades a personal access token for a repository-scoped JWT at
// authurl's /jwt/auth, as GitLab wants, and never calls the registry's realm.
func TestGitLab(t *testing.T) {
	integration(t)
	const pat = "glpat-0123456789abcdef"
	r := regtest.Start(t, regtest.Options{Token: true})
	// GitLab ignores the username of a personal access token.
	r.Issuer.Check = func(_, password string) bool { return password == pat }
	want := r.Push(t, "group/project/app:2.1.0", regtest.Image(t, "gitlab")).String()
	img := image(t, r.Host+"/group/project/app:2.1.0")
	before := len(r.Issuer.Log())

	in := openInstance(t, "gitlab", "corp", registries.Values{"url": r.URL, "authurl": r.Issuer.URL, "token": pat})
	tags, d, err := check(ctx(t), in, img)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if len(tags) != 1 || tags[0] != "2.1.0" || d.Digest != want {
		t.Errorf("tags %v digest %s, want [2.1.0] %s", tags, d.Digest, want)
	}
	got := r.Issuer.Log()[before:]
	if n := r.Issuer.Requests() - before; n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if len(got) != 1 {
		t.Fatalf("token requests %+v, want one JWT from /jwt/auth", got)
	}
	if g := got[0]; g.Method != http.MethodGet || g.Path != "/jwt/auth" || g.Status != http.StatusOK ||
		strings.Join(g.Scopes, " ") != "repository:group/project/app:pull" || g.Service != "container_registry" {
		t.Errorf("token request %+v, want GET /jwt/auth for repository:group/project/app:pull", g)
	}
	if n := in.Stats().Requests(registries.RequestToken); n != 1 {
		t.Errorf("Stats: %d token requests, want 1", n)
	}

	t.Run("wrong token", func(t *testing.T) {
		in := openInstance(t, "gitlab", "corp", registries.Values{"url": r.URL, "authurl": r.Issuer.URL, "token": "glpat-revoked"})
		_, err := in.Tags(ctx(t), img)
		if !errors.Is(err, registries.ErrUnauthorized) {
			t.Fatalf("err = %v, want one wrapping ErrUnauthorized", err)
		}
		t.Logf("user sees: %v", err)
		for _, s := range []string{"group/project/app", r.Issuer.URL, "401"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	})
	t.Run("test without repository", func(t *testing.T) {
		n := len(r.Issuer.Log())
		if err := in.Test(ctx(t), "", ""); err != nil {
			t.Errorf("Test: %v", err)
		}
		// The registry-wide check asks for a token without a scope, as
		// docker login does, not for a repository named after the host.
		if got := r.Issuer.Log()[n:]; len(got) != 1 || got[0].Path != "/jwt/auth" || len(got[0].Scopes) != 0 {
			t.Errorf("token requests %+v, want one to /jwt/auth without a scope", got)
		}
	})
}

// TestPrivateVendorRegistry is the case of a vendor's private registry: the
// login is an e-mail address, the password an access token, and images are
// team/product:tag on the registry's host and port.
func TestPrivateVendorRegistry(t *testing.T) {
	integration(t)
	const email, token = "seller@example.com", "acc_7Hq2xK9pL3mN8vR4"
	for _, mode := range []string{"htpasswd", "token"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := regtest.Start(t, regtest.Options{Users: map[string]string{email: token}, Token: mode == "token"})
			want := r.Push(t, "acme/airstudio:1.0.0", regtest.Image(t, "airstudio-1.0.0")).String()
			r.Push(t, "acme/airstudio:1.0.1", regtest.Image(t, "airstudio-1.0.1"))
			set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{{
				Kind: "custom", Name: "airstudio", Source: registries.SourceFile,
				Values: registries.Values{"url": r.URL, "login": email, "password": token},
			}}, registries.Options{})
			if err != nil {
				t.Fatal(err)
			}
			img := image(t, r.Host+"/acme/airstudio:1.0.0")
			in, err := set.Resolve(img)
			if err != nil {
				t.Fatal(err)
			}
			if in.ID() != "custom.airstudio" || in.Source != registries.SourceFile {
				t.Fatalf("Resolve(%s) = %s (%s), want custom.airstudio", img, in.ID(), in.Source)
			}
			tags, d, err := check(ctx(t), in, img)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if strings.Join(tags, ",") != "1.0.0,1.0.1" || d.Digest != want {
				t.Errorf("tags %v digest %s, want [1.0.0 1.0.1] %s", tags, d.Digest, want)
			}
			// Another port of the same address is another registry.
			other := image(t, "127.0.0.1:1/acme/airstudio:1.0.0")
			if in, _ := set.Resolve(other); in == nil || in.ID() == "custom.airstudio" {
				t.Errorf("Resolve(%s) = %v, want an implicit instance", other, in)
			}
		})
	}
}

// TestTagPagination lists a repository of 1,200 tags. Distribution 2.8
// ignores the n parameter of tags/list and answers every tag in one page
// (no Link header), so against it the listing is one request; the same
// registry behind a proxy that pages at 100 (as Harbor, GHCR or Docker Hub
// do) shows the Link headers are followed to the end.
func TestTagPagination(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{})
	const n = 1200
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf("1.%04d", i)
	}
	d := r.Push(t, "team/many:"+tags[0], regtest.Image(t, "many"))
	// Through the API (regtest.Tag) 1,200 tags take seconds; written
	// straight into the registry's storage, a fraction of that.
	r.TagInStorage(t, "team/many", d, tags[1:]...)
	proxy := pagingProxy(t, r, 100)

	for _, tc := range []struct {
		name  string
		url   string
		pages int64
	}{
		{"distribution 2.8", r.URL, 1},
		{"paging at 100", proxy.URL, n / 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(tc.url)
			in := openInstance(t, "custom", "many", registries.Values{"url": tc.url})
			got, err := in.Tags(ctx(t), image(t, u.Host+"/team/many"))
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if len(got) != n || got[0] != tags[0] || got[n-1] != tags[n-1] {
				t.Errorf("%d tags (%v … %v), want %d", len(got), first(got), last(got), n)
			}
			if p := in.Stats().Requests(registries.RequestTags); p != tc.pages {
				t.Errorf("%d tags/list requests, want %d", p, tc.pages)
			}
		})
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// pagingProxy fronts a registry and pages tags/list the way the distribution
// spec describes: at most max tags (fewer when n asks), a Link header to the
// next page with last=.
func pagingProxy(t *testing.T, r *regtest.Registry, max int) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(r.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = r.Transport()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasSuffix(req.URL.Path, "/tags/list") {
			rp.ServeHTTP(w, req)
			return
		}
		up, err := http.NewRequestWithContext(req.Context(), http.MethodGet, r.URL+req.URL.Path, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		up.Header.Set("Authorization", req.Header.Get("Authorization"))
		res, err := (&http.Client{Transport: r.Transport()}).Do(up)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			w.WriteHeader(res.StatusCode)
			_, _ = io.Copy(w, res.Body)
			return
		}
		var list struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		sort.Strings(list.Tags)
		size := max
		if n, err := strconv.Atoi(req.URL.Query().Get("n")); err == nil && n > 0 && n < size {
			size = n
		}
		if after := req.URL.Query().Get("last"); after != "" {
			list.Tags = list.Tags[sort.SearchStrings(list.Tags, after+"\x00"):]
		}
		if len(list.Tags) > size {
			list.Tags = list.Tags[:size]
			next := url.Values{"n": {strconv.Itoa(size)}, "last": {list.Tags[size-1]}}
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, req.URL.Path, next.Encode()))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRequestCost measures what checking images costs on a token registry:
// the ping and the token are paid once per registry and once per
// repository respectively, not once per image.
func TestRequestCost(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "pw"}, Token: true})
	r.Push(t, "team/app:1.0.0", regtest.Image(t, "app-1"))
	r.Push(t, "team/app:2.0.0", regtest.Image(t, "app-2"))
	r.Push(t, "team/other:1.0.0", regtest.Image(t, "other-1"))
	in := openInstance(t, "custom", "corp", registries.Values{"url": r.URL, "login": "alice", "password": "pw"})

	type cost struct{ ping, token, tags, manifest, issuer int64 }
	measure := func() cost {
		s := in.Stats()
		return cost{s.Requests(registries.RequestPing), s.Requests(registries.RequestToken), s.Requests(registries.RequestTags), s.Requests(registries.RequestManifest), int64(r.Issuer.Requests())}
	}
	before := measure()
	for _, step := range []struct {
		name  string
		image string
		want  cost
	}{
		{"first image", "team/app:1.0.0", cost{ping: 1, token: 1, tags: 1, manifest: 1, issuer: 1}},
		{"same repository", "team/app:2.0.0", cost{tags: 1, manifest: 1}},
		{"new repository", "team/other:1.0.0", cost{token: 1, tags: 1, manifest: 1, issuer: 1}},
	} {
		if _, _, err := check(ctx(t), in, image(t, r.Host+"/"+step.image)); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		after := measure()
		got := cost{after.ping - before.ping, after.token - before.token, after.tags - before.tags, after.manifest - before.manifest, after.issuer - before.issuer}
		t.Logf("%s (%s): %+v", step.name, step.image, got)
		if got != step.want {
			t.Errorf("%s (%s) cost %+v, want %+v", step.name, step.image, got, step.want)
		}
		before = after
	}
}

// TestMultiArch reads a multi-platform index and resolves it to one
// platform's manifest.
func TestMultiArch(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{})
	amd64, arm64 := regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64")
	idx := regtest.Index(t, "multi", amd64, arm64)
	idxDigest := r.PushIndex(t, "team/multi:1.0", idx).String()
	single := r.Push(t, "team/multi:single", regtest.Image(t, "single")).String()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	byArch := map[string]string{}
	for _, d := range m.Manifests {
		byArch[d.Platform.Architecture] = d.Digest.String()
	}

	in := openInstance(t, "custom", "local", registries.Values{"url": r.URL})
	img := image(t, r.Host+"/team/multi:1.0")
	ctx := ctx(t)
	d, err := in.Head(ctx, img, "1.0")
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != idxDigest || !d.IsIndex() {
		t.Fatalf("Head = %s (%s), want index %s", d.Digest, d.MediaType, idxDigest)
	}
	for _, tc := range []struct {
		name     string
		digest   string
		platform v1.Platform
		want     string
	}{
		{"index to arm64", idxDigest, arm64, byArch["arm64"]},
		{"index to amd64", idxDigest, amd64, byArch["amd64"]},
		{"single image is itself", single, arm64, single},
	} {
		got, err := in.PlatformDigest(ctx, img, tc.digest, tc.platform)
		if err != nil || got != tc.want {
			t.Errorf("%s: PlatformDigest = %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := in.PlatformDigest(ctx, img, idxDigest, regtest.Platform("linux/s390x")); err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("PlatformDigest for a platform the index lacks: err = %v, want one naming linux/s390x", err)
	}
}

// TestImplicit checks an image on a host no instance serves: it gets an
// anonymous custom instance, which works on an open registry and, on one
// that wants credentials, says which url to configure.
func TestImplicit(t *testing.T) {
	integration(t)
	open := regtest.Start(t, regtest.Options{})
	closed := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "pw"}})
	want := open.Push(t, "team/app:1.0.0", regtest.Image(t, "open")).String()
	closed.Push(t, "team/app:1.0.0", regtest.Image(t, "closed"))
	set, err := registries.NewSet(registries.DefaultCatalog(), nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctx(t)

	img := image(t, open.Host+"/team/app:1.0.0")
	in, err := set.Resolve(img)
	if err != nil {
		t.Fatal(err)
	}
	if in.Source != registries.SourceImplicit || in.Kind != "custom" || !in.Anonymous() {
		t.Errorf("Resolve(%s) = %s, source %s; want an anonymous implicit custom instance", img, in.ID(), in.Source)
	}
	if again, _ := set.Resolve(img); again != in {
		t.Errorf("a second Resolve made another instance; tokens would not be reused")
	}
	if _, d, err := check(ctx, in, img); err != nil || d.Digest != want {
		t.Errorf("open registry: digest %s, %v; want %s", d.Digest, err, want)
	}

	img = image(t, closed.Host+"/team/app:1.0.0")
	in, err = set.Resolve(img)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = check(ctx, in, img)
	if !errors.Is(err, registries.ErrUnauthorized) {
		t.Fatalf("closed registry: err = %v, want one wrapping ErrUnauthorized", err)
	}
	t.Logf("user sees: %v", err)
	// closed is a plain-HTTP registry: the advice names the scheme that answered.
	for _, s := range []string{"requires credentials", "url: http://" + closed.Host} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// TestURLSchemeIsKept: the scheme of a configured url is the one used, even
// on a loopback or private address where go-containerregistry would fall
// back from https to plain http (and send the credentials in clear).
func TestURLSchemeIsKept(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "pw"}})
	r.Push(t, "team/app:1.0.0", regtest.Image(t, "scheme"))
	in := openInstance(t, "custom", "corp", registries.Values{"url": "https://" + r.Host, "login": "alice", "password": "pw"})
	ctx := ctx(t)
	for what, err := range map[string]error{"Test": in.Test(ctx, "", ""), "Tags": func() error {
		_, err := in.Tags(ctx, image(t, r.Host+"/team/app:1.0.0"))
		return err
	}()} {
		if err == nil || !strings.Contains(err.Error(), "answered in plain HTTP (custom.corp); write its url with http://") {
			t.Errorf("%s with url https:// on a plain-HTTP registry: err = %v, want one saying it answers HTTP", what, err)
		}
	}
	if n := in.Stats().Requests(registries.RequestTags) + in.Stats().Requests(registries.RequestManifest); n != 0 {
		t.Errorf("%d API requests went out, want none over plain HTTP", n)
	}
}

// TestRateLimit reads Docker Hub's ratelimit-* headers, here added by a proxy
// in front of a real registry.
func TestRateLimit(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{})
	r.Push(t, "library/nginx:1.27", regtest.Image(t, "nginx"))
	target, _ := url.Parse(r.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		res.Header.Set("ratelimit-limit", "100;w=21600")
		res.Header.Set("ratelimit-remaining", "76;w=21600")
		res.Header.Set("docker-ratelimit-source", "127.0.0.1")
		return nil
	}
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	u, _ := url.Parse(proxy.URL)

	in := openInstance(t, "custom", "hubproxy", registries.Values{"url": proxy.URL})
	if rl := in.Stats().RateLimit(); !rl.Seen.IsZero() {
		t.Fatalf("rate limit %+v before any request", rl)
	}
	if _, _, err := check(ctx(t), in, image(t, u.Host+"/library/nginx:1.27")); err != nil {
		t.Fatal(err)
	}
	rl := in.Stats().RateLimit()
	if rl.Limit != 100 || rl.Remaining != 76 || rl.Window != 6*time.Hour || rl.Seen.IsZero() {
		t.Errorf("RateLimit() = %+v, want 100 remaining 76 per 6h", rl)
	}
}

// TestPrivateCA reaches an HTTPS registry whose certificate a private CA
// signed (and, with token auth, a token server with a certificate of the
// same CA): with cafile it works, without it the error says why.
func TestPrivateCA(t *testing.T) {
	integration(t)
	users := map[string]string{"alice": "pw"}
	for _, auth := range []string{"htpasswd", "token"} {
		t.Run(auth, func(t *testing.T) {
			t.Parallel()
			r := regtest.Start(t, regtest.Options{TLS: true, Users: users, Token: auth == "token"})
			want := r.Push(t, "team/app:1.0.0", regtest.Image(t, "tls")).String()
			img := image(t, r.Host+"/team/app:1.0.0")
			for _, tc := range []struct {
				name    string
				extra   registries.Values
				wantErr string
			}{
				{"cafile", registries.Values{"cafile": r.CAFile}, ""},
				{"insecure", registries.Values{"insecure": "true"}, ""},
				{"no cafile", nil, "presented a certificate from an unknown authority (custom.tls); set cafile"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					vals := registries.Values{"url": r.URL, "login": "alice", "password": "pw"}
					for k, v := range tc.extra {
						vals[k] = v
					}
					in := openInstance(t, "custom", "tls", vals)
					ctx := ctx(t)
					errs := map[string]error{"Test": in.Test(ctx, "", "")}
					_, d, err := check(ctx, in, img)
					errs["check"] = err
					for what, err := range errs {
						switch {
						case tc.wantErr == "" && err != nil:
							t.Errorf("%s: %v", what, err)
						case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
							t.Errorf("%s: err = %v, want one saying %q", what, err, tc.wantErr)
						case err != nil:
							t.Logf("%s: user sees: %v", what, err)
						}
					}
					if tc.wantErr == "" && d.Digest != want {
						t.Errorf("digest %s, want %s", d.Digest, want)
					}
				})
			}
		})
	}
}

// TestTokenServerOnAnotherPrivateAddress: a LAN registry whose challenge
// names its token server by IP on another port (self-hosted GitLab: registry
// :5050, auth :443) works, configured or not. go-containerregistry alone
// refuses such a realm.
func TestTokenServerOnAnotherPrivateAddress(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "s3cret"}, Token: true, RealmIP: true})
	want := reg.Push(t, "team/app:1.0.0", regtest.Image(t, "realm-ip")).String()

	in := openInstance(t, "custom", "lan", registries.Values{"url": reg.URL, "login": "alice", "password": "s3cret"})
	tags, d, err := check(ctx(t), in, image(t, reg.Host+"/team/app:1.0.0"))
	if err != nil || d.Digest != want || len(tags) != 1 {
		t.Fatalf("tags %v, digest %s, err %v; want 1.0.0 at %s", tags, d.Digest, err, want)
	}
	if n := in.Stats().Requests(registries.RequestToken); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if err := in.Test(ctx(t), "", ""); err != nil {
		t.Errorf("connection test: %v", err)
	}
	bad := openInstance(t, "custom", "bad", registries.Values{"url": reg.URL, "login": "alice", "password": "wrong"})
	if _, _, err := check(ctx(t), bad, image(t, reg.Host+"/team/app:1.0.0")); !errors.Is(err, registries.ErrUnauthorized) {
		t.Errorf("wrong password: %v", err)
	}
}

// TestRealmOnAMetadataAddressIsRefused: the realm aliasing above lets a LAN
// registry name a token server on another private address; it must not let
// one name the cloud metadata service. AWS's answers there hold a "Token"
// (the instance role's session token), which go-containerregistry would
// read as the registry's bearer token and send to the registry. The
// registry is a real token-auth one behind a Front whose challenge names
// 169.254.169.254; the instance's proxy maps that address to a local
// server speaking IMDS's answer, so that a request there would be seen.
func TestRealmOnAMetadataAddressIsRefused(t *testing.T) {
	integration(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "pw"}, Token: true})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "imds"))
	var asked atomic.Int64
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"imds-secret","Token":"IMDS-SESSION-TOKEN"}`)
	}))
	t.Cleanup(imds.Close)
	proxy := regtest.StartProxy(t)
	proxy.Hosts["169.254.169.254:80"] = strings.TrimPrefix(imds.URL, "http://")
	front := reg.Front(t, regtest.FrontOptions{Realm: "http://169.254.169.254/latest/meta-data/iam/security-credentials/tagwatch"})

	in := openInstance(t, "custom", "lan", registries.Values{"url": front.URL, "login": "alice", "password": "pw", "proxy": proxy.URL})
	tags, err := in.Tags(ctx(t), image(t, front.Host+"/team/app:1.0.0"))
	t.Logf("tags %v, err %v", tags, err)
	if n := asked.Load(); n > 0 {
		t.Errorf("the metadata service was asked %d times for the registry's token", n)
	}
	for _, q := range front.Log() {
		if q.User == "(opaque bearer token)" {
			t.Errorf("the registry got the metadata service's answer as a bearer token: %+v", q)
		}
	}
	if err == nil {
		t.Fatal("a challenge naming the metadata service gave tags")
	}
	p := registries.Explain(err)
	if p.Class != registries.ClassBlocked || !strings.Contains(p.Reason, front.Host) || strings.Contains(p.Reason, "169.254") {
		t.Errorf("explained as %s: %q; want it blocked, naming %s and not the address its challenge chose", p.Class, p.Reason, front.Host)
	}
}
