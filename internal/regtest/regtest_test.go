package regtest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real registries")
	}
}

// pull lists the tags of repo and reads the digest of tag as a client with
// the given credentials would.
func pull(ctx context.Context, r *regtest.Registry, auth authn.Authenticator, repo, tag string) ([]string, string, error) {
	opts := []name.Option{name.StrictValidation}
	if !strings.HasPrefix(r.URL, "https://") {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, opts...)
	if err != nil {
		return nil, "", err
	}
	ro := []remote.Option{remote.WithAuth(auth), remote.WithTransport(r.Transport()), remote.WithContext(ctx)}
	tags, err := remote.List(ref.Context(), ro...)
	if err != nil {
		return nil, "", err
	}
	d, err := remote.Head(ref, ro...)
	if err != nil {
		return nil, "", err
	}
	return tags, d.Digest.String(), nil
}

func TestModes(t *testing.T) {
	skipShort(t)
	users := map[string]string{"alice": "s3cret"}
	alice := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "s3cret"})
	wrong := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "nope"})
	for _, tc := range []struct {
		name      string
		opts      regtest.Options
		anonymous bool // an anonymous client may pull
	}{
		{"anonymous", regtest.Options{}, true},
		{"htpasswd", regtest.Options{Users: users}, false},
		{"token", regtest.Options{Users: users, Token: true}, false},
		{"tls", regtest.Options{TLS: true}, true},
		{"tls+htpasswd", regtest.Options{Users: users, TLS: true}, false},
		{"tls+token", regtest.Options{Users: users, Token: true, TLS: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := regtest.Start(t, tc.opts)
			if tc.opts.TLS != strings.HasPrefix(r.URL, "https://") || (tc.opts.TLS && r.CAFile == "") {
				t.Fatalf("URL %s, CAFile %q", r.URL, r.CAFile)
			}
			if (r.Issuer != nil) != tc.opts.Token {
				t.Fatalf("Issuer = %v with Token %v", r.Issuer, tc.opts.Token)
			}
			want := r.Push(t, "team/app:1.0.0", regtest.Image(t, "one")).String()

			tags, got, err := pull(ctx, r, alice, "team/app", "1.0.0")
			if tc.anonymous {
				tags, got, err = pull(ctx, r, authn.Anonymous, "team/app", "1.0.0")
			}
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if got != want || len(tags) != 1 || tags[0] != "1.0.0" {
				t.Errorf("pull = %v %s, want [1.0.0] %s", tags, got, want)
			}
			if tc.anonymous {
				return
			}
			for _, a := range []authn.Authenticator{authn.Anonymous, wrong} {
				_, _, err := pull(ctx, r, a, "team/app", "1.0.0")
				var te *transport.Error
				if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
					t.Errorf("pull as %v: err = %v, want 401", a, err)
				}
			}
		})
	}
}

func TestImageDeterministic(t *testing.T) {
	d := func(seed string) string {
		h, err := regtest.Image(t, seed).Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	if a1, a2 := d("a"), d("a"); a1 != a2 {
		t.Errorf("same seed, different digests: %s, %s", a1, a2)
	}
	if d("a") == d("b") {
		t.Error("different seeds, same digest")
	}
}

func TestIndexAndTag(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	r := regtest.Start(t, regtest.Options{})
	idx := regtest.Index(t, "multi", regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64"))
	d := r.PushIndex(t, "team/multi:1", idx)
	ref, _ := name.NewTag(r.Ref("team/multi:1"), name.Insecure)
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithTransport(r.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != d || !desc.MediaType.IsIndex() {
		t.Fatalf("got %s %s, want index %s", desc.Digest, desc.MediaType, d)
	}
	im, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := im.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 || m.Manifests[1].Platform == nil || m.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index manifests = %+v", m.Manifests)
	}

	tags := make([]string, 50)
	for i := range tags {
		tags[i] = "t" + string(rune('a'+i/26)) + string(rune('a'+i%26))
	}
	r.Tag(t, "team/multi", d, tags[:25]...)
	r.TagInStorage(t, "team/multi", d, tags[25:]...)
	list, err := remote.List(ref.Context(), remote.WithContext(ctx), remote.WithTransport(r.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 51 {
		t.Errorf("%d tags, want 51", len(list))
	}
	// A tag written in storage reads like one pushed.
	for _, tag := range []string{tags[0], tags[49]} {
		desc, err := remote.Head(ref.Context().Tag(tag), remote.WithContext(ctx), remote.WithTransport(r.Transport()))
		if err != nil || desc.Digest != d {
			t.Errorf("tag %s: %v %v, want %s", tag, desc, err, d)
		}
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	*testing.T
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingBinary: without the registry the test fails, telling how to
// install it, rather than skipping silently.
func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(regtest.BinaryEnv, "")
	f := &fatalTB{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		regtest.Start(f, regtest.Options{})
	}()
	<-done
	if !strings.Contains(f.msg, "apt-get install docker-registry") {
		t.Errorf("Start without the binary: %q, want a failure saying to install docker-registry", f.msg)
	}
}

func TestIssuer(t *testing.T) {
	iss := regtest.NewIssuer(t, map[string]string{"bob": "pw"})
	iss.AddRefreshToken("rt-1", "bob")
	get := func(path, user, pass string, scopes ...string) (int, map[string]any) {
		q := url.Values{"service": {"container_registry"}, "scope": scopes}
		req, _ := http.NewRequest(http.MethodGet, iss.URL+path+"?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		return do(t, req)
	}
	post := func(form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, iss.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, req)
	}
	scope := "repository:team/app:pull"
	for _, tc := range []struct {
		name   string
		call   func() (int, map[string]any)
		status int
		access []string
	}{
		{"GET good", func() (int, map[string]any) { return get("/token", "bob", "pw", scope) }, 200, []string{scope}},
		{"GET gitlab path", func() (int, map[string]any) { return get("/jwt/auth", "bob", "pw", scope) }, 200, []string{scope}},
		{"GET anonymous", func() (int, map[string]any) { return get("/token", "", "", scope) }, 200, nil},
		{"GET bad password", func() (int, map[string]any) { return get("/token", "bob", "x", scope) }, 401, nil},
		{"POST password", func() (int, map[string]any) {
			return post(url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"pw"}, "scope": {scope}, "service": {"container_registry"}})
		}, 200, []string{scope}},
		{"POST refresh", func() (int, map[string]any) {
			return post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "scope": {scope}, "service": {"container_registry"}})
		}, 200, []string{scope}},
		{"POST unknown refresh", func() (int, map[string]any) {
			return post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-2"}, "scope": {scope}})
		}, 401, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tc.call()
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if status != 200 {
				return
			}
			if body["expires_in"] != float64(300) {
				t.Errorf("expires_in = %v", body["expires_in"])
			}
			claims := jwtClaims(t, body["access_token"].(string))
			var got []string
			for _, a := range claims.Access {
				got = append(got, a.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.access, " ") {
				t.Errorf("access = %v, want %v", got, tc.access)
			}
			if claims.Aud != "container_registry" || claims.Iss != iss.Name {
				t.Errorf("aud %q iss %q", claims.Aud, claims.Iss)
			}
		})
	}
	if got := iss.Requests(); got != 7 {
		t.Errorf("Requests() = %d, want 7", got)
	}
	log := iss.Log()
	if len(log) != 7 || log[1].Path != "/jwt/auth" || log[1].User != "bob" || log[3].Status != 401 {
		t.Errorf("Log() = %+v", log)
	}
}

type claims struct {
	Iss, Aud string
	Access   []regtest.Access
}

func jwtClaims(t *testing.T, tok string) claims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}
