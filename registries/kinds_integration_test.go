package registries_test

// The kinds of issue 16 read tags and digests here with the credential form
// each service really uses, from registries reached by their real host
// names: fra.ocir.io, registry.digitalocean.com, us.icr.io… A proxy on
// loopback stands in for DNS (it maps each name to a local server and
// refuses any other, so nothing reaches the internet), the local servers
// hold TLS certificates for the real names, and Fronts serve each
// service's token endpoint where the service has it (Harbor's
// /service/token, JFrog's /artifactory/api/docker/<repo>/v2/token,
// DigitalOcean's api.digitalocean.com/v2/registry/auth…). Behind them is
// the real CNCF distribution registry with token auth (internal/regtest).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

// The credentials the token server knows: each kind's login convention.
var worldUsers = map[string]string{
	"octocat":                       "cb-token-1",           // codeberg: username + access token
	"robot$library+tagwatch":        "harbor-robot-secret",  // harbor: robot account, $ included
	"dop_v1_docr0123":               "dop_v1_docr0123",      // docr: the token as both
	"axaxnpcrorw5/jane@example.com": "oci-auth-token-1",     // ocir: <namespace>/<user> + auth token
	"acme@1234567890123456":         "ali-registry-pw",      // alicr: RAM user + registry password
	"iamapikey":                     "ibm-api-key-1",        // icr: fixed login + API key
	"jane@example.com":              "jfrog-identity-token", // jfrog: user + identity token
	"api":                           "proget-api-key-1",     // proget: fixed login + API key
	"nologin":                       "scw-secret-key-1",     // scaleway: fixed login + secret key
	"acme-elastic":                  "elastic-pw-1",         // elastic: a restricted images' login
	"johndoe":                       "dckr_pat_dhi0123",     // dhi: Docker Hub user + PAT
	"linode-user":                   "linode-token-1",       // linode: htpasswd user
	"nexus-user":                    "nexus-pw-1",           // nexus: htpasswd user
}

// worldPublic are the repositories anyone may pull, as on the real services.
var worldPublic = map[string]bool{"forgejo/forgejo": true, "elasticsearch/elasticsearch": true, "truecharts/jellyfin": true}

// worldFront is how a service serves its registry and token endpoint.
type worldFront struct {
	hosts []string // names served, port 443
	opts  regtest.FrontOptions
	// tokenHost is where token requests must arrive ("" with hosts[0]).
	tokenHost string
}

var worldFronts = []worldFront{
	{hosts: []string{"codeberg.org"}, opts: regtest.FrontOptions{TokenPath: "/v2/token"}},
	{hosts: []string{"harbor.example.com"}, opts: regtest.FrontOptions{TokenPath: "/service/token"}},
	{hosts: []string{"registry.digitalocean.com"}, opts: regtest.FrontOptions{Realm: "https://api.digitalocean.com/v2/registry/auth"}, tokenHost: "api.digitalocean.com"},
	{hosts: []string{"api.digitalocean.com"}, opts: regtest.FrontOptions{TokenPath: "/v2/registry/auth"}},
	{hosts: []string{"fra.ocir.io", "ocir.eu-frankfurt-1.oci.oraclecloud.com"}, opts: regtest.FrontOptions{TokenPath: "/20180419/docker/token"}},
	{hosts: []string{"registry.cn-hangzhou.aliyuncs.com", "acme-registry.cn-hangzhou.cr.aliyuncs.com"}, opts: regtest.FrontOptions{Realm: "https://dockerauth.cn-hangzhou.aliyuncs.com/auth"}, tokenHost: "dockerauth.cn-hangzhou.aliyuncs.com"},
	{hosts: []string{"dockerauth.cn-hangzhou.aliyuncs.com"}, opts: regtest.FrontOptions{TokenPath: "/auth"}},
	{hosts: []string{"icr.io", "us.icr.io"}, opts: regtest.FrontOptions{TokenPath: "/oauth/token"}},
	{hosts: []string{"acme.jfrog.io"}, opts: regtest.FrontOptions{TokenPath: "/v2/token"}},
	{hosts: []string{"artifactory.example.com"}, opts: regtest.FrontOptions{Prefix: "/artifactory/api/docker/docker-local", TokenPath: "/artifactory/api/docker/docker-local/v2/token"}},
	{hosts: []string{"proget.example.com"}, opts: regtest.FrontOptions{TokenPath: "/v2/_auth"}},
	{hosts: []string{"rg.fr-par.scw.cloud"}, opts: regtest.FrontOptions{Realm: "https://api.scaleway.com/registry-internal/v1/regions/fr-par/tokens"}, tokenHost: "api.scaleway.com"},
	{hosts: []string{"api.scaleway.com"}, opts: regtest.FrontOptions{TokenPath: "/registry-internal/v1/regions/fr-par/tokens"}},
	{hosts: []string{"docker.elastic.co"}, opts: regtest.FrontOptions{Realm: "https://docker-auth.elastic.co/auth"}, tokenHost: "docker-auth.elastic.co"},
	{hosts: []string{"docker-auth.elastic.co"}, opts: regtest.FrontOptions{TokenPath: "/auth"}},
	{hosts: []string{"oci.trueforge.org"}, opts: regtest.FrontOptions{TokenPath: "/token"}},
	{hosts: []string{"dhi.io"}, opts: regtest.FrontOptions{TokenPath: "/token"}},
}

// worldOpen are the hosts of the anonymous registries without token auth.
var worldOpen = []string{"mcr.microsoft.com", "registry.k8s.io"}

// world is the stand-in internet, shared by the tests of this file.
type world struct {
	token, open *regtest.Registry
	proxy       *regtest.Proxy
	fronts      map[string]*regtest.Front // by host name
	tokenHost   map[string]string         // registry host → token host
	digests     map[string]string         // repo:tag → digest
	roots       *x509.CertPool            // the CAs of both registries
}

// startWorld builds the world for one test: two registries, the Fronts and
// the proxy, all stopped when the test ends.
func startWorld(t *testing.T) *world {
	t.Helper()
	var names []string
	for _, f := range worldFronts {
		names = append(names, f.hosts...)
	}
	names = append(names, worldOpen...)
	w := &world{fronts: map[string]*regtest.Front{}, tokenHost: map[string]string{}, digests: map[string]string{}}
	w.token = regtest.Start(t, regtest.Options{TLS: true, Token: true, Users: worldUsers, DNSNames: names})
	w.token.Issuer.Anonymous = func(a regtest.Access) []string {
		if a.Type == "repository" && worldPublic[a.Name] {
			return []string{"pull"}
		}
		return nil
	}
	w.open = regtest.Start(t, regtest.Options{TLS: true, DNSNames: names})
	w.roots = x509.NewCertPool()
	for _, r := range []*regtest.Registry{w.token, w.open} {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil || !w.roots.AppendCertsFromPEM(pem) {
			t.Fatalf("reading %s: %v", r.CAFile, err)
		}
	}
	w.proxy = regtest.StartProxy(t)
	w.proxy.Refuse = true
	for _, f := range worldFronts {
		front := w.token.Front(t, f.opts)
		for _, h := range f.hosts {
			w.fronts[h] = front
			w.proxy.Hosts[h+":443"] = front.Host
			w.tokenHost[h] = h
			if f.tokenHost != "" {
				w.tokenHost[h] = f.tokenHost
			}
		}
	}
	for _, h := range worldOpen {
		w.proxy.Hosts[h+":443"] = w.open.Host
	}
	for _, repoTag := range []string{
		"forgejo/forgejo:11.0.1", "acme/private-app:1.0.0", "library/app:2.1.0", "acme/docr-app:1.0.0",
		"axaxnpcrorw5/ocir-app:3.0.0", "acme/ali-app:1.0.0", "team/ali-ent:1.0.0", "acme/icr-app:1.0.0",
		"docker-local/jfrog-app:7.0.0", "jfrog-onprem:7.1.0", "docker-feed/proget-app:2024.1.0",
		"acme/scw-app:1.2.3", "elasticsearch/elasticsearch:8.15.0", "acme/elastic-restricted:8.15.0",
		"truecharts/jellyfin:10.9.11", "python:3.13",
	} {
		w.digests[repoTag] = w.token.Push(t, repoTag, regtest.Image(t, repoTag)).String()
	}
	for _, repoTag := range []string{"dotnet/runtime:8.0.8", "ingress-nginx/controller:v1.11.2"} {
		w.digests[repoTag] = w.open.Push(t, repoTag, regtest.Image(t, repoTag)).String()
	}
	return w
}

// options reach the world: through its proxy, trusting its CA, as a
// production transport would reach the internet.
func (w *world) options() registries.Options {
	tr := registries.NewTransport()
	tr.Proxy = http.ProxyURL(mustURL(w.proxy.URL))
	tr.TLSClientConfig = &tls.Config{RootCAs: w.roots, MinVersion: tls.VersionTLS12}
	return registries.Options{Transport: tr}
}

func (w *world) instance(t *testing.T, kind, name string, src registries.Source, vals registries.Values) *registries.Instance {
	t.Helper()
	in, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: kind, Name: name, Source: src, Values: vals}, w.options())
	if err != nil {
		t.Fatalf("Open(%s.%s): %v", kind, name, err)
	}
	return in
}

// kindCase is one kind read with its credential form.
type kindCase struct {
	kind   string
	name   string // instance name; "public" with source default
	source registries.Source
	values registries.Values
	image  string // host/repository:tag as an admin writes it
	repo   string // the repository:tag behind it in the world
	// login is who the token server must see: the credential form ("" anonymous).
	login string
	// wrong is the same form with a bad secret: refused, with the hint.
	wrong registries.Values
}

func kindCases() []kindCase {
	file, def := registries.SourceFile, registries.SourceDefault
	v := func(kv ...string) registries.Values {
		out := registries.Values{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	return []kindCase{
		{kind: "codeberg", name: "public", source: def, image: "codeberg.org/forgejo/forgejo:11.0.1", repo: "forgejo/forgejo:11.0.1"},
		{kind: "codeberg", name: "me", source: file, values: v("login", "octocat", "password", "cb-token-1"), image: "codeberg.org/acme/private-app:1.0.0", repo: "acme/private-app:1.0.0",
			login: "octocat", wrong: v("login", "octocat", "password", "my-account-password")},
		{kind: "harbor", name: "main", source: file, values: v("url", "https://harbor.example.com", "login", "robot$library+tagwatch", "password", "harbor-robot-secret"),
			image: "harbor.example.com/library/app:2.1.0", repo: "library/app:2.1.0",
			// The robot's name as the project page shows it but without the $: refused.
			login: "robot$library+tagwatch", wrong: v("url", "https://harbor.example.com", "login", "robotlibrary+tagwatch", "password", "harbor-robot-secret")},
		{kind: "docr", name: "main", source: file, values: v("token", "dop_v1_docr0123"), image: "registry.digitalocean.com/acme/docr-app:1.0.0", repo: "acme/docr-app:1.0.0",
			login: "dop_v1_docr0123", wrong: v("token", "dop_v1_revoked")},
		{kind: "ocir", name: "main", source: file, values: v("region", "fra", "namespace", "axaxnpcrorw5", "username", "jane@example.com", "token", "oci-auth-token-1"),
			image: "fra.ocir.io/axaxnpcrorw5/ocir-app:3.0.0", repo: "axaxnpcrorw5/ocir-app:3.0.0",
			login: "axaxnpcrorw5/jane@example.com", wrong: v("region", "fra", "namespace", "axaxnpcrorw5", "username", "jane@example.com", "token", "console-password")},
		{kind: "ocir", name: "long", source: file, values: v("region", "eu-frankfurt-1", "namespace", "axaxnpcrorw5", "username", "axaxnpcrorw5/jane@example.com", "token", "oci-auth-token-1"),
			image: "ocir.eu-frankfurt-1.oci.oraclecloud.com/axaxnpcrorw5/ocir-app:3.0.0", repo: "axaxnpcrorw5/ocir-app:3.0.0", login: "axaxnpcrorw5/jane@example.com"},
		{kind: "alicr", name: "personal", source: file, values: v("region", "cn-hangzhou", "login", "acme@1234567890123456", "password", "ali-registry-pw"),
			image: "registry.cn-hangzhou.aliyuncs.com/acme/ali-app:1.0.0", repo: "acme/ali-app:1.0.0",
			login: "acme@1234567890123456", wrong: v("region", "cn-hangzhou", "login", "acme@1234567890123456", "password", "console-sign-in-password")},
		{kind: "alicr", name: "acme", source: file, values: v("instance", "acme", "region", "cn-hangzhou", "login", "acme@1234567890123456", "password", "ali-registry-pw"),
			image: "acme-registry.cn-hangzhou.cr.aliyuncs.com/team/ali-ent:1.0.0", repo: "team/ali-ent:1.0.0", login: "acme@1234567890123456"},
		{kind: "icr", name: "main", source: file, values: v("apikey", "ibm-api-key-1"), image: "us.icr.io/acme/icr-app:1.0.0", repo: "acme/icr-app:1.0.0",
			login: "iamapikey", wrong: v("apikey", "ibm-api-key-deleted")},
		{kind: "jfrog", name: "cloud", source: file, values: v("url", "https://acme.jfrog.io", "login", "jane@example.com", "password", "jfrog-identity-token"),
			image: "acme.jfrog.io/docker-local/jfrog-app:7.0.0", repo: "docker-local/jfrog-app:7.0.0",
			login: "jane@example.com", wrong: v("url", "https://acme.jfrog.io", "login", "jane@example.com", "password", "expired-token")},
		{kind: "jfrog", name: "onprem", source: file, values: v("url", "https://artifactory.example.com/artifactory/api/docker/docker-local/", "login", "jane@example.com", "password", "jfrog-identity-token"),
			image: "artifactory.example.com/jfrog-onprem:7.1.0", repo: "jfrog-onprem:7.1.0", login: "jane@example.com"},
		{kind: "proget", name: "main", source: file, values: v("url", "https://proget.example.com", "apikey", "proget-api-key-1"),
			image: "proget.example.com/docker-feed/proget-app:2024.1.0", repo: "docker-feed/proget-app:2024.1.0",
			login: "api", wrong: v("url", "https://proget.example.com", "apikey", "wrong-api-key")},
		{kind: "scaleway", name: "main", source: file, values: v("region", "fr-par", "secretkey", "scw-secret-key-1"), image: "rg.fr-par.scw.cloud/acme/scw-app:1.2.3", repo: "acme/scw-app:1.2.3",
			login: "nologin", wrong: v("region", "fr-par", "secretkey", "SCWXXXXXXXXXXXXXXXXX")},
		{kind: "elastic", name: "public", source: def, image: "docker.elastic.co/elasticsearch/elasticsearch:8.15.0", repo: "elasticsearch/elasticsearch:8.15.0"},
		{kind: "elastic", name: "acme", source: file, values: v("login", "acme-elastic", "password", "elastic-pw-1"), image: "docker.elastic.co/acme/elastic-restricted:8.15.0", repo: "acme/elastic-restricted:8.15.0",
			login: "acme-elastic", wrong: v("login", "acme-elastic", "password", "nope")},
		{kind: "trueforge", name: "public", source: def, image: "oci.trueforge.org/truecharts/jellyfin:10.9.11", repo: "truecharts/jellyfin:10.9.11"},
		{kind: "dhi", name: "main", source: file, values: v("login", "johndoe", "password", "dckr_pat_dhi0123"), image: "dhi.io/python:3.13", repo: "python:3.13",
			login: "johndoe", wrong: v("login", "johndoe@example.com", "password", "dckr_pat_dhi0123")},
		{kind: "mcr", name: "public", source: def, image: "mcr.microsoft.com/dotnet/runtime:8.0.8", repo: "dotnet/runtime:8.0.8"},
		{kind: "k8s", name: "public", source: def, image: "registry.k8s.io/ingress-nginx/controller:v1.11.2", repo: "ingress-nginx/controller:v1.11.2"},
	}
}

// TestKindsCredentialForms reads each kind's image with its credential form
// from the registry on its real host name, and checks what went on the
// wire: the proxy was asked for that host, the token endpoint is the
// service's, the token server saw the login the service expects.
func TestKindsCredentialForms(t *testing.T) {
	integration(t)
	w := startWorld(t)
	cat := registries.DefaultCatalog()
	for _, tc := range kindCases() {
		t.Run(tc.kind+"."+tc.name, func(t *testing.T) {
			t.Parallel()
			in := w.instance(t, tc.kind, tc.name, tc.source, tc.values)
			img := image(t, tc.image)
			if !in.Serves(img.Host) {
				t.Fatalf("%s does not serve %s", in.ID(), img.Host)
			}
			repo, tag, _ := strings.Cut(tc.repo, ":")
			tags, d, err := check(ctx(t), in, img)
			if err != nil {
				t.Fatalf("check %s: %v", img, err)
			}
			if !slices.Equal(tags, []string{tag}) || d.Digest != w.digests[tc.repo] {
				t.Errorf("tags %v, digest %s; want [%s], %s", tags, d.Digest, tag, w.digests[tc.repo])
			}
			// One check costs what it costs on any registry: wherever the
			// service keeps its token endpoint, it is counted as one.
			cost := in.Stats().RequestsByClass()
			wantCost := map[string]int64{"ping": 1, "token": 1, "tags": 1, "manifest": 1, "other": 0}
			if slices.Contains(worldOpen, img.Host) {
				wantCost["token"] = 0
			}
			if !maps.Equal(cost, wantCost) {
				t.Errorf("requests by class %v; want %v", cost, wantCost)
			}
			if got := w.proxy.Targets(); !slices.Contains(got, img.Host+":443") {
				t.Errorf("the proxy was never asked for %s:443 (asked for %v)", img.Host, got)
			}
			front := w.fronts[img.Host]
			if front != nil {
				// The registry API was reached under the url's path when
				// there is one, and nothing was asked outside it.
				for _, r := range front.Log() {
					if r.Host == img.Host && r.To == "" {
						t.Errorf("%s %s%s reached neither the registry nor the token service", r.Method, r.Host, r.Path)
					}
				}
			}
			spec := cat[tc.kind].Spec()
			if _, test := in.Hosts(); test != "" {
				if err := in.Test(ctx(t), test, ""); err != nil {
					t.Errorf("connection test on %s: %v", test, err)
				}
			}
			if slices.Contains(worldOpen, img.Host) {
				return // no token server at all
			}
			// The token server saw the service's login for this repository,
			// at the service's token endpoint.
			var users []string
			for _, r := range w.token.Issuer.Log() {
				if slices.Contains(r.Scopes, "repository:"+repo+":pull") && r.Status == http.StatusOK {
					users = append(users, r.User)
				}
			}
			if !slices.Contains(users, tc.login) {
				t.Errorf("token requests for %s came from %q; want %q", repo, users, tc.login)
			}
			tokenHost := w.tokenHost[img.Host]
			var paths []string
			for _, r := range w.fronts[tokenHost].Log() {
				if r.To == "token" && r.Host == tokenHost {
					paths = append(paths, r.Path)
				}
			}
			if len(paths) == 0 {
				t.Errorf("no token request reached %s", tokenHost)
			}
			if tc.wrong == nil {
				return
			}
			bad := w.instance(t, tc.kind, tc.name, tc.source, tc.wrong)
			_, err = bad.Tags(ctx(t), img)
			if !errors.Is(err, registries.ErrUnauthorized) {
				t.Fatalf("with %v: err = %v; want one wrapping ErrUnauthorized", tc.wrong, err)
			}
			if spec.CredentialHint == "" || !strings.Contains(err.Error(), spec.CredentialHint) || !strings.Contains(err.Error(), bad.ID()) {
				t.Errorf("refusal %q does not name %s and add the hint %q", err, bad.ID(), spec.CredentialHint)
			}
			for name, val := range tc.wrong {
				if d, _ := spec.Variable(name); d.Secret && strings.Contains(err.Error(), val) {
					t.Errorf("the refusal shows the secret %s: %v", name, err)
				}
			}
			t.Logf("user sees: %v", err)
		})
	}
}

// TestKindsAnonymousDefaultNeedsCredentials: codeberg.public reads public
// packages; a private one is refused with what to configure and how.
func TestKindsAnonymousDefaultNeedsCredentials(t *testing.T) {
	integration(t)
	w := startWorld(t)
	in := w.instance(t, "codeberg", registries.DefaultName, registries.SourceDefault, nil)
	_, err := in.Tags(ctx(t), image(t, "codeberg.org/acme/private-app:1.0.0"))
	if !errors.Is(err, registries.ErrUnauthorized) {
		t.Fatalf("err = %v; want ErrUnauthorized", err)
	}
	wantErrContains(t, err, "codeberg.public has none", "read:package")
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestKindsNexus: one Nexus instance, one set of credentials, reads the
// Docker repositories on two connector ports of nexus.example.com, and
// another reads one under /repository/<name> with the path in its url. The
// registries behind them use htpasswd (Nexus's Basic realm).
func TestKindsNexus(t *testing.T) {
	integration(t)
	const host = "nexus.example.com"
	users := map[string]string{"nexus-user": worldUsers["nexus-user"]}
	hosted := regtest.Start(t, regtest.Options{TLS: true, Users: users, DNSNames: []string{host}})
	group := regtest.Start(t, regtest.Options{TLS: true, Users: users, DNSNames: []string{host}})
	wantHosted := hosted.Push(t, "team/app:1.0.0", regtest.Image(t, "nexus-hosted")).String()
	wantGroup := group.Push(t, "team/app:2.0.0", regtest.Image(t, "nexus-group")).String()
	front := hosted.Front(t, regtest.FrontOptions{Prefix: "/repository/docker-hosted"})
	p := regtest.StartProxy(t)
	p.Refuse = true
	p.Hosts[host+":8082"] = hosted.Host
	p.Hosts[host+":8083"] = group.Host
	p.Hosts[host+":443"] = front.Host
	roots := x509.NewCertPool()
	for _, r := range []*regtest.Registry{hosted, group} {
		pem, _ := os.ReadFile(r.CAFile)
		roots.AppendCertsFromPEM(pem)
	}
	tr := registries.NewTransport()
	tr.Proxy = http.ProxyURL(mustURL(p.URL))
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	open := func(vals registries.Values) *registries.Instance {
		in, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: "nexus", Name: "main", Source: registries.SourceFile, Values: vals}, registries.Options{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}

	ports := open(registries.Values{"url": "https://" + host + ":8082", "ports": "8083", "login": "nexus-user", "password": users["nexus-user"]})
	for ref, want := range map[string]string{host + ":8082/team/app:1.0.0": wantHosted, host + ":8083/team/app:2.0.0": wantGroup} {
		img := image(t, ref)
		_, d, err := check(ctx(t), ports, img)
		if err != nil || d.Digest != want {
			t.Errorf("%s: %s, %v; want %s", ref, d.Digest, err, want)
		}
	}
	if ports.Serves(host + ":8084") {
		t.Errorf("a port not listed is served")
	}

	path := open(registries.Values{"url": "https://" + host + "/repository/docker-hosted", "login": "nexus-user", "password": users["nexus-user"]})
	_, d, err := check(ctx(t), path, image(t, host+"/team/app:1.0.0"))
	if err != nil || d.Digest != wantHosted {
		t.Fatalf("under /repository/docker-hosted: %s, %v; want %s", d.Digest, err, wantHosted)
	}
	if err := path.Test(ctx(t), "", ""); err != nil {
		t.Errorf("connection test under the path: %v", err)
	}
	var got []string
	for _, r := range front.Log() {
		got = append(got, r.Method+" "+r.Path)
		if r.To != "registry" {
			t.Errorf("%s %s missed the repository's path", r.Method, r.Path)
		}
	}
	for _, want := range []string{"GET /repository/docker-hosted/v2/team/app/tags/list", "HEAD /repository/docker-hosted/v2/team/app/manifests/1.0.0"} {
		if !slices.Contains(got, want) {
			t.Errorf("the front saw %v; want %q", got, want)
		}
	}

	bad := open(registries.Values{"url": "https://" + host + ":8082", "ports": "8083", "login": "nexus-user", "password": "wrong"})
	_, err = bad.Tags(ctx(t), image(t, host+":8083/team/app:2.0.0"))
	if !errors.Is(err, registries.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	wantErrContains(t, err, "nexus.main", registries.Nexus{}.Spec().CredentialHint)
}

// TestKindsLinode: a registry run on Linode is the distribution registry
// with htpasswd, as the Marketplace app sets it up.
func TestKindsLinode(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{Users: map[string]string{"linode-user": worldUsers["linode-user"]}})
	want := r.Push(t, "team/app:1.0.0", regtest.Image(t, "linode")).String()
	in := openInstance(t, "linode", "main", registries.Values{"url": r.URL, "login": "linode-user", "password": worldUsers["linode-user"]})
	if _, d, err := check(ctx(t), in, image(t, r.Host+"/team/app:1.0.0")); err != nil || d.Digest != want {
		t.Fatalf("%s, %v; want %s", d.Digest, err, want)
	}
	bad := openInstance(t, "linode", "main", registries.Values{"url": r.URL, "login": "linode-user", "password": "nope"})
	_, err := bad.Tags(ctx(t), image(t, r.Host+"/team/app:1.0.0"))
	if !errors.Is(err, registries.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	wantErrContains(t, err, "linode.main", "A registry on Linode expects")
}
