package registries_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

// TestHTTP2OneConnection: Debian's distribution registry over TLS on
// loopback offers HTTP/2 (ALPN h2). Behind a Link that adds 20 ms round
// trips and counts the connections made to it, an instance reads the tags
// and digests of 10 repositories × 5 tags, all at once: over one connection
// and one TLS handshake, many requests in flight on it (HTTP/2 streams).
// The cases are the instances that get a transport of their own, cloned
// from the shared one with a TLS configuration set (a clone that lost
// ForceAttemptHTTP2 would fall back to HTTP/1.1, a connection per request
// in flight), and one that reaches the registry through an HTTP proxy's
// CONNECT tunnel.
func TestHTTP2OneConnection(t *testing.T) {
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{TLS: true})
	seed := reg.Push(t, "seed/app:1.0.0", regtest.Image(t, "seed"))
	tags := []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"}
	var repos []string
	for i := range 10 {
		repos = append(repos, fmt.Sprintf("team/app%02d", i))
	}
	reg.FillStorage(t, seed, repos, tags...)

	for _, tc := range []struct {
		name  string
		vals  func(link *regtest.Link) registries.Values
		proxy bool
	}{
		{name: "cafile", vals: func(link *regtest.Link) registries.Values {
			return registries.Values{"url": "https://" + link.Host, "cafile": reg.CAFile}
		}},
		{name: "insecure", vals: func(link *regtest.Link) registries.Values {
			return registries.Values{"url": "https://" + link.Host, "insecure": "true"}
		}},
		{name: "through a proxy", proxy: true, vals: func(link *regtest.Link) registries.Values {
			return registries.Values{"url": "https://" + link.Host, "cafile": reg.CAFile}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := regtest.StartLink(t, reg.Host, 20*time.Millisecond)
			vals := tc.vals(link)
			if tc.proxy {
				vals["proxy"] = regtest.StartProxy(t).URL
			}
			in, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: "custom", Name: "tls", Source: registries.SourceFile, Values: vals}, localOptions())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var handshakes []string
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net
			defer cancel()
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
					mu.Lock()
					handshakes = append(handshakes, fmt.Sprintf("%q (%v)", cs.NegotiatedProtocol, err))
					mu.Unlock()
				},
			})
			in.Limiter().TakePeak()
			var wg sync.WaitGroup
			for _, repo := range repos {
				for _, tag := range tags {
					wg.Add(1)
					go func() {
						defer wg.Done()
						img := registries.Image{Host: link.Host, Repository: repo, Tag: tag}
						if _, err := in.Tags(ctx, img); err != nil {
							t.Errorf("tags of %s: %v", repo, err)
						}
						if d, err := in.Head(ctx, img, tag); err != nil || d.Digest != seed.String() {
							t.Errorf("digest of %s:%s: %v, %v", repo, tag, d, err)
						}
					}()
				}
			}
			wg.Wait()
			peak := in.Limiter().TakePeak()
			t.Logf("%d requests, %d connections, TLS handshakes %v, at most %d requests in flight",
				requestsOf(in), link.Conns(), handshakes, peak)
			if n := link.Conns(); n != 1 {
				t.Errorf("%d connections to the registry, want 1", n)
			}
			if len(handshakes) != 1 || handshakes[0] != `"h2" (<nil>)` {
				t.Errorf("TLS handshakes: %v, want one negotiating h2", handshakes)
			}
			if peak < 2 {
				t.Errorf("at most %d request in flight: nothing shared the connection at once", peak)
			}
		})
	}
}

func requestsOf(in *registries.Instance) int64 {
	var n int64
	for _, c := range in.Stats().RequestsByClass() {
		n += c
	}
	return n
}
