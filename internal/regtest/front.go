package regtest

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// FrontOptions shape a Front after a product that serves a registry, and
// often its token service, its own way.
type FrontOptions struct {
	// Prefix is the path the registry API is served under:
	// "/artifactory/api/docker/docker-local" (JFrog without its router),
	// "/repository/docker-hosted" (Nexus). Empty: /v2/ at the root.
	Prefix string
	// TokenPath is where the Front serves the registry's token Issuer:
	// "/service/token" (Harbor), Prefix+"/v2/token" (JFrog). It needs a
	// registry started with Token.
	TokenPath string
	// Realm is the token server the registry's challenges name, as the
	// product names it: "https://api.digitalocean.com/v2/registry/auth" for
	// a token service on another host (a Front of its own with that
	// TokenPath, reached through a Proxy). Empty: TokenPath on the host the
	// client asked for, when TokenPath is set; else the Issuer's own URL.
	Realm string
}

// FrontRequest records one request a Front received.
type FrontRequest struct {
	Method string
	Host   string // as the client asked for it
	Path   string // as received, before the Front strips its prefix
	// To is "registry", "token", or "" when the Front served nothing there
	// (404): a client that ignored the prefix shows up as "".
	To string
	// User is who the request says it comes from: the user of Basic
	// credentials, or the subject of a bearer token this package's Issuer
	// signed; "" without credentials. It is the registry's view of which
	// credentials fetched what (the registry's own log names the user only
	// of failed requests).
	User string
	// Status is what the Front answered.
	Status int
}

// Front is an HTTP(S) server in front of a Registry that serves its API
// under a path prefix and its token Issuer at a path of the product's, and
// rewrites the registry's challenges to name that token path. It serves
// HTTPS with the registry's certificate when the registry has TLS.
type Front struct {
	URL  string // "https://127.0.0.1:PORT"
	Host string // "127.0.0.1:PORT"

	mu  sync.Mutex
	log []FrontRequest
}

// Front starts a Front for the registry, stopped when the test ends.
func (r *Registry) Front(t testing.TB, o FrontOptions) *Front {
	t.Helper()
	if o.TokenPath != "" && r.Issuer == nil {
		t.Fatalf("regtest: a Front with a TokenPath needs a registry started with Token")
	}
	f := &Front{}
	regURL, _ := url.Parse(r.URL)
	toRegistry := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(regURL)
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, o.Prefix)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = regURL.Host
		},
		Transport: r.tr,
		ModifyResponse: func(res *http.Response) error {
			f.rewrite(res, o)
			return nil
		},
	}
	var toIssuer *httputil.ReverseProxy
	if r.Issuer != nil {
		issuerURL, _ := url.Parse(r.Issuer.URL)
		toIssuer = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(issuerURL)
				pr.Out.URL.Path = "/token"
				pr.Out.URL.RawPath = ""
				pr.Out.Host = issuerURL.Host
			},
			Transport: r.tr,
		}
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := FrontRequest{Method: req.Method, Host: req.Host, Path: req.URL.Path, User: identity(req)}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		w = sw
		defer func() {
			rec.Status = sw.status
			f.mu.Lock()
			f.log = append(f.log, rec)
			f.mu.Unlock()
		}()
		rest, under := strings.CutPrefix(req.URL.Path, o.Prefix)
		switch {
		case o.TokenPath != "" && req.URL.Path == o.TokenPath:
			rec.To = "token"
			toIssuer.ServeHTTP(w, req)
		case under && (rest == "/v2" || strings.HasPrefix(rest, "/v2/")):
			rec.To = "registry"
			// The registry's challenge must name this Front's token path
			// on the host the client asked for.
			req.Header.Set("X-Regtest-Front-Host", req.Host)
			toRegistry.ServeHTTP(w, req)
		default:
			http.NotFound(w, req)
		}
	}))
	if r.cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*r.cert}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	return f
}

// rewrite points the challenge's realm at the Front's token path (or the
// given Realm) and keeps the prefix on pagination links.
func (f *Front) rewrite(res *http.Response, o FrontOptions) {
	host := res.Request.Header.Get("X-Regtest-Front-Host")
	scheme := "http"
	if strings.HasPrefix(f.URL, "https://") {
		scheme = "https"
	}
	realm := o.Realm
	if realm == "" && o.TokenPath != "" {
		realm = scheme + "://" + host + o.TokenPath
	}
	if realm != "" {
		challenges := res.Header.Values("Www-Authenticate")
		res.Header.Del("Www-Authenticate")
		for _, c := range challenges {
			res.Header.Add("Www-Authenticate", realmParam.ReplaceAllString(c, `${1}`+realm+`${3}`))
		}
	}
	if link := res.Header.Get("Link"); link != "" && o.Prefix != "" {
		res.Header.Set("Link", strings.Replace(link, "</v2/", "<"+o.Prefix+"/v2/", 1))
	}
}

// realmParam is the realm parameter of a Bearer challenge.
var realmParam = regexp.MustCompile(`(?i)(realm=")([^"]*)(")`)

// Log returns the requests received so far, oldest first.
func (f *Front) Log() []FrontRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FrontRequest(nil), f.log...)
}

// identity reads who a request says it is from: Basic credentials' user, or
// a bearer JWT's subject. The token is not verified: the Front only reports
// what the registry behind it will check.
func identity(req *http.Request) string {
	if user, _, ok := req.BasicAuth(); ok {
		return user
	}
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "(opaque bearer token)"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Sub string `json:"sub"`
	}
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return "(unreadable bearer token)"
	}
	return claims.Sub
}
