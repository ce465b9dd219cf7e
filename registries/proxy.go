package registries

import (
	"fmt"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpproxy"
)

// proxyVariable is the variable every kind takes for a proxy of its own. It
// carries every request of the instance: the registry's, its token
// server's and the cloud SDKs' credential calls (the ECR API, Google's and
// Azure AD's token endpoints), which go through the instance's transport.
var proxyVariable = Variable{
	Name: "proxy",
	// A proxy sees every request; over plain HTTP, the credentials too.
	Endpoint:    true,
	Description: "HTTP(S) proxy for this registry's requests, e.g. http://proxy.lan:3128 (socks5:// works too); none to connect directly",
	Default:     "HTTPS_PROXY, HTTP_PROXY and NO_PROXY of the environment",
}

// directProxy is the proxy value that turns the environment's proxy off for
// one instance.
const directProxy = "none"

// checkProxy validates a proxy variable: none, or a proxy URL. Credentials
// are refused: the value is shown on tiles and in the API, where a password
// must never be; a proxy that needs them can come from HTTPS_PROXY.
func checkProxy(s string) error {
	if s == directProxy {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("must be a proxy URL such as http://proxy.lan:3128, or %s, not %q", directProxy, s)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return fmt.Errorf("must start with http://, https://, socks5:// or socks5h://, not %q", s)
	}
	if u.Host == "" {
		return fmt.Errorf("must be a proxy URL such as http://proxy.lan:3128, or %s, not %q", directProxy, s)
	}
	if u.User != nil {
		return fmt.Errorf("must not hold credentials (they would be shown wherever the proxy is); give a proxy that needs them in HTTPS_PROXY")
	}
	return nil
}

// withInstanceProxy returns base unless the values name a proxy, in which
// case the instance gets a transport of its own that uses it (or none).
// base is cloned only if it is the shared transport.
func withInstanceProxy(base, shared *http.Transport, v Values) *http.Transport {
	p := v["proxy"]
	if p == "" {
		return base
	}
	if base == shared {
		base = shared.Clone()
	}
	if p == directProxy {
		base.Proxy = nil
		return base
	}
	u, _ := url.Parse(p) // checked by Validate
	base.Proxy = http.ProxyURL(u)
	return base
}

// NewTransportFromEnv is NewTransport with the proxy that getenv's
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY (or their lower-case spellings)
// name, read as net/http reads them, but from the environment the caller
// hands over rather than the process's: the daemon's commands run with the
// environment they are given, and a test can give one of its own.
func NewTransportFromEnv(getenv func(string) string) *http.Transport {
	either := func(upper, lower string) string {
		if v := getenv(upper); v != "" {
			return v
		}
		return getenv(lower)
	}
	cfg := httpproxy.Config{
		HTTPProxy:  either("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: either("HTTPS_PROXY", "https_proxy"),
		NoProxy:    either("NO_PROXY", "no_proxy"),
	}
	proxy := cfg.ProxyFunc()
	t := NewTransport()
	t.Proxy = func(r *http.Request) (*url.URL, error) { return proxy(r.URL) }
	return t
}
