package web_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/web"
)

// TestHostCheck sends requests naming the server by many names, as a
// browser would after DNS rebinding (a foreign name on 127.0.0.1) and as an
// admin would (loopback names and addresses, a configured name): the
// foreign ones are refused on GET and POST, pages and API alike, with or
// without authentication; the others work.
func TestHostCheck(t *testing.T) {
	f := newFixtureWith(t, config.WebAuth{}, nil, nil, func(f *fixture) {
		f.srv.Listen = "127.0.0.1:8080"
		f.srv.Hosts = []string{"tagwatch.example.com", "nas.lan"}
	})
	_, port, _ := net.SplitHostPort(f.ts.Listener.Addr().String())
	// The request of issue 11: a rebinding page's POST, same-origin as far as
	// the browser knows, asking the server to test a registry.
	testBody := map[string]any{"kind": "custom", "values": map[string]string{"url": "http://127.0.0.1:9"}}

	good := []string{"127.0.0.1:" + port, "127.0.0.1", "localhost:" + port, "LocalHost", "localhost.", "[::1]:" + port, "[::1]",
		"127.8.9.10:" + port, "tagwatch.example.com", "Tagwatch.Example.com.:443", "nas.lan:" + port}
	for _, host := range good {
		res, body := f.do("GET", "/settings/registries", nil, "Host", host)
		want(t, res, body, http.StatusOK)
		res, body = f.do("GET", "/api/v1/registries", nil, "Host", host)
		want(t, res, body, http.StatusOK)
		res, body = f.do("POST", "/api/v1/registries/test", testBody, "Host", host, "Origin", "http://"+host, "Sec-Fetch-Site", "same-origin")
		want(t, res, body, http.StatusOK)
		res, body = f.do("GET", "/api/v1/backup", nil, "Host", host)
		want(t, res, body, http.StatusOK)
	}

	bad := []string{"evil.example:" + port, "evil.example", "tagwatch.example.com.evil.example", "evil.localhost.example",
		"192.168.1.5:" + port, "10.0.0.1", "[fe80::1]", "localhost.evil.example"}
	for _, host := range bad {
		name := strings.ToLower(host)
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		name = strings.Trim(name, "[]")
		res, body := f.do("GET", "/settings/registries", nil, "Host", host)
		want(t, res, body, http.StatusForbidden)
		if !strings.Contains(body, "&#34;"+name+"&#34;") || !strings.Contains(body, "web.hosts") || !strings.Contains(body, "<html") {
			t.Errorf("Host %s: the page does not name the host and the setting:\n%s", host, body)
		}
		res, body = f.do("POST", "/check", nil, "Host", host)
		want(t, res, body, http.StatusForbidden)
		res, body = f.do("GET", "/api/v1/registries", nil, "Host", host)
		want(t, res, body, http.StatusForbidden)
		if e := decode[apiError](t, body); !strings.Contains(e.Error, `"`+name+`"`) || !strings.Contains(e.Error, "web.hosts (TAGWATCH_WEB_HOSTS)") {
			t.Errorf("Host %s: API error %q", host, e.Error)
		}
		res, body = f.do("POST", "/api/v1/registries/test", testBody, "Host", host, "Origin", "http://"+host, "Sec-Fetch-Site", "same-origin")
		want(t, res, body, http.StatusForbidden)
		res, body = f.do("POST", "/api/v1/registries", map[string]any{"kind": "custom", "name": "evil", "values": map[string]string{"url": "http://evil.example"}}, "Host", host)
		want(t, res, body, http.StatusForbidden)
		// The data file, saved secrets and all (encrypted), least of all.
		res, body = f.do("GET", "/api/v1/backup", nil, "Host", host)
		want(t, res, body, http.StatusForbidden)
		// The health check answers whatever the name: it says nothing else.
		res, body = f.do("GET", "/api/v1/healthz", nil, "Host", host)
		want(t, res, body, http.StatusOK)
	}
	if regs, _ := f.st.Registries(); len(regs) != 0 {
		t.Errorf("a refused request saved %+v", regs)
	}
	if n := strings.Count(f.logs.String(), `host=evil.example `); n != 1 {
		t.Errorf("evil.example was logged %d times, want once:\n%s", n, f.logs.String())
	}

	// A request with no Host at all (HTTP/1.0 allows it).
	conn, err := net.Dial("tcp", f.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /api/v1/registries HTTP/1.0\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "names no host") {
		t.Errorf("no Host: %s %s", res.Status, b)
	}
}

// TestHostCheckWithAuth: good credentials do not make a foreign name good.
func TestHostCheckWithAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, config.WebAuth{Username: "alice", Password: string(hash), Token: "api-token-0123456789abcdefghij"}, nil)
	f.header.Set("Authorization", "Bearer api-token-0123456789abcdefghij")
	res, body := f.do("GET", "/api/v1/registries", nil)
	want(t, res, body, http.StatusOK)
	res, body = f.do("GET", "/api/v1/registries", nil, "Host", "evil.example")
	want(t, res, body, http.StatusForbidden)
	f.header.Del("Authorization")
	res, body = f.do("GET", "/", nil, "Host", "evil.example")
	want(t, res, body, http.StatusForbidden) // not 401: no login prompt for a foreign name
	if res.Header.Get("WWW-Authenticate") != "" {
		t.Error("a foreign name got a login challenge")
	}
}

// TestHostCheckListenAddress: the listen address's host is served; on an
// unspecified address (0.0.0.0, ::) every IP literal is, never a name.
func TestHostCheckListenAddress(t *testing.T) {
	for _, tc := range []struct {
		listen    string
		good, bad []string
	}{
		{"192.168.1.5:8080", []string{"192.168.1.5:8080", "192.168.1.5"}, []string{"192.168.1.6", "nas.lan"}},
		{"nas.lan:8080", []string{"nas.lan:8080", "NAS.lan"}, []string{"192.168.1.5", "other.lan"}},
		{"0.0.0.0:8080", []string{"192.168.1.5:8080", "172.17.0.2", "[2001:db8::5]:8080", "localhost"}, []string{"nas.lan", "evil.example:8080"}},
		{"[::]:8080", []string{"10.1.2.3", "[fd00::1]"}, []string{"nas.lan"}},
		{":8080", []string{"10.1.2.3"}, []string{"nas.lan"}},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			f := newFixtureWith(t, config.WebAuth{}, nil, nil, func(f *fixture) { f.srv.Listen = tc.listen })
			for _, h := range tc.good {
				res, body := f.do("GET", "/api/v1/registries", nil, "Host", h)
				want(t, res, body, http.StatusOK)
			}
			for _, h := range tc.bad {
				res, body := f.do("GET", "/api/v1/registries", nil, "Host", h)
				want(t, res, body, http.StatusForbidden)
			}
		})
	}
}

// TestHostCheckOnIPv6Loopback serves on [::1] for real and reaches it by
// http://[::1]:PORT/, as a browser on the machine would.
func TestHostCheckOnIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("no IPv6 loopback: %v", err)
	}
	f := newFixture(t, config.WebAuth{}, nil)
	srv := &http.Server{Handler: (&web.Server{Store: f.st, Registries: f.live, Listen: ln.Addr().String()}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	for _, path := range []string{"/", "/api/v1/registries"} {
		res, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET http://%s%s: %s", ln.Addr(), path, res.Status)
		}
	}
	f.do("GET", "/api/v1/healthz", nil) // the fixture wants one recorded response
}
