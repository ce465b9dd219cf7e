package registries_test

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

// The tests of this file run every cloud credential flow through the real
// SDK tagwatch ships (aws-sdk-go-v2, golang.org/x/oauth2/jwt, azidentity and
// MSAL), pointed at a local server that speaks the cloud service's wire
// protocol, and then use the credentials the flow produced against a real
// distribution registry (internal/regtest) that demands exactly those.

// openCloud opens one configured instance of a catalog.
func openCloud(t *testing.T, cat registries.Catalog, kind, name string, vals registries.Values) *registries.Instance {
	t.Helper()
	in, err := registries.Open(cat, registries.Config{Kind: kind, Name: name, Source: registries.SourceFile, Values: vals}, localOptions())
	if err != nil {
		t.Fatalf("Open(%s.%s): %v", kind, name, err)
	}
	return in
}

// localOptions gives instances a transport of their own that never goes
// through a proxy: every server of these tests is on 127.0.0.1.
func localOptions() registries.Options {
	tr := registries.NewTransport()
	tr.Proxy = nil
	return registries.Options{Transport: tr}
}

func tagsOf(t *testing.T, in *registries.Instance, host, repo string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tags, err := in.Tags(ctx, registries.Image{Host: host, Repository: repo, Tag: "latest"})
	if err != nil {
		t.Fatalf("Tags(%s/%s) via %s: %v", host, repo, in.ID(), err)
	}
	sort.Strings(tags)
	return tags
}

func tagsErr(t *testing.T, in *registries.Instance, host, repo string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tags, err := in.Tags(ctx, registries.Image{Host: host, Repository: repo, Tag: "latest"})
	if err == nil {
		t.Fatalf("Tags(%s/%s) via %s = %v; want an error", host, repo, in.ID(), tags)
	}
	return err
}

func wantTags(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("tags = %v; want %v", got, want)
	}
}

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error; want one mentioning %q", parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---------------------------------------------------------------------------
// ECR

const (
	ecrTarget      = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	ecrContentType = "application/x-amz-json-1.1"
)

// fakeECR speaks the ECR API's AWS JSON 1.1 protocol for the one operation
// tagwatch calls, GetAuthorizationToken, and checks the SigV4 signature of
// each call with the secret of the access key it names, as AWS does.
type fakeECR struct {
	*httptest.Server
	region  string
	keys    map[string]string // access key id → secret access key
	token   string            // "AWS:<password>", sent base64-encoded
	expires atomic.Int64      // expiresAt of the next answer, Unix seconds

	calls atomic.Int64 // GetAuthorizationToken calls that reached the server
	mu    sync.Mutex
	errs  []string // protocol violations, reported by the test
}

func newFakeECR(t *testing.T, region string, keys map[string]string, user, password string) *fakeECR {
	f := &fakeECR{region: region, keys: keys, token: user + ":" + password}
	f.expires.Store(time.Now().Add(12 * time.Hour).Unix())
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("fake ECR API: %s", e)
		}
	})
	return f
}

func (f *fakeECR) violation(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.errs = append(f.errs, msg)
	f.mu.Unlock()
	writeJSON(w, http.StatusBadRequest, ecrContentType, map[string]string{"__type": "SerializationException", "message": msg})
}

func (f *fakeECR) awsError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("X-Amzn-RequestId", "00000000-0000-0000-0000-000000000000")
	writeJSON(w, http.StatusBadRequest, ecrContentType, map[string]string{"__type": code, "message": msg})
}

func (f *fakeECR) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.violation(w, "reading body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.violation(w, "%s %s; the JSON protocol POSTs to /", r.Method, r.URL.Path)
		return
	}
	if got := r.Header.Get("X-Amz-Target"); got != ecrTarget {
		f.violation(w, "X-Amz-Target = %q; want %q", got, ecrTarget)
		return
	}
	if got := r.Header.Get("Content-Type"); got != ecrContentType {
		f.violation(w, "Content-Type = %q; want %q", got, ecrContentType)
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		f.violation(w, "body %q is not a JSON object: %v", body, err)
		return
	}
	if len(in) != 0 {
		f.violation(w, "GetAuthorizationToken input = %s; tagwatch asks for the default registry (no registryIds)", body)
		return
	}
	_, err = verifySigV4(r, body, f.region, "ecr", f.keys)
	switch {
	case errors.Is(err, errUnknownKey):
		f.awsError(w, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	case err != nil:
		f.awsError(w, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. ("+err.Error()+")")
		return
	}
	writeJSON(w, http.StatusOK, ecrContentType, map[string]any{
		"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte(f.token)),
			"expiresAt":          f.expires.Load(),
			"proxyEndpoint":      "https://123456789012.dkr.ecr." + f.region + ".amazonaws.com",
		}},
	})
}

var errUnknownKey = errors.New("unknown access key")

// verifySigV4 checks an AWS Signature Version 4 Authorization header the way
// AWS does: it rebuilds the canonical request from the headers the client
// says it signed, derives the signing key from the secret of the named
// access key, and compares signatures. It returns the access key id.
func verifySigV4(r *http.Request, body []byte, region, service string, keys map[string]string) (string, error) {
	const algo = "AWS4-HMAC-SHA256 "
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, algo) {
		return "", fmt.Errorf("authorization header %q is not SigV4", auth)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "", fmt.Errorf("credential %q is not <key>/<date>/<region>/<service>/aws4_request", fields["Credential"])
	}
	access, date, gotRegion, gotService := scope[0], scope[1], scope[2], scope[3]
	secret, ok := keys[access]
	if !ok {
		return access, errUnknownKey
	}
	if gotRegion != region || gotService != service {
		return access, fmt.Errorf("credential scope %s/%s; want %s/%s", gotRegion, gotService, region, service)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if !strings.HasPrefix(amzDate, date) {
		return access, fmt.Errorf("X-Amz-Date %q is not of the scope's day %s", amzDate, date)
	}
	if at, err := time.Parse("20060102T150405Z", amzDate); err != nil || time.Since(at).Abs() > 5*time.Minute {
		return access, fmt.Errorf("X-Amz-Date %q is not a current time", amzDate)
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") || !slices.Contains(signed, "x-amz-target") {
		return access, fmt.Errorf("signed headers %v leave out host, x-amz-date or x-amz-target", signed)
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n" + r.URL.EscapedPath() + "\n" + r.URL.Query().Encode() + "\n")
	for _, h := range signed {
		var vals []string
		switch h {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			vals = r.Header.Values(h)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		canon.WriteString(h + ":" + strings.Join(vals, ",") + "\n")
	}
	payload := sha256.Sum256(body)
	canon.WriteString("\n" + fields["SignedHeaders"] + "\n" + hex.EncodeToString(payload[:]))
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != hex.EncodeToString(payload[:]) {
		return access, fmt.Errorf("X-Amz-Content-Sha256 does not match the body")
	}
	creq := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(creq[:])
	mac := func(key []byte, data string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+secret), date), region), service), "aws4_request")
	want := hex.EncodeToString(mac(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return access, fmt.Errorf("signature mismatch")
	}
	return access, nil
}

func TestECRGetAuthorizationTokenAgainstRegistry(t *testing.T) {
	// The ECR provider runs aws-sdk-go-v2's real ECR client (SigV4 signing,
	// AWS JSON 1.1 serialization, error deserialization) against fakeECR, a
	// local server speaking ECR's wire protocol; the token it hands out is
	// the AWS user's password on a real htpasswd registry.
	const (
		region = "eu-west-1"
		access = "AKIAIOSFODNN7EXAMPLE"
		secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"AWS": "ecr-password-1"}})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "ecr-1"))
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "ecr-2"))
	reg.Push(t, "team/other:7", regtest.Image(t, "ecr-3"))
	api := newFakeECR(t, region, map[string]string{access: secret}, "AWS", "ecr-password-1")
	cat := registries.NewCatalog(registries.ECR{Endpoint: api.URL, HTTPClient: api.Client()})
	vals := registries.Values{"region": region, "accesskey": access, "secretaccesskey": secret}

	t.Run("tags and cached token", func(t *testing.T) {
		api.calls.Store(0)
		in := openCloud(t, cat, "ecr", "prod", vals)
		if n := api.calls.Load(); n != 0 {
			t.Fatalf("Open called GetAuthorizationToken %d times; tokens are fetched on first use", n)
		}
		wantTags(t, tagsOf(t, in, reg.Host, "team/app"), "1.0.0", "1.1.0")
		if n := api.calls.Load(); n != 1 {
			t.Fatalf("GetAuthorizationToken calls after the first listing = %d; want 1", n)
		}
		wantTags(t, tagsOf(t, in, reg.Host, "team/app"), "1.0.0", "1.1.0")
		wantTags(t, tagsOf(t, in, reg.Host, "team/other"), "7")
		if n := api.calls.Load(); n != 1 {
			t.Fatalf("GetAuthorizationToken calls after three listings = %d; want 1 (the 12 h token is cached)", n)
		}
		if n := in.Stats().Requests(registries.RequestTags); n < 3 {
			t.Errorf("tag requests counted = %d; want at least 3", n)
		}
	})

	t.Run("token near expiry is renewed", func(t *testing.T) {
		api.calls.Store(0)
		api.expires.Store(time.Now().Add(2 * time.Minute).Unix()) // inside the 5 min early-refresh window
		defer api.expires.Store(time.Now().Add(12 * time.Hour).Unix())
		in := openCloud(t, cat, "ecr", "short", vals)
		wantTags(t, tagsOf(t, in, reg.Host, "team/app"), "1.0.0", "1.1.0")
		first := api.calls.Load()
		if first < 1 {
			t.Fatalf("GetAuthorizationToken calls = %d; want at least 1", first)
		}
		wantTags(t, tagsOf(t, in, reg.Host, "team/app"), "1.0.0", "1.1.0")
		if n := api.calls.Load(); n <= first {
			t.Fatalf("GetAuthorizationToken calls = %d after a second listing, %d after the first; a token expiring in 2 min must be renewed", n, first)
		}
	})

	t.Run("unknown access key", func(t *testing.T) {
		api.calls.Store(0)
		in := openCloud(t, cat, "ecr", "wrong", registries.Values{"region": region, "accesskey": "AKIAWRONGWRONGWRONG0", "secretaccesskey": secret})
		err := tagsErr(t, in, reg.Host, "team/app")
		t.Logf("error: %v", err)
		// People read the classified reason; the SDK's words (the
		// service's message) go to the debug log only.
		wantErrContains(t, err, "refused the credentials of ecr.wrong (400 UnrecognizedClientException)", "Check accesskey and secretaccesskey")
		wantErrContains(t, errors.New(registries.Raw(err)), "ecr GetAuthorizationToken", "security token included in the request is invalid")
		if n := api.calls.Load(); n != 1 {
			t.Errorf("GetAuthorizationToken calls = %d; want 1 (an auth error is not retried)", n)
		}
	})

	t.Run("wrong secret access key", func(t *testing.T) {
		in := openCloud(t, cat, "ecr", "badsecret", registries.Values{"region": region, "accesskey": access, "secretaccesskey": "not-the-secret"})
		err := tagsErr(t, in, reg.Host, "team/app")
		t.Logf("error: %v", err)
		wantErrContains(t, err, "refused the credentials of ecr.badsecret (400 InvalidSignatureException)")
		wantErrContains(t, errors.New(registries.Raw(err)), "ecr GetAuthorizationToken")
	})

	t.Run("signed for the configured region", func(t *testing.T) {
		// The fake checks the credential scope: a client of another region
		// signs for that region, and AWS refuses the signature.
		in := openCloud(t, cat, "ecr", "otherregion", registries.Values{"region": "us-east-1", "accesskey": access, "secretaccesskey": secret})
		err := tagsErr(t, in, reg.Host, "team/app")
		wantErrContains(t, err, "(400 InvalidSignatureException)")
		wantErrContains(t, errors.New(registries.Raw(err)), "ecr GetAuthorizationToken", "us-east-1/ecr")
	})
}

// ---------------------------------------------------------------------------
// GCR

// fakeGoogleToken is Google's OAuth2 token endpoint for service accounts:
// it takes the JWT bearer grant (RFC 7523), verifies the RS256 signature of
// the assertion with the service account's public key and its claims, and
// answers with an access token.
type fakeGoogleToken struct {
	*httptest.Server
	email       string
	pub         *rsa.PublicKey
	accessToken string
	expiresIn   atomic.Int64

	hits atomic.Int64
	mu   sync.Mutex
	errs []string
}

func newFakeGoogleToken(t *testing.T, email string, pub *rsa.PublicKey, accessToken string) *fakeGoogleToken {
	f := &fakeGoogleToken{email: email, pub: pub, accessToken: accessToken}
	f.expiresIn.Store(3600)
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("fake Google token endpoint: %s", e)
		}
	})
	return f
}

func (f *fakeGoogleToken) refuse(w http.ResponseWriter, violation bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if violation {
		f.mu.Lock()
		f.errs = append(f.errs, msg)
		f.mu.Unlock()
	}
	writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": "invalid_grant", "error_description": msg})
}

func (f *fakeGoogleToken) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		f.refuse(w, true, "%s %s; want POST /token", r.Method, r.URL.Path)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.refuse(w, true, "form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.refuse(w, true, "grant_type = %q; want the JWT bearer grant", g)
		return
	}
	claims, err := f.verify(r.PostForm.Get("assertion"), "http://"+r.Host+"/token")
	if err != nil {
		f.refuse(w, false, "Invalid JWT Signature: %v", err)
		return
	}
	if !strings.Contains(claims.Scope, "https://www.googleapis.com/auth/cloud-platform") {
		f.refuse(w, true, "scope %q lacks cloud-platform", claims.Scope)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"access_token": f.accessToken,
		"expires_in":   f.expiresIn.Load(),
		"token_type":   "Bearer",
	})
}

type googleClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

func (f *fakeGoogleToken) verify(assertion, aud string) (googleClaims, error) {
	var c googleClaims
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("assertion is not a JWS compact serialization")
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(raw, &header) != nil {
		return c, fmt.Errorf("bad JWT header")
	}
	if header.Alg != "RS256" {
		return c, fmt.Errorf("alg %q; want RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, fmt.Errorf("bad signature encoding")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, digest[:], sig); err != nil {
		return c, fmt.Errorf("RS256 signature does not verify with the service account's key")
	}
	raw, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return c, fmt.Errorf("bad JWT claims")
	}
	now := time.Now().Unix()
	switch {
	case c.Iss != f.email:
		return c, fmt.Errorf("iss %q; want %q", c.Iss, f.email)
	case c.Aud != aud:
		return c, fmt.Errorf("aud %q; want %q", c.Aud, aud)
	case c.Exp <= now || c.Iat > now+60 || c.Exp-c.Iat > 3600:
		return c, fmt.Errorf("iat %d/exp %d are not a current lifetime of at most an hour", c.Iat, c.Exp)
	}
	return c, nil
}

func rsaKeyPEM(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func TestGCRServiceAccountAgainstRegistry(t *testing.T) {
	// The GCR provider runs golang.org/x/oauth2/jwt (the library Google's
	// own clients use for service account keys) against fakeGoogleToken, a
	// local endpoint speaking Google's OAuth2 JWT bearer protocol; the
	// access token it hands out is the password of oauth2accesstoken on a
	// real htpasswd registry, as on gcr.io and *-docker.pkg.dev.
	const email = "tagwatch@my-project.iam.gserviceaccount.com"
	const accessToken = "ya29.c.local-access-token-0001"
	key, keyPEM := rsaKeyPEM(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"oauth2accesstoken": accessToken}})
	reg.Push(t, "my-project/app:1.0.0", regtest.Image(t, "gcr-1"))
	reg.Push(t, "my-project/app:2.0.0", regtest.Image(t, "gcr-2"))
	google := newFakeGoogleToken(t, email, &key.PublicKey, accessToken)
	cat := registries.NewCatalog(registries.GCR{TokenURL: google.URL + "/token", HTTPClient: google.Client()})

	t.Run("pem key", func(t *testing.T) {
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "pem", registries.Values{"clientemail": email, "privatekey": keyPEM})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "2.0.0")
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "2.0.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1 (an hour-long token is reused)", n)
		}
	})

	t.Run("key with literal \\n escapes", func(t *testing.T) {
		// What an admin pastes from the private_key field of the JSON key file.
		escaped := strings.ReplaceAll(keyPEM, "\n", `\n`)
		if strings.Contains(escaped, "\n") {
			t.Fatal("escaping failed")
		}
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "escaped", registries.Values{"clientemail": email, "privatekey": escaped})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "2.0.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1", n)
		}
	})

	t.Run("short-lived token is refreshed", func(t *testing.T) {
		google.expiresIn.Store(60) // less than the 5 min early-refresh window
		defer google.expiresIn.Store(3600)
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "short", registries.Values{"clientemail": email, "privatekey": keyPEM})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "2.0.0")
		first := google.hits.Load()
		if first < 1 {
			t.Fatalf("token endpoint hits = %d; want at least 1", first)
		}
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "2.0.0")
		if n := google.hits.Load(); n <= first {
			t.Fatalf("token endpoint hits = %d after the second listing, %d after the first; a token expiring in 60 s must be refreshed", n, first)
		}
	})

	t.Run("key of another service account", func(t *testing.T) {
		// A well-formed key the token endpoint does not know: the signature
		// does not verify and Google refuses the grant.
		_, otherPEM := rsaKeyPEM(t)
		in := openCloud(t, cat, "gcr", "otherkey", registries.Values{"clientemail": email, "privatekey": otherPEM})
		err := tagsErr(t, in, reg.Host, "my-project/app")
		t.Logf("error: %v", err)
		wantErrContains(t, err, "refused the credentials of gcr.otherkey (400)", "Check clientemail and privatekey")
		wantErrContains(t, errors.New(registries.Raw(err)), "invalid_grant", "signature does not verify")
	})

	t.Run("garbage key rejected at Open", func(t *testing.T) {
		google.hits.Store(0)
		for _, garbage := range []string{
			"not a key at all",
			"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n",
		} {
			_, err := registries.Open(cat, registries.Config{Kind: "gcr", Name: "garbage", Source: registries.SourceFile,
				Values: registries.Values{"clientemail": email, "privatekey": garbage}}, localOptions())
			if err == nil {
				t.Fatalf("Open with privatekey %q succeeded", garbage)
			}
			var fe *registries.FieldError
			if !errors.As(err, &fe) || fe.Variable != "privatekey" || fe.Registry != "gcr.garbage" {
				t.Errorf("Open error = %#v; want a FieldError of gcr.garbage's privatekey", err)
			}
			wantErrContains(t, err, "registry gcr.garbage: privatekey ")
			if strings.Contains(err.Error(), "AAAA") {
				t.Errorf("error %q repeats the key", err)
			}
		}
		if n := google.hits.Load(); n != 0 {
			t.Errorf("token endpoint hits = %d; a bad key must fail before the wire", n)
		}
	})
}

// googleKeyJSON is a service account's JSON key as Google hands it out
// (IAM → Service accounts → Keys → Add key → JSON), its token_uri pointing
// at tokenURL.
func googleKeyJSON(t *testing.T, email, keyPEM, tokenURL string) []byte {
	t.Helper()
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "my-project",
		"private_key_id":              "0123456789abcdef0123456789abcdef01234567",
		"private_key":                 keyPEM,
		"client_email":                email,
		"client_id":                   "112233445566778899000",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURL,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGCRJSONKeyAgainstRegistry: the JSON key file Google hands out, as a
// path (keyfile) or as the JSON itself (jsonkey, a secret), runs the same
// JWT flow through golang.org/x/oauth2/google against fakeGoogleToken,
// which the key's own token_uri names; the access token then reads tags
// from a real registry that demands it.
func TestGCRJSONKeyAgainstRegistry(t *testing.T) {
	const email = "tagwatch@my-project.iam.gserviceaccount.com"
	const accessToken = "ya29.c.local-access-token-json"
	key, keyPEM := rsaKeyPEM(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"oauth2accesstoken": accessToken}})
	reg.Push(t, "my-project/app:1.0.0", regtest.Image(t, "gcr-json-1"))
	reg.Push(t, "my-project/app:1.1.0", regtest.Image(t, "gcr-json-2"))
	google := newFakeGoogleToken(t, email, &key.PublicKey, accessToken)
	keyJSON := googleKeyJSON(t, email, keyPEM, google.URL+"/token")
	// No TokenURL here: the key says where its tokens come from.
	cat := registries.NewCatalog(registries.GCR{HTTPClient: google.Client()})

	t.Run("keyfile", func(t *testing.T) {
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "file", registries.Values{"keyfile": writeTemp(t, "key.json", keyJSON)})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "1.1.0")
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "1.1.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1", n)
		}
		if in.Anonymous() {
			t.Error("an instance with a key file says it is anonymous")
		}
	})

	t.Run("jsonkey", func(t *testing.T) {
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "json", registries.Values{"jsonkey": string(keyJSON)})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "1.0.0", "1.1.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1", n)
		}
	})

	t.Run("key of another service account", func(t *testing.T) {
		_, otherPEM := rsaKeyPEM(t)
		in := openCloud(t, cat, "gcr", "other", registries.Values{"jsonkey": string(googleKeyJSON(t, email, otherPEM, google.URL+"/token"))})
		// What Google's endpoint said is for the debug log only; the error
		// says whose credentials were refused.
		err := tagsErr(t, in, reg.Host, "my-project/app")
		wantErrContains(t, err, "refused the credentials of gcr.other")
		if raw := registries.Raw(err); !strings.Contains(raw, "invalid_grant") || !strings.Contains(raw, "signature does not verify") {
			t.Errorf("debug text %q lacks what the token endpoint said", raw)
		}
	})

	t.Run("bad keys rejected at Open", func(t *testing.T) {
		google.hits.Store(0)
		user := strings.Replace(string(keyJSON), `"service_account"`, `"authorized_user"`, 1)
		plainHTTP := strings.Replace(string(keyJSON), google.URL, "http://token.example", 1)
		big := writeTemp(t, "big.json", []byte(strings.Repeat(" ", 65<<10)+"{}"))
		for _, tt := range []struct {
			variable, value, want string
		}{
			{"jsonkey", "not json " + keyPEM, "is not a JSON key"},
			{"jsonkey", user, `is a key of type "authorized_user"`},
			{"jsonkey", strings.Replace(string(keyJSON), email, "", 1), "has no client_email"},
			{"jsonkey", strings.Replace(string(keyJSON), "MII", "AAA", 1), "private_key is PEM but not an RSA private key"},
			{"jsonkey", plainHTTP, "has a token_uri that is not https"},
			{"keyfile", filepath.Join(t.TempDir(), "missing.json"), "no such file or directory"},
			{"keyfile", big, "is larger than 64 KiB"},
		} {
			_, err := registries.Open(cat, registries.Config{Kind: "gcr", Name: "bad", Source: registries.SourceFile,
				Values: registries.Values{tt.variable: tt.value}}, localOptions())
			var fe *registries.FieldError
			if !errors.As(err, &fe) || fe.Variable != tt.variable || fe.Registry != "gcr.bad" {
				t.Errorf("%s: Open error = %v; want a FieldError of gcr.bad's %s", tt.want, err, tt.variable)
				continue
			}
			wantErrContains(t, err, tt.want)
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "MII") {
				t.Errorf("error %q repeats the key", err)
			}
		}
		if n := google.hits.Load(); n != 0 {
			t.Errorf("token endpoint hits = %d; a bad key must fail before the wire", n)
		}
	})

	t.Run("one key at a time", func(t *testing.T) {
		_, err := registries.Open(cat, registries.Config{Kind: "gcr", Name: "both", Source: registries.SourceFile,
			Values: registries.Values{"keyfile": "/k.json", "jsonkey": "{}", "clientemail": email}}, localOptions())
		wantErrContains(t, err, "jsonkey/clientemail must not be defined when keyfile is defined")
	})
}

// TestGCRApplicationDefaultCredentials: a configured gcr instance with no
// key finds Google's application default credentials as Google's libraries
// do: GOOGLE_APPLICATION_CREDENTIALS naming a key file (whose token_uri is
// fakeGoogleToken), or the metadata server (GCE_METADATA_HOST, the
// variable Google's metadata client reads, pointing at a local server
// speaking its protocol). The default gcr.public never asks for them.
func TestGCRApplicationDefaultCredentials(t *testing.T) {
	const email = "adc@my-project.iam.gserviceaccount.com"
	const accessToken = "ya29.c.local-adc-token"
	key, keyPEM := rsaKeyPEM(t)
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"oauth2accesstoken": accessToken}})
	reg.Push(t, "my-project/app:3.0.0", regtest.Image(t, "gcr-adc"))
	google := newFakeGoogleToken(t, email, &key.PublicKey, accessToken)
	cat := registries.NewCatalog(registries.GCR{HTTPClient: google.Client()})
	t.Setenv("HOME", t.TempDir()) // no gcloud application_default_credentials.json
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", writeTemp(t, "adc.json", googleKeyJSON(t, email, keyPEM, google.URL+"/token")))

	t.Run("the default instance stays anonymous", func(t *testing.T) {
		google.hits.Store(0)
		set, err := registries.NewSet(cat, nil, localOptions())
		if err != nil {
			t.Fatal(err)
		}
		in, ok := set.Instance("gcr", "public")
		if !ok || !in.Anonymous() {
			t.Fatalf("gcr.public: %v, anonymous %v", ok, ok && in.Anonymous())
		}
		wantErrContains(t, tagsErr(t, in, reg.Host, "my-project/app"), "gcr.public") // refused: no credentials
		if n := google.hits.Load(); n != 0 {
			t.Errorf("token endpoint hits = %d; the default instance must make no credential request", n)
		}
	})

	t.Run("GOOGLE_APPLICATION_CREDENTIALS", func(t *testing.T) {
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "adc", registries.Values{})
		if in.Anonymous() {
			t.Error("a configured instance using application default credentials says it is anonymous")
		}
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "3.0.0")
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "3.0.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1", n)
		}
	})

	t.Run("gcloud's application_default_credentials.json", func(t *testing.T) {
		home := t.TempDir()
		dir := filepath.Join(home, ".config", "gcloud")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "application_default_credentials.json"), googleKeyJSON(t, email, keyPEM, google.URL+"/token"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", home)
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
		google.hits.Store(0)
		in := openCloud(t, cat, "gcr", "gcloud", registries.Values{})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "3.0.0")
		if n := google.hits.Load(); n != 1 {
			t.Fatalf("token endpoint hits = %d; want 1", n)
		}
	})

	t.Run("metadata server", func(t *testing.T) {
		var hits atomic.Int64
		md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Metadata-Flavor") != "Google" {
				http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
				return
			}
			switch r.URL.Path {
			case "/computeMetadata/v1/instance/service-accounts/default/token":
				hits.Add(1)
				if !strings.Contains(r.URL.Query().Get("scopes"), "https://www.googleapis.com/auth/cloud-platform") {
					http.Error(w, "scopes lack cloud-platform", http.StatusBadRequest)
					return
				}
				writeJSON(w, http.StatusOK, "application/json", map[string]any{"access_token": accessToken, "expires_in": 3599, "token_type": "Bearer"})
			case "/computeMetadata/v1/project/project-id":
				_, _ = io.WriteString(w, "my-project")
			default:
				http.NotFound(w, r)
			}
		}))
		defer md.Close()
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
		t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
		in := openCloud(t, cat, "gcr", "gce", registries.Values{})
		wantTags(t, tagsOf(t, in, reg.Host, "my-project/app"), "3.0.0")
		if n := hits.Load(); n != 1 {
			t.Fatalf("metadata token hits = %d; want 1", n)
		}
	})
}

// ---------------------------------------------------------------------------
// ACR

const (
	acrTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	acrClientID = "11111111-2222-3333-4444-555555555555"
	acrSecret   = "local~client~secret"
	acrScope    = "https://containerregistry.azure.net/.default"
)

// fakeAzureAD is the Microsoft identity platform for one tenant: the OpenID
// discovery document MSAL reads first, and the v2.0 token endpoint taking
// the client credentials grant with a client secret.
type fakeAzureAD struct {
	*httptest.Server
	tokens atomic.Int64 // token requests

	mu     sync.Mutex
	issued map[string]bool
	errs   []string
}

func newFakeAzureAD(t *testing.T) *fakeAzureAD {
	f := &fakeAzureAD{issued: map[string]bool{}}
	// MSAL refuses an authority that is not https.
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("fake Azure AD: %s", e)
		}
	})
	return f
}

func (f *fakeAzureAD) violation(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeAzureAD) valid(token string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued[token]
}

func (f *fakeAzureAD) serve(w http.ResponseWriter, r *http.Request) {
	base := f.URL + "/" + acrTenant
	switch r.URL.Path {
	case "/" + acrTenant + "/v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, "application/json", map[string]any{
			"issuer":                                base + "/v2.0",
			"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
			"token_endpoint":                        base + "/oauth2/v2.0/token",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"tenant_region_scope":                   "EU",
		})
	case "/" + acrTenant + "/oauth2/v2.0/token":
		f.tokens.Add(1)
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			f.violation("%s %s: want a POSTed form (%v)", r.Method, r.URL.Path, err)
			writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": "invalid_request"})
			return
		}
		form := r.PostForm
		if g := form.Get("grant_type"); g != "client_credentials" {
			f.violation("grant_type = %q; want client_credentials", g)
		}
		if s := strings.Fields(form.Get("scope")); !slices.Contains(s, acrScope) {
			f.violation("scope = %q; want %s", form.Get("scope"), acrScope)
		}
		if form.Get("client_id") != acrClientID || form.Get("client_secret") != acrSecret {
			writeJSON(w, http.StatusUnauthorized, "application/json", map[string]any{
				"error":             "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
				"error_codes":       []int{7000215},
			})
			return
		}
		tok := "aad." + randomHex(16)
		f.mu.Lock()
		f.issued[tok] = true
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, "application/json", map[string]any{
			"token_type":     "Bearer",
			"expires_in":     3599,
			"ext_expires_in": 3599,
			"access_token":   tok,
		})
	default:
		f.violation("unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// acrFront stands in for an ACR login server: it serves ACR's token
// exchange (an Azure AD access token for an ACR refresh token, which it
// registers with the registry's token issuer) and passes everything else to
// a real token-auth registry, whose challenge sends clients to the issuer.
type acrFront struct {
	*httptest.Server
	exchanges atomic.Int64

	mu   sync.Mutex
	errs []string
}

func newACRFront(t *testing.T, reg *regtest.Registry, aad *fakeAzureAD) *acrFront {
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	f := &acrFront{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/exchange" {
			proxy.ServeHTTP(w, r)
			return
		}
		f.exchanges.Add(1)
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			f.violation("%s /oauth2/exchange: want a POSTed form (%v)", r.Method, err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		form := r.PostForm
		if g := form.Get("grant_type"); g != "access_token" {
			f.violation("grant_type = %q; want access_token", g)
		}
		if s := form.Get("service"); s != r.Host {
			f.violation("service = %q; want the login server %q", s, r.Host)
		}
		if tn := form.Get("tenant"); tn != acrTenant {
			f.violation("tenant = %q; want %q", tn, acrTenant)
		}
		if !aad.valid(form.Get("access_token")) {
			writeJSON(w, http.StatusUnauthorized, "application/json", map[string]any{
				"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "invalid AAD access token"}},
			})
			return
		}
		refresh := "acr-refresh." + randomHex(16)
		reg.Issuer.AddRefreshToken(refresh, acrClientID)
		writeJSON(w, http.StatusOK, "application/json", map[string]string{"refresh_token": refresh})
	}))
	t.Cleanup(func() {
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("ACR front: %s", e)
		}
	})
	return f
}

func (f *acrFront) violation(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func TestACRServicePrincipalWithTenantAgainstRegistry(t *testing.T) {
	// The ACR provider runs azidentity's ClientSecretCredential (and the
	// MSAL library under it: OpenID discovery, then the client credentials
	// grant) against fakeAzureAD, a local HTTPS authority speaking the
	// Microsoft identity platform's protocol. The Azure AD token is traded
	// at acrFront's /oauth2/exchange, ACR's protocol, for a refresh token
	// that a real token-auth registry's issuer honours in the OAuth2
	// refresh_token grant go-containerregistry sends.
	reg := regtest.Start(t, regtest.Options{Token: true})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "acr-1"))
	reg.Push(t, "team/app:1.0.1", regtest.Image(t, "acr-2"))
	reg.Push(t, "team/web:3", regtest.Image(t, "acr-3"))
	aad := newFakeAzureAD(t)
	front := newACRFront(t, reg, aad)
	host := strings.TrimPrefix(front.URL, "http://")
	cat := registries.NewCatalog(registries.ACR{AuthorityHost: aad.URL + "/", HTTPClient: aad.Client()})

	t.Run("tags with one exchange per host", func(t *testing.T) {
		in := openCloud(t, cat, "acr", "main", registries.Values{"clientid": acrClientID, "clientsecret": acrSecret, "tenantid": acrTenant})
		if n := aad.tokens.Load() + front.exchanges.Load(); n != 0 {
			t.Fatalf("Open made %d token calls; tokens are fetched on first use", n)
		}
		wantTags(t, tagsOf(t, in, host, "team/app"), "1.0.0", "1.0.1")
		wantTags(t, tagsOf(t, in, host, "team/web"), "3")
		wantTags(t, tagsOf(t, in, host, "team/app"), "1.0.0", "1.0.1")
		if n := front.exchanges.Load(); n != 1 {
			t.Errorf("exchanges = %d; want 1 for one host across three listings", n)
		}
		if n := aad.tokens.Load(); n != 1 {
			t.Errorf("Azure AD token requests = %d; want 1", n)
		}
		var refreshGrants int
		for _, rq := range reg.Issuer.Log() {
			if rq.Grant == "refresh_token" && rq.User == acrClientID && rq.Status == http.StatusOK {
				refreshGrants++
			}
			if rq.Grant == "" && rq.User == acrClientID {
				t.Errorf("issuer saw basic credentials for the service principal: %+v", rq)
			}
		}
		if refreshGrants == 0 {
			t.Errorf("the issuer granted no token for the exchanged refresh token; log: %+v", reg.Issuer.Log())
		}

		// A refresh token names the login server it was exchanged at: a
		// second host gets an exchange of its own, from the cached Azure
		// AD token.
		second := newACRFront(t, reg, aad)
		wantTags(t, tagsOf(t, in, strings.TrimPrefix(second.URL, "http://"), "team/web"), "3")
		if a, b := front.exchanges.Load(), second.exchanges.Load(); a != 1 || b != 1 {
			t.Errorf("exchanges = %d and %d; want one per host", a, b)
		}
		if n := aad.tokens.Load(); n != 1 {
			t.Errorf("Azure AD token requests = %d; want 1 (MSAL caches the token)", n)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		before := front.exchanges.Load()
		in := openCloud(t, cat, "acr", "wrong", registries.Values{"clientid": acrClientID, "clientsecret": "not-the-secret", "tenantid": acrTenant})
		err := tagsErr(t, in, host, "team/app")
		t.Logf("error: %v", err)
		wantErrContains(t, err, "refused the credentials of acr.wrong (401)", "Check clientid and clientsecret")
		wantErrContains(t, errors.New(registries.Raw(err)), "acr: azure ad token", "AADSTS7000215")
		if n := front.exchanges.Load(); n != before {
			t.Errorf("exchanges = %d; want none without an Azure AD token", n-before)
		}
	})
}

func TestACRServicePrincipalBasicAgainstRegistry(t *testing.T) {
	// Without tenantid there is no SDK in the path: the client id and
	// secret are basic credentials, as ACR takes them from docker login.
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{acrClientID: acrSecret}})
	reg.Push(t, "team/app:5.0", regtest.Image(t, "acr-basic-1"))
	cat := registries.DefaultCatalog()

	in := openCloud(t, cat, "acr", "basic", registries.Values{"clientid": acrClientID, "clientsecret": acrSecret})
	wantTags(t, tagsOf(t, in, reg.Host, "team/app"), "5.0")

	bad := openCloud(t, cat, "acr", "basicwrong", registries.Values{"clientid": acrClientID, "clientsecret": "nope"})
	err := tagsErr(t, bad, reg.Host, "team/app")
	if !errors.Is(err, registries.ErrUnauthorized) {
		t.Errorf("error %v; want ErrUnauthorized", err)
	}
	wantErrContains(t, err, "acr.basicwrong", "refused the credentials")
}
