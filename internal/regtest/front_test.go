package regtest_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

// TestFrontAndProxy reaches a token registry the way a product serves it
// (its API under a prefix, its token service at a path of its own) by a
// real-looking name only the Proxy resolves, with go-containerregistry.
func TestFrontAndProxy(t *testing.T) {
	skipShort(t)
	const host = "harbor.example.com"
	r := regtest.Start(t, regtest.Options{TLS: true, Token: true, Users: map[string]string{"robot$p+x": "s"}, DNSNames: []string{host}})
	r.Issuer.Anonymous = func(a regtest.Access) []string {
		if a.Name == "public/app" {
			return []string{"pull"}
		}
		return nil
	}
	// Under the prefix /api/docker/p, app is the registry's app.
	want := r.Push(t, "app:1.0.0", regtest.Image(t, "front")).String()
	r.Push(t, "public/app:1.0.0", regtest.Image(t, "public"))
	f := r.Front(t, regtest.FrontOptions{Prefix: "/api/docker/p", TokenPath: "/service/token"})
	p := regtest.StartProxy(t)
	p.Refuse = true
	p.Hosts[host+":443"] = f.Host

	proxyURL, _ := url.Parse(p.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: r.RootCAs(), MinVersion: tls.VersionTLS12}}
	// go-containerregistry has no path prefix: put it in front of /v2/ as
	// a client of such a product must.
	prefixed := roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == host && strings.HasPrefix(req.URL.Path, "/v2") {
			req = req.Clone(req.Context())
			req.URL.Path = "/api/docker/p" + req.URL.Path
		}
		return tr.RoundTrip(req)
	})
	ref, err := name.NewTag(host + "/app:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(prefixed)}
	d, err := remote.Head(ref, append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "robot$p+x", Password: "s"})))...)
	if err != nil || d.Digest.String() != want {
		t.Fatalf("Head = %v, %v; want %s", d, err, want)
	}
	var paths []string
	for _, rec := range f.Log() {
		paths = append(paths, rec.To+" "+rec.Path)
	}
	for _, w := range []string{"registry /api/docker/p/v2/", "token /service/token", "registry /api/docker/p/v2/app/manifests/1.0.0"} {
		if !slices.Contains(paths, w) {
			t.Errorf("the Front served %v; want %q among them", paths, w)
		}
	}
	if got := r.Issuer.Log(); len(got) == 0 || got[len(got)-1].User != "robot$p+x" {
		t.Errorf("issuer log %+v; want robot$p+x last", got)
	}
	// Outside the prefix the Front serves nothing, and says so in its log.
	res, err := (&http.Client{Transport: tr}).Get("https://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || f.Log()[len(f.Log())-1].To != "" {
		t.Errorf("GET /v2/ outside the prefix: %s", res.Status)
	}
	// Anonymous pulls of a public repository; none of a private one.
	if _, err := remote.Head(mustTag(t, host+"/public/app:1.0.0"), opts...); err != nil {
		t.Errorf("anonymous pull of public/app: %v", err)
	}
	if _, err := remote.Head(ref, opts...); err == nil {
		t.Errorf("anonymous pull of the private app succeeded")
	}
	// The proxy tunnelled the name asked for, and refuses any other.
	if got := p.Targets(); !slices.Equal(got, []string{host + ":443"}) {
		t.Errorf("proxy targets %v", got)
	}
	_, err = (&http.Client{Transport: tr}).Get("https://registry-1.docker.io/v2/")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("a host of no test through the proxy: %v; want 403", err)
	}
}

// TestIssuerAnonymous grants anonymous pulls of public repositories only.
func TestIssuerAnonymous(t *testing.T) {
	skipShort(t)
	r := regtest.Start(t, regtest.Options{Token: true, Users: map[string]string{"alice": "pw"}})
	r.Issuer.Anonymous = func(a regtest.Access) []string {
		if a.Name == "public/app" {
			return []string{"pull"}
		}
		return nil
	}
	r.Push(t, "public/app:1", regtest.Image(t, "p"))
	r.Push(t, "private/app:1", regtest.Image(t, "q"))
	ctx := context.Background()
	if _, _, err := pull(ctx, r, authn.Anonymous, "public/app", "1"); err != nil {
		t.Errorf("anonymous pull of a public repository: %v", err)
	}
	if _, _, err := pull(ctx, r, authn.Anonymous, "private/app", "1"); err == nil {
		t.Errorf("anonymous pull of a private repository succeeded")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}
