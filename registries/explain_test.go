package registries_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// TestExplainAgainstServers makes registry calls fail for real, each in
// its own way, and reads what Explain makes of them: the class, the
// sentence people read, and a detail that starts with it. Nothing the
// server wrote shows.
func TestExplainAgainstServers(t *testing.T) {
	const said = "SAID-BY-THE-SERVER"
	answer := func(status int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Said", said)
			if r.URL.Path == "/v2/" {
				fmt.Fprint(w, "{}")
				return
			}
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"%s"},{"code":"%s","message":"%s"}]}`, said, said, said)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	r404, r500, r418 := answer(http.StatusNotFound), answer(http.StatusInternalServerError), answer(http.StatusTeapot)

	for _, tc := range []struct {
		name, url, image string
		head             bool
		timeout          time.Duration
		class            registries.Class
		reason           string
	}{
		{"nothing listens", "http://" + closed, closed + "/team/app", false, 0, registries.ClassRefused,
			"Connection refused: nothing listens on " + closed + " (custom.x). Check the url, and that the server runs."},
		{"no such repository", r404.URL, host(r404) + "/team/app", false, 0, registries.ClassNotFound,
			"404: no such repository team/app on " + host(r404) + " (custom.x)."},
		{"no such tag", r404.URL, host(r404) + "/team/app:9.9", true, 0, registries.ClassNotFound,
			"404: no tag 9.9 in team/app (or no such repository) on " + host(r404) + " (custom.x)."}, // a HEAD has no body to say which
		{"server error", r500.URL, host(r500) + "/team/app", false, 0, registries.ClassServer,
			host(r500) + " failed with a server error (500 Internal Server Error) for custom.x. Try again later."},
		{"another status", r418.URL, host(r418) + "/team/app", false, 0, registries.ClassStatus,
			host(r418) + " answered 418 I'm a teapot when tagwatch tried to list tags of " + host(r418) + "/team/app (custom.x)."},
		{"no answer", hang.URL, host(hang) + "/team/app", false, 300 * time.Millisecond, registries.ClassTimeout,
			"Timed out after "},
		{"no such host", "http://no-such-host.invalid:5000", "no-such-host.invalid:5000/team/app", false, 0, registries.ClassDNS,
			"No such host: no-such-host.invalid does not resolve (custom.x). Check the name."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := openInstance(t, "custom", "x", registries.Values{"url": tc.url})
			img := image(t, tc.image)
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			var err error
			if tc.head {
				_, err = in.Head(ctx, img, img.Tag)
			} else {
				_, err = in.Tags(ctx, img)
			}
			p := registries.Explain(err)
			if p.Class != tc.class || !strings.HasPrefix(p.Reason, tc.reason) || !strings.HasPrefix(p.Detail, p.Reason+" (") {
				t.Errorf("Explain:\n class  %s, want %s\n reason %q\n want   %q\n detail %q", p.Class, tc.class, p.Reason, tc.reason, p.Detail)
			}
			if err.Error() != p.Detail {
				t.Errorf("Error() = %q, want the detail", err)
			}
			for _, s := range []string{p.Reason, p.Detail} {
				if strings.Contains(s, said) {
					t.Errorf("the server's words are quoted: %s", s)
				}
			}
			t.Logf("%s\n  raw: %s", p.Detail, registries.Raw(err))
		})
	}
}

// TestRawIsCutAndRedacted: the debug log's copy of what was said is 512
// bytes at most, without the instance's secrets or any URL's userinfo.
func TestRawIsCutAndRedacted(t *testing.T) {
	const password = "Pa55-w0rd-of-alice"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "you sent %s; see https://bob:hunter2@docs.example/x %s", password, strings.Repeat("x", 4000))
	}))
	t.Cleanup(srv.Close)
	in := openInstance(t, "custom", "x", registries.Values{"url": srv.URL, "login": "alice", "password": password})
	_, err := in.Tags(context.Background(), image(t, strings.TrimPrefix(srv.URL, "http://")+"/team/app"))
	raw := registries.Raw(err)
	if len(raw) > 520 || strings.Contains(raw, password) || strings.Contains(raw, "hunter2") || !strings.Contains(raw, "you sent ***") ||
		!strings.Contains(raw, "https://***@docs.example") {
		t.Errorf("raw (%d bytes): %s", len(raw), raw)
	}
	if !errors.Is(err, registries.ErrUnauthorized) == (registries.Explain(err).Class == registries.ClassCredentials) {
		t.Errorf("ErrUnauthorized and the class disagree: %v", err)
	}
}

func TestRedactUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		`url: ftp://user:PW@h`:                           `url: ftp://***@h`,
		`parse "https://u:p/w@host:x/": invalid port`:    `parse "https://***@host:x/": invalid port`,
		`two http://a:b@one and smtp://c:d@two:587/?x`:   `two http://***@one and smtp://***@two:587/?x`,
		`no userinfo: https://example.com/a@b`:           `no userinfo: https://***@b`,
		`mail me@example.com, no url`:                    `mail me@example.com, no url`,
		`generic+https://token@hooks.example/api/SEKRET`: `generic+https://***@hooks.example/api/SEKRET`,
	} {
		if got := registries.RedactUserinfo(in); got != want {
			t.Errorf("RedactUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBlockedIP names the addresses a test may not reach.
func TestBlockedIP(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"169.254.169.254": true, "169.254.0.1": true, "fe80::1": true, "fd00:ec2::254": true, "100.100.100.200": true,
		"::ffff:169.254.169.254": true, "127.0.0.1": false, "::1": false, "10.0.0.1": false, "192.168.1.1": false,
		"100.100.100.201": false, "fd00:ec2::253": false, "8.8.8.8": false,
	} {
		if got := registries.BlockedIP(netip.MustParseAddr(addr)); got != blocked {
			t.Errorf("BlockedIP(%s) = %v, want %v", addr, got, blocked)
		}
	}
}

// TestGuardDialer connects for real: loopback goes through, a link-local
// address is refused before any packet leaves, with an error Explain
// recognizes.
func TestGuardDialer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	d := registries.GuardDialer(&net.Dialer{Timeout: 2 * time.Second})
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	c.Close()
	_, err = d.Dial("tcp", "169.254.169.254:80")
	var be *registries.BlockedAddressError
	if !errors.As(err, &be) || be.Addr != "169.254.169.254" {
		t.Fatalf("metadata address: %v", err)
	}
	client := &http.Client{Transport: registries.TestTransport(false)}
	if _, err := client.Get("http://[fe80::1]:80/"); !errors.As(err, &be) {
		t.Errorf("TestTransport to fe80::1: %v", err)
	}
}
