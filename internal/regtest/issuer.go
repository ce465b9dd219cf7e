package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issuer is a token server a distribution registry trusts: the docker token
// protocol (GET /token), its OAuth2 variant (POST /token, also at
// /oauth2/token) and GitLab's path (GET /jwt/auth). It signs ES256 JWTs with
// a self-signed certificate sent in the x5c header; the registry's
// auth.token.rootcertbundle holds the same certificate.
//
// A good user is granted every action it asks for (see Grant); a request
// without credentials gets a token with an empty access list, which the
// registry accepts for /v2/ and refuses for any repository; bad credentials
// get 401.
type Issuer struct {
	URL     string // "http://localhost:PORT" (listening on 127.0.0.1); https with Options.TLS
	Name    string // the JWT's iss, which the registry checks
	Service string // the audience when a request names no service
	// Lifetime of the tokens it issues (expires_in); 5 minutes unless set.
	Lifetime time.Duration
	// Check decides whether basic credentials are good; by default it looks
	// them up in the Users it was made with. Set it before use to accept,
	// say, any username with a given personal access token. The Admin
	// credentials of this package are accepted before Check is asked.
	Check func(user, password string) bool
	// Grant, when set, decides which of the requested actions a good user
	// gets on a resource; nil grants them all.
	Grant func(user string, requested Access) []string
	// Anonymous, when set, decides which of the requested actions a client
	// without credentials gets (public repositories); nil grants none.
	Anonymous func(requested Access) []string

	key           *ecdsa.PrivateKey
	certDER       []byte
	certPEM       []byte
	adminPassword string

	requests atomic.Int64
	mu       sync.Mutex
	refresh  map[string]string // refresh token -> user
	log      []TokenRequest
}

// Access is one entry of a token's access claim: the actions granted on a
// resource, e.g. {repository team/app [pull]}.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String is the scope form: "repository:team/app:pull,push".
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// TokenRequest records one request the Issuer served.
type TokenRequest struct {
	Method  string   // GET or POST
	Path    string   // "/token", "/jwt/auth", "/oauth2/token"…
	Grant   string   // POST: "password" or "refresh_token"
	User    string   // the authenticated user; "" when anonymous or refused
	Service string   // the service asked for
	Scopes  []string // the scopes asked for, as sent
	Status  int      // the HTTP status answered
}

// NewIssuer starts a token server on 127.0.0.1 that knows users (login ->
// password). Start makes one for Options.Token; tests that need a token
// server without a registry may call this directly.
func NewIssuer(t testing.TB, users map[string]string) *Issuer {
	t.Helper()
	return newIssuer(t, users, "container_registry", randomString(t), nil)
}

// newIssuer serves HTTPS with cert when it is set, HTTP otherwise.
func newIssuer(t testing.TB, users map[string]string, service, adminPassword string, cert *tls.Certificate) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "regtest token issuer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	known := make(map[string]string, len(users))
	for u, p := range users {
		known[u] = p
	}
	i := &Issuer{
		Name:          "regtest-issuer",
		Service:       service,
		Lifetime:      5 * time.Minute,
		Check:         func(user, password string) bool { p, ok := known[user]; return ok && p == password },
		key:           key,
		certDER:       der,
		certPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		adminPassword: adminPassword,
		refresh:       map[string]string{},
	}
	srv := httptest.NewUnstartedServer(i)
	scheme := "http"
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		scheme = "https"
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	// The server listens on 127.0.0.1 but is named "localhost":
	// go-containerregistry refuses a token realm whose host is a private
	// or loopback IP literal unless it is the registry's own host:port (an
	// SSRF guard); a DNS name passes.
	i.URL = scheme + "://localhost:" + strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	return i
}

// CertPEM is the certificate that verifies the Issuer's tokens.
func (i *Issuer) CertPEM() []byte { return i.certPEM }

// Requests counts the requests served, whatever their path and outcome.
func (i *Issuer) Requests() int { return int(i.requests.Load()) }

// Log returns the requests served so far, oldest first.
func (i *Issuer) Log() []TokenRequest {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]TokenRequest(nil), i.log...)
}

// AddRefreshToken makes token a refresh token of user for the OAuth2 POST
// flow (grant_type=refresh_token), the way Azure ACR hands them out.
func (i *Issuer) AddRefreshToken(token, user string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.refresh[token] = user
}

// Mint signs a token for user with exactly the given access, for the
// Issuer's Service: what the Issuer would hand a user granted those.
func (i *Issuer) Mint(user string, access ...Access) string {
	return i.sign(user, i.Service, access, time.Now())
}

func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.requests.Add(1)
	rec := TokenRequest{Method: r.Method, Path: r.URL.Path}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		rec.Status = rw.status
		i.mu.Lock()
		i.log = append(i.log, rec)
		i.mu.Unlock()
	}()
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/token" || r.URL.Path == "/jwt/auth"):
		q := r.URL.Query()
		rec.Service, rec.Scopes = q.Get("service"), q["scope"]
		user, password, hasBasic := r.BasicAuth()
		if r.Header.Get("Authorization") != "" && !hasBasic {
			i.refuse(rw, "the token server takes Basic credentials only")
			return
		}
		if hasBasic {
			if !i.good(user, password) {
				i.refuse(rw, "bad username or password")
				return
			}
			rec.User = user
		}
		i.answer(rw, rec.User, hasBasic, rec.Service, splitScopes(rec.Scopes), "", false)
	case r.Method == http.MethodPost && (r.URL.Path == "/token" || r.URL.Path == "/oauth2/token"):
		if err := r.ParseForm(); err != nil {
			writeJSON(rw, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
			return
		}
		f := r.PostForm
		rec.Grant, rec.Service = f.Get("grant_type"), f.Get("service")
		if s := f.Get("scope"); s != "" {
			rec.Scopes = []string{s}
		}
		var user, refresh string
		switch rec.Grant {
		case "password":
			if !i.good(f.Get("username"), f.Get("password")) {
				i.refuse(rw, "bad username or password")
				return
			}
			user = f.Get("username")
			if f.Get("access_type") == "offline" {
				refresh = randomToken()
				i.AddRefreshToken(refresh, user)
			}
		case "refresh_token":
			refresh = f.Get("refresh_token")
			i.mu.Lock()
			u, ok := i.refresh[refresh]
			i.mu.Unlock()
			if !ok {
				i.refuse(rw, "unknown refresh token")
				return
			}
			user = u
		default:
			writeJSON(rw, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
			return
		}
		rec.User = user
		i.answer(rw, user, true, rec.Service, splitScopes(rec.Scopes), refresh, true)
	default:
		http.NotFound(rw, r)
	}
}

func (i *Issuer) good(user, password string) bool {
	if user == Admin {
		return password == i.adminPassword
	}
	return i.Check != nil && i.Check(user, password)
}

func (i *Issuer) refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="regtest"`)
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": msg}},
	})
}

// answer grants the requested scopes (all of them to a good user, none to
// an anonymous one) and writes the token.
func (i *Issuer) answer(w http.ResponseWriter, user string, authenticated bool, service string, scopes []Access, refresh string, oauth bool) {
	if service == "" {
		service = i.Service
	}
	access := []Access{}
	for _, s := range scopes {
		var actions []string
		switch {
		case !authenticated && i.Anonymous != nil:
			actions = i.Anonymous(s)
		case !authenticated:
		case i.Grant != nil && user != Admin:
			actions = i.Grant(user, s)
		default:
			actions = s.Actions
		}
		if len(actions) > 0 {
			access = append(access, Access{Type: s.Type, Name: s.Name, Actions: actions})
		}
	}
	now := time.Now()
	tok := i.sign(user, service, access, now)
	body := map[string]any{
		"access_token": tok,
		"expires_in":   int(i.lifetime() / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	}
	if oauth {
		grants := make([]string, len(access))
		for n, a := range access {
			grants[n] = a.String()
		}
		body["scope"] = strings.Join(grants, " ")
		if refresh != "" {
			body["refresh_token"] = refresh
		}
	} else {
		body["token"] = tok
	}
	writeJSON(w, http.StatusOK, body)
}

func (i *Issuer) lifetime() time.Duration {
	if i.Lifetime <= 0 {
		return 5 * time.Minute
	}
	return i.Lifetime
}

// sign makes an ES256 JWT carrying the issuer's certificate in x5c, the
// claims distribution 2.8 checks: iss, aud, exp/nbf, access.
func (i *Issuer) sign(user, service string, access []Access, now time.Time) string {
	if access == nil {
		access = []Access{}
	}
	header, _ := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(i.certDER)},
	})
	claims, _ := json.Marshal(map[string]any{
		"iss":    i.Name,
		"sub":    user,
		"aud":    service,
		"iat":    now.Unix(),
		"nbf":    now.Add(-time.Second).Unix(),
		"exp":    now.Add(i.lifetime()).Unix(),
		"jti":    randomToken(),
		"access": access,
	})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, sum[:])
	if err != nil {
		panic(fmt.Sprintf("regtest: sign: %v", err))
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}

// splitScopes parses "repository:team/app:pull,push" scopes; a parameter
// may hold several separated by spaces (the OAuth2 form).
func splitScopes(params []string) []Access {
	var out []Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			typ, rest, ok := strings.Cut(s, ":")
			if !ok {
				continue
			}
			i := strings.LastIndex(rest, ":")
			if i < 0 {
				continue
			}
			var actions []string
			for _, a := range strings.Split(rest[i+1:], ",") {
				if a != "" {
					actions = append(actions, a)
				}
			}
			out = append(out, Access{Type: typ, Name: rest[:i], Actions: actions})
		}
	}
	return out
}

// ParseScope reads one "type:name:actions" scope; it is exported for tests
// that inspect Log.
func ParseScope(s string) (Access, bool) {
	a := splitScopes([]string{s})
	if len(a) != 1 {
		return Access{}, false
	}
	return a[0], true
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the writer underneath (a
// reverse proxy's flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
