package registries_test

// These tests put each way a registry misbehaves (internal/regtest's
// hostile registries, on loopback) in front of an instance with short
// limits, and check that every call ends, within its deadline, with an
// error that names the registry and the cause.

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

// limited opens a custom instance for url with limits, on a transport that
// never goes through a proxy.
func limited(t *testing.T, cat registries.Catalog, kind string, vals registries.Values, l registries.Limits) *registries.Instance {
	t.Helper()
	o := localOptions()
	o.Limits = l
	in, err := registries.Open(cat, registries.Config{Kind: kind, Name: "hostile", Source: registries.SourceFile, Values: vals}, o)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// inProcess starts go-containerregistry's in-process registry, holding a
// random image at team/app:1.0.0, and returns its URL and host. connState,
// when set, sees its connections.
func inProcess(t *testing.T, connState func(net.Conn, http.ConnState)) (srvURL, host string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ConnState = connState
	srv.Start()
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/team/app:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return srv.URL, host
}

func TestHostileTagLists(t *testing.T) {
	if testing.Short() {
		t.Skip("talks to hostile servers for seconds")
	}
	t.Parallel()
	// A request deadline long enough for a loaded CI machine under -race
	// to read the 1 MiB the huge list may send; the slow body gets 1s.
	limits := registries.Limits{Request: 20 * time.Second, TagPages: 20, TagListBytes: 1 << 20}
	// The words are registries.Explain's (the error's text is its Detail):
	// the reason names the host and the instance, the detail the request
	// and the limit, and neither quotes what the registry sent.
	tests := []struct {
		m     regtest.Misbehaviour
		class registries.Class
		want  []string // in the error
		is    func(error) bool
	}{
		{regtest.SlowBody, registries.ClassTimeout, []string{"Timed out after 1s waiting for ", "GET /v2/team/app/tags/list: headers and",
			"of the body arrived within the 1s request deadline (limits.request)"},
			func(err error) bool {
				var e *registries.RequestTimeoutError
				return errors.As(err, &e) && errors.Is(err, context.DeadlineExceeded)
			}},
		{regtest.EndlessLink, registries.ClassLimit, []string{"the tag list of team/app exceeds 20 pages (limits.tagpages)"}, nil},
		{regtest.HugeTagList, registries.ClassLimit, []string{"the tag list of team/app exceeds 1 MiB (limits.taglist); stopped reading at page 1"},
			func(err error) bool { var e *registries.BodyLimitError; return errors.As(err, &e) && e.TagList }},
		{regtest.GarbageJSON, registries.ClassProtocol, []string{"sent an answer tagwatch cannot read (custom.hostile)", "page 1 of the tag list is not valid JSON"},
			func(err error) bool {
				// What the registry sent reaches the debug log only.
				return !strings.Contains(err.Error(), "invalid character") && strings.Contains(registries.Raw(err), "invalid character")
			}},
		{regtest.RedirectLoop, registries.ClassLimit, []string{"redirected the request 11 times without an answer (a redirect loop)"},
			func(err error) bool { var e *registries.RedirectLoopError; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(string(tt.m), func(t *testing.T) {
			t.Parallel()
			h := regtest.StartHostile(t, tt.m)
			l := limits
			if tt.m == regtest.SlowBody {
				l.Request = time.Second
			}
			in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": h.URL}, l)
			start := time.Now()
			tags, err := in.Tags(ctx(t), image(t, h.Host+"/team/app:1.0.0"))
			took := time.Since(start)
			if err == nil {
				t.Fatalf("%d tags and no error", len(tags))
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			wantErrContains(t, err, append([]string{"list tags of " + h.Host + "/team/app via custom.hostile", "(custom.hostile)", h.Host}, tt.want...)...)
			if p := registries.Explain(err); p.Class != tt.class || !strings.HasPrefix(err.Error(), p.Reason) {
				t.Errorf("explained as %q: %q; want class %q", p.Class, p.Reason, tt.class)
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %T does not have the expected type or words", err)
			}
			switch tt.m {
			case regtest.EndlessLink:
				if n := h.Requests("tags"); n != 20 {
					t.Errorf("%d pages requested, want exactly the limit, 20", n)
				}
			case regtest.HugeTagList:
				// The server writes into socket buffers until the client
				// hangs up; most of the 100 MB never left it.
				if sent := h.Sent.Load(); sent > 20<<20 {
					t.Errorf("the server got %d bytes out before the client stopped reading; the cap is 1 MiB", sent)
				}
			}
		})
	}
}

// TestTagListBudgetSpansPages: the byte cap is one list's, whatever its
// pages: each page of a real registry (behind a paging proxy) is small, and
// the list still stops at the cap.
func TestTagListBudgetSpansPages(t *testing.T) {
	integration(t)
	r := regtest.Start(t, regtest.Options{})
	d := r.Push(t, "team/app:1.0.0", regtest.Image(t, "budget"))
	var tags []string
	for i := range 60 {
		tags = append(tags, "1.0."+strings.Repeat("0", 3)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	r.Tag(t, "team/app", d, tags...)
	proxy := pagingProxy(t, r, 10) // 10 tags a page: about 200 bytes each
	host := strings.TrimPrefix(proxy.URL, "http://")

	in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": proxy.URL}, registries.Limits{TagListBytes: 700})
	_, err := in.Tags(ctx(t), image(t, host+"/team/app:1.0.0"))
	wantErrContains(t, err, "the tag list of team/app exceeds 700 B (limits.taglist); stopped reading at page 5")

	// The same list with room for it reads whole.
	in = limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": proxy.URL}, registries.Limits{TagListBytes: 64 << 10})
	all, err := in.Tags(ctx(t), image(t, host+"/team/app:1.0.0"))
	if err != nil || len(all) != 61 {
		t.Fatalf("%d tags, %v; want 61", len(all), err)
	}
}

// TestTooManyRequestsForever: a registry that answers 429 to everything is
// waited out until the caller's deadline, and the error says it was the 429s.
func TestTooManyRequestsForever(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out 429s")
	}
	t.Parallel()
	h := regtest.StartHostile(t, regtest.TooManyRequests)
	in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": h.URL}, registries.Limits{Request: time.Second})
	deadline := errors.New("the test's 3s deadline passed")
	short, cancel := context.WithTimeoutCause(ctx(t), 3*time.Second, deadline)
	defer cancel()
	start := time.Now()
	_, err := in.Tags(short, image(t, h.Host+"/team/app:1.0.0"))
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	wantErrContains(t, err, h.Host+" kept answering 429 Too Many Requests", "times in a row); gave up waiting: the test's 3s deadline passed (custom.hostile)")
	if p := registries.Explain(err); p.Class != registries.ClassRateLimited || p.Status != http.StatusTooManyRequests {
		t.Errorf("explained as %+v; want rate-limited, 429", p)
	}
	var te *registries.ThrottledError
	if !errors.As(err, &te) || te.Answers < 2 || !errors.Is(err, deadline) {
		t.Errorf("error %#v: want a ThrottledError of 2 or more answers, caused by the deadline", te)
	}
	if got := in.Stats().Throttled(); got < 2 {
		t.Errorf("throttled %d times; the 429s were not waited out", got)
	}
}

// TestManifestCap: a manifest past MaxBody is refused as it streams in.
func TestManifestCap(t *testing.T) {
	t.Parallel()
	h := regtest.StartHostile(t, regtest.HugeManifest)
	in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": h.URL}, registries.Limits{})
	_, err := in.PlatformDigest(ctx(t), image(t, h.Host+"/team/app:1.0.0"),
		"sha256:0000000000000000000000000000000000000000000000000000000000000000", regtest.Platform("linux/amd64"))
	wantErrContains(t, err, h.Host+": the answer to /v2/team/app/manifests/sha256:", "exceeds 4 MiB; no registry answer is that large (custom.hostile)")
	var bl *registries.BodyLimitError
	if !errors.As(err, &bl) || bl.Limit != registries.MaxBody {
		t.Errorf("error %v is not a BodyLimitError at MaxBody", err)
	}
}

// TestCredentialCallsAreBounded: the cloud kinds' credential services go
// through the instance's transport, so a stalled one ends at the request
// deadline too. Each SDK (aws-sdk-go-v2's ECR client, x/oauth2's JWT flow)
// is pointed at a local server that sends its answer a byte a second; the
// registry asking for the credentials is a real htpasswd one.
func TestCredentialCallsAreBounded(t *testing.T) {
	integration(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"AWS": "pw"}})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "cred"))
	slow := regtest.StartHostile(t, regtest.SlowBody)
	_, key := rsaKeyPEM(t)
	tests := []struct {
		kind string
		cat  registries.Catalog
		vals registries.Values
	}{
		{"ecr", registries.NewCatalog(registries.ECR{Endpoint: slow.URL}),
			registries.Values{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE", "secretaccesskey": "secret"}},
		{"gcr", registries.NewCatalog(registries.GCR{TokenURL: slow.URL + "/token"}),
			registries.Values{"clientemail": "tagwatch@example.iam.gserviceaccount.com", "privatekey": key}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			in := limited(t, tt.cat, tt.kind, tt.vals, registries.Limits{Request: 2 * time.Second})
			asked := slow.Requests("other")
			start := time.Now()
			_, err := in.Tags(ctx(t), image(t, reg.Host+"/team/app:1.0.0"))
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			// Once: a retry would meet the same deadline and only
			// multiply the wait (aws-sdk-go-v2 retried it twice).
			if n := slow.Requests("other") - asked; n != 1 {
				t.Errorf("the credential service was asked %d times; want once", n)
			}
			// The SDK's call is the one that timed out (its server is not
			// named: Explain does not quote a credential service's host).
			wantErrContains(t, err, "Timed out after 2s waiting for the cloud credential service ("+tt.kind+".hostile).",
				"arrived within the 2s request deadline (limits.request)")
			var rte *registries.RequestTimeoutError
			if !errors.As(err, &rte) || rte.Host != slow.Host {
				t.Errorf("error %#v is not the deadline of a request to the credential service %s", rte, slow.Host)
			}
		})
	}
}

// TestSlowTokenServer: the token server a registry's challenge names is
// bounded like the registry itself, its body included, and the error says
// the wait was for the registry's token server without quoting that
// server's address (the registry chose it, tagwatch did not). The registry
// is a real token-auth one whose challenge names a server that sends its
// token a byte a second.
func TestSlowTokenServer(t *testing.T) {
	integration(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "pw"}, Token: true})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "slow-token"))
	slow := regtest.StartHostile(t, regtest.SlowBody)
	front := reg.Front(t, regtest.FrontOptions{Realm: slow.URL + "/token"})
	in := limited(t, registries.DefaultCatalog(), "custom",
		registries.Values{"url": front.URL, "login": "alice", "password": "pw"}, registries.Limits{Request: time.Second})
	start := time.Now()
	_, err := in.Tags(ctx(t), image(t, front.Host+"/team/app:1.0.0"))
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("a token that never finished arriving gave tags")
	}
	wantErrContains(t, err, "Timed out after 1s waiting for the token server of "+front.Host+" (custom.hostile).",
		"of the body arrived within the 1s request deadline (limits.request)")
	if strings.Contains(err.Error(), slow.Host) || strings.Contains(registries.Explain(err).Reason, slow.Host) {
		t.Errorf("the error quotes the token server's address %s, which the registry chose", slow.Host)
	}
	var rte *registries.RequestTimeoutError
	if !errors.As(err, &rte) || rte.Host != slow.Host {
		t.Errorf("error %#v is not the deadline of the request to the token server %s", rte, slow.Host)
	}
	if n := slow.Requests("other"); n == 0 {
		t.Error("the token server was never asked: the challenge did not name it")
	}
}

// TestConnectionsAreReused: ending each request's deadline when its body is
// read must not cost the keep-alive connection: many calls on one registry
// (go-containerregistry's in-process one) use one connection.
func TestConnectionsAreReused(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srvURL, host := inProcess(t, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": srvURL}, registries.Limits{Request: 5 * time.Second})
	before := conns.Load()
	for range 20 {
		if _, _, err := check(ctx(t), in, image(t, host+"/team/app:1.0.0")); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load() - before; n != 1 {
		t.Errorf("20 tag lists and HEADs opened %d connections, want 1", n)
	}
}

func TestBytesAndDuration(t *testing.T) {
	for n, want := range map[int64]string{100: "100 B", 700: "700 B", 1 << 10: "1 KiB", 1536: "1.5 KiB", 16 << 20: "16 MiB", 831_600: "812.1 KiB", 5<<20 + 1<<19: "5.5 MiB"} {
		if got := registries.Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{30 * time.Minute: "30m", 2 * time.Hour: "2h", 90 * time.Second: "1m30s",
		time.Second: "1s", 1500 * time.Millisecond: "1.5s", 90 * time.Minute: "1h30m", 0: "0s"} {
		if got := registries.Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestRequestDeadlineThroughProxy: the request deadline sits between the
// instance's proxy handling and the wire, so a proxy that takes the request
// and never answers ends at that deadline, and the error says the way
// there timed out (the proxy is the admin's setting), not "could not".
func TestRequestDeadlineThroughProxy(t *testing.T) {
	t.Parallel()
	stall := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // holds every request, forwarded or CONNECT, until the test ends
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stall); proxy.Close() })
	proxyHost := strings.TrimPrefix(proxy.URL, "http://")
	in := limited(t, registries.DefaultCatalog(), "custom",
		registries.Values{"url": "http://registry.test:5000", "proxy": proxy.URL}, registries.Limits{Request: time.Second})
	start := time.Now()
	_, err := in.Tags(ctx(t), image(t, "registry.test:5000/team/app:1.0.0"))
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("a stalled proxy gave an answer")
	}
	wantErrContains(t, err, "Timed out after 1s waiting for registry.test:5000 through the proxy at "+proxyHost+" (custom.hostile).",
		"no answer came within the 1s request deadline (limits.request)")
	var pe *registries.ProxyError
	var rte *registries.RequestTimeoutError
	if !errors.As(err, &pe) || !errors.As(err, &rte) || registries.Explain(err).Class != registries.ClassTimeout {
		t.Errorf("error %v: want a timeout of the request through the proxy", err)
	}
}

// TestOnlyA404IsNotFound: the watcher takes a manifest gone from the
// registry (its own 404) as "replaced", a digest update; nothing else may
// read as that, however a call failed (a cap, a deadline).
func TestOnlyA404IsNotFound(t *testing.T) {
	t.Parallel()
	srvURL, host := inProcess(t, nil)
	gone := "sha256:" + strings.Repeat("0", 64)
	plat := regtest.Platform("linux/amd64")
	in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": srvURL}, registries.Limits{Request: 5 * time.Second})
	_, err := in.PlatformDigest(ctx(t), image(t, host+"/team/app:1.0.0"), gone, plat)
	if !errors.Is(err, registries.ErrNotFound) || registries.Explain(err).Class != registries.ClassNotFound {
		t.Errorf("a manifest the registry does not have: %v; want ErrNotFound", err)
	}
	if reason := registries.Explain(err).Reason; !strings.Contains(reason, "no manifest sha256:000000") || strings.Contains(reason, "no tag") {
		t.Errorf("a manifest the registry does not have reads %q; want it to name the manifest, not a tag", reason)
	}

	for _, m := range []regtest.Misbehaviour{regtest.HugeManifest, regtest.SlowBody} {
		h := regtest.StartHostile(t, m)
		in := limited(t, registries.DefaultCatalog(), "custom", registries.Values{"url": h.URL}, registries.Limits{Request: time.Second})
		_, err := in.PlatformDigest(ctx(t), image(t, h.Host+"/team/app:1.0.0"), gone, plat)
		if err == nil || errors.Is(err, registries.ErrNotFound) {
			t.Errorf("%s: %v; want an error that is not ErrNotFound", m, err)
		}
	}
}
