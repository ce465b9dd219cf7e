package registries_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

// TestSpecProxy: every kind takes a proxy of its own, and a bad one is a
// clear error about that variable.
func TestSpecProxy(t *testing.T) {
	cat := registries.DefaultCatalog()
	for _, kind := range cat.Kinds() {
		spec := cat[kind].Spec()
		decl, ok := spec.Variable("proxy")
		if !ok || decl.Secret || decl.Required || !strings.Contains(decl.Default, "HTTPS_PROXY") {
			t.Errorf("%s: proxy variable %+v; want an optional, non-secret one defaulting to HTTPS_PROXY", kind, decl)
			continue
		}
		base := registries.Values{}
		for k, v := range spec.Example {
			base[k] = v
		}
		if kind == "gcr" {
			base = registries.Values{} // its example key is a placeholder
		}
		for _, tc := range []struct{ proxy, err string }{
			{"http://proxy.lan:3128", ""},
			{"https://proxy.lan", ""},
			{"socks5://127.0.0.1:1080", ""},
			{"none", ""},
			{"proxy.lan:3128", `proxy must start with http://, https://, socks5:// or socks5h://, not "proxy.lan:3128"`},
			{"ftp://proxy.lan", `proxy must start with http://, https://, socks5:// or socks5h://, not "ftp://proxy.lan"`},
			{"http://", `proxy must be a proxy URL such as http://proxy.lan:3128, or none, not "http://"`},
			{"http://me:hunter2@proxy.lan:3128", "proxy must not hold credentials"},
		} {
			vals := registries.Values{"proxy": tc.proxy}
			for k, v := range base {
				vals[k] = v
			}
			_, err := spec.Validate(kind+".x", vals)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("%s proxy %q: %v", kind, tc.proxy, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), "registry "+kind+".x: "+tc.err)):
				t.Errorf("%s proxy %q: err = %v; want %q", kind, tc.proxy, err, tc.err)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("the error shows the proxy's password: %v", err)
			}
		}
	}
}

// TestProxyPerInstance reaches an HTTPS token registry through a CONNECT
// proxy named by the instance's proxy variable, and a plain-HTTP one by a
// name only the proxy resolves, with absolute-form requests: the proxy's
// log shows every request went through it.
func TestProxyPerInstance(t *testing.T) {
	integration(t)
	users := map[string]string{"alice": "pw"}
	tlsReg := regtest.Start(t, regtest.Options{TLS: true, Token: true, Users: users})
	wantTLS := tlsReg.Push(t, "team/app:1.0.0", regtest.Image(t, "proxy-tls")).String()
	plain := regtest.Start(t, regtest.Options{Users: users})
	wantPlain := plain.Push(t, "team/app:2.0.0", regtest.Image(t, "proxy-plain")).String()
	p := regtest.StartProxy(t)
	p.Hosts["registry.test:5000"] = plain.Host

	t.Run("CONNECT", func(t *testing.T) {
		in := openInstance(t, "custom", "tls", registries.Values{"url": tlsReg.URL, "cafile": tlsReg.CAFile, "login": "alice", "password": "pw", "proxy": p.URL})
		_, d, err := check(ctx(t), in, image(t, tlsReg.Host+"/team/app:1.0.0"))
		if err != nil || d.Digest != wantTLS {
			t.Fatalf("through the proxy: %s, %v; want %s", d.Digest, err, wantTLS)
		}
		issuer := strings.TrimPrefix(tlsReg.Issuer.URL, "https://")
		for _, target := range []string{tlsReg.Host, issuer} {
			if !slices.ContainsFunc(p.Log(), func(r regtest.ProxyRequest) bool {
				return r.Method == http.MethodConnect && r.Target == target && r.Status == http.StatusOK
			}) {
				t.Errorf("no CONNECT %s in the proxy's log %+v", target, p.Log())
			}
		}
	})
	t.Run("forward by a name only the proxy knows", func(t *testing.T) {
		vals := registries.Values{"url": "http://registry.test:5000", "login": "alice", "password": "pw", "proxy": p.URL}
		in := openInstance(t, "custom", "plain", vals)
		_, d, err := check(ctx(t), in, image(t, "registry.test:5000/team/app:2.0.0"))
		if err != nil || d.Digest != wantPlain {
			t.Fatalf("through the proxy: %s, %v; want %s", d.Digest, err, wantPlain)
		}
		var urls []string
		for _, r := range p.Log() {
			if r.Target == "registry.test:5000" {
				urls = append(urls, r.Method+" "+r.URL)
			}
		}
		for _, want := range []string{"GET http://registry.test:5000/v2/team/app/tags/list?n=1000", "HEAD http://registry.test:5000/v2/team/app/manifests/2.0.0"} {
			if !slices.Contains(urls, want) {
				t.Errorf("the proxy forwarded %v; want %q among them", urls, want)
			}
		}
		// Without the proxy the name does not resolve: the proxy was needed.
		delete(vals, "proxy")
		direct := openInstance(t, "custom", "plain", vals)
		if _, err := direct.Tags(ctx(t), image(t, "registry.test:5000/team/app:2.0.0")); err == nil {
			t.Errorf("registry.test resolved without the proxy; the test proves nothing")
		}
	})
	t.Run("a dead proxy is the error", func(t *testing.T) {
		in := openInstance(t, "custom", "tls", registries.Values{"url": tlsReg.URL, "cafile": tlsReg.CAFile, "proxy": "http://127.0.0.1:1"})
		_, err := in.Tags(ctx(t), image(t, tlsReg.Host+"/team/app:1.0.0"))
		if err == nil || !strings.Contains(err.Error(), "through the proxy at 127.0.0.1:1: nothing listens there") || !strings.Contains(err.Error(), "custom.tls") {
			t.Errorf("err = %v; want one naming the proxy connection and custom.tls", err)
		}
	})
}

// TestProxyFromEnvironment: an instance without a proxy of its own uses the
// environment's HTTP_PROXY/HTTPS_PROXY unless NO_PROXY names its host, and
// proxy: none turns it off.
func TestProxyFromEnvironment(t *testing.T) {
	integration(t)
	users := map[string]string{"alice": "pw"}
	plain := regtest.Start(t, regtest.Options{Users: users})
	plain.Push(t, "team/app:1.0.0", regtest.Image(t, "env-plain"))
	secure := regtest.Start(t, regtest.Options{TLS: true, Users: users, DNSNames: []string{"secure.test"}})
	secure.Push(t, "team/app:1.0.0", regtest.Image(t, "env-tls"))
	p := regtest.StartProxy(t)
	p.Hosts["registry.test:5000"] = plain.Host
	p.Hosts["secure.test:443"] = secure.Host

	for _, tc := range []struct {
		name    string
		env     map[string]string
		proxy   string // the instance's variable
		viaHTTP bool   // registry.test goes through the proxy
		viaTLS  bool   // secure.test goes through the proxy
	}{
		{name: "HTTP_PROXY and HTTPS_PROXY", env: map[string]string{"HTTP_PROXY": p.URL, "HTTPS_PROXY": p.URL}, viaHTTP: true, viaTLS: true},
		{name: "lower-case spellings", env: map[string]string{"http_proxy": p.URL, "https_proxy": p.URL}, viaHTTP: true, viaTLS: true},
		{name: "HTTPS_PROXY only", env: map[string]string{"HTTPS_PROXY": p.URL}, viaTLS: true},
		{name: "NO_PROXY", env: map[string]string{"HTTP_PROXY": p.URL, "HTTPS_PROXY": p.URL, "NO_PROXY": "secure.test,.example.com"}, viaHTTP: true},
		{name: "proxy none", env: map[string]string{"HTTP_PROXY": p.URL, "HTTPS_PROXY": p.URL}, proxy: "none"},
		{name: "no environment, the instance's proxy", env: nil, proxy: p.URL, viaHTTP: true, viaTLS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := registries.Options{Transport: registries.NewTransportFromEnv(func(k string) string { return tc.env[k] })}
			for _, r := range []struct {
				url, ref, cafile string
				via              bool
			}{
				{"http://registry.test:5000", "registry.test:5000/team/app:1.0.0", "", tc.viaHTTP},
				{"https://secure.test", "secure.test/team/app:1.0.0", secure.CAFile, tc.viaTLS},
			} {
				vals := registries.Values{"url": r.url, "login": "alice", "password": "pw"}
				if r.cafile != "" {
					vals["cafile"] = r.cafile
				}
				if tc.proxy != "" {
					vals["proxy"] = tc.proxy
				}
				in, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: "custom", Name: "env", Source: registries.SourceFile, Values: vals}, opts)
				if err != nil {
					t.Fatal(err)
				}
				before := len(p.Log())
				_, err = in.Tags(ctx(t), image(t, r.ref))
				went := len(p.Log()) > before
				if r.via && (err != nil || !went) {
					t.Errorf("%s: err %v, through the proxy %v; want it read through the proxy", r.ref, err, went)
				}
				if !r.via && (err == nil || went) {
					t.Errorf("%s: err %v, through the proxy %v; want a direct attempt, which cannot resolve the name", r.ref, err, went)
				}
			}
		})
	}
}
