package registries

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// metadataAddrs are cloud metadata services outside the link-local ranges.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("fd00:ec2::254/128"),      // AWS IMDS over IPv6
	netip.MustParsePrefix("100.100.100.200/32"),     // Alibaba Cloud
	netip.MustParsePrefix("169.254.0.0/16"),         // link-local: AWS, GCP, Azure, OCI, DigitalOcean metadata
	netip.MustParsePrefix("fe80::/10"),              // IPv6 link-local
	netip.MustParsePrefix("::ffff:169.254.0.0/112"), // the same, IPv4-mapped
}

// BlockedIP reports whether a test may not connect to ip: a link-local
// address or a cloud metadata service's. Those answer anyone on the
// machine, and a connection test that reached them would read instance
// credentials for whoever can press Test.
func BlockedIP(ip netip.Addr) bool {
	ip = ip.WithZone("")
	for _, p := range metadataAddrs {
		if p.Contains(ip) || (ip.Is4In6() && p.Contains(ip.Unmap())) {
			return true
		}
	}
	return false
}

// GuardDialer returns a dialer that refuses, at the moment of connecting
// (after name resolution, so a name that resolves there is refused too),
// every address BlockedIP names.
func GuardDialer(d *net.Dialer) *net.Dialer {
	g := *d
	prev := d.Control
	g.Control = func(network, address string, c syscall.RawConn) error {
		if ap, err := netip.ParseAddrPort(address); err == nil && BlockedIP(ap.Addr()) {
			return &BlockedAddressError{Addr: ap.Addr().String()}
		}
		if prev != nil {
			return prev(network, address, c)
		}
		return nil
	}
	return &g
}

// GuardProxy wraps a transport's Proxy function: through a proxy the dial
// goes to the proxy, so a literal blocked address in the URL is refused
// here (a name is resolved by the proxy, out of tagwatch's sight).
func GuardProxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(r *http.Request) (*url.URL, error) {
		if ip, err := netip.ParseAddr(hostname(r.URL.Host)); err == nil && BlockedIP(ip) {
			return nil, &BlockedAddressError{Addr: ip.String()}
		}
		if next == nil {
			return nil, nil
		}
		return next(r)
	}
}

// TestTransport is the transport of a connection test from the UI or the
// API: NewTransport's, refusing link-local and cloud metadata addresses
// unless allowLinkLocal. The daemon's scheduled checks do not use it.
func TestTransport(allowLinkLocal bool) *http.Transport {
	t := NewTransport()
	if allowLinkLocal {
		return t
	}
	d := GuardDialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Proxy = GuardProxy(t.Proxy)
	return t
}

// Isolated opens the instance again with its own options (a test's
// transport): same settings, its own connections and tokens. It counts into
// the instance's Stats, so what a test learns of a rate limit shows.
func (in *Instance) Isolated(o Options) (*Instance, error) {
	o.stats = in.stats
	// The same bounds as the instance's checks: a test of a registry that
	// trickles its answer ends as a check would.
	if o.Limits == (Limits{}) {
		o.Limits = in.limits
	}
	if o.large == nil {
		o.large = in.large
	}
	return open(in.provider, Config{Kind: in.Kind, Name: in.Name, Source: in.Source, Values: in.raw}, o)
}
