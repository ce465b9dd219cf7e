package registries

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"
)

// GCR is Google Container Registry and Artifact Registry. A service
// account's key (the JSON key file Google hands out, or its client_email
// and private_key) is turned into an OAuth2 access token (the JWT bearer
// flow), which the registry takes as the password of the user
// oauth2accesstoken. A configured instance with no key uses Google's
// application default credentials instead; the default gcr.public stays
// anonymous.
type GCR struct {
	// TokenURL overrides Google's token endpoint for clientemail and
	// privatekey; tests point it at a local one. A JSON key names its own
	// (token_uri).
	TokenURL string
	// HTTPClient carries the token requests (nil: the instance's transport,
	// with its deadlines and size caps).
	HTTPClient *http.Client
}

const (
	googleTokenURL = "https://oauth2.googleapis.com/token"
	googleScope    = "https://www.googleapis.com/auth/cloud-platform"
	// maxKeyFile caps a key file read: Google's are about 2.4 KB.
	maxKeyFile = 64 << 10
	// earlyRefresh renews a token this long before it expires, so that none
	// dies in the middle of a cycle.
	earlyRefresh = 5 * time.Minute
)

func (GCR) Spec() Spec {
	return Spec{
		Kind:  "gcr",
		Title: "Google Container Registry",
		Description: "gcr.io, *.gcr.io and Artifact Registry (*-docker.pkg.dev). Anonymous by default; for private images a service account's " +
			"JSON key (keyfile or jsonkey) or its client_email and private_key. A configured instance with none of them uses Google's " +
			"application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the metadata server).",
		// Google's token endpoint and the registry hosts are fixed (TokenURL
		// is the code's, for tests, not a variable; a JSON key's token_uri
		// must be Google's https endpoint): only the proxy is an Endpoint.
		// clientemail names the account, keyfile a file here, not places.
		Variables: withShared(
			Variable{Name: "keyfile", Description: "Path of the service account's JSON key file, as Google hands it out", Supported: "See Service Account credentials",
				Default: "application default credentials, when no other key is set"},
			Variable{Name: "jsonkey", Secret: true, Description: "The service account's JSON key itself (the content of the key file)", Supported: "See Service Account credentials",
				Default: "application default credentials, when no other key is set"},
			Variable{Name: "clientemail", Description: "Service Account Client Email (required for private images access)", Supported: "See Service Account credentials"},
			Variable{Name: "privatekey", Secret: true, Description: "Service Account Private Key (required for private images access)", Supported: "See Service Account credentials"},
		),
		Rules: []Rule{
			{If: "keyfile", Excludes: []string{"jsonkey", "clientemail", "privatekey"}},
			{If: "jsonkey", Excludes: []string{"clientemail", "privatekey"}},
			{If: "clientemail", Needs: []string{"privatekey"}},
			{If: "privatekey", Needs: []string{"clientemail"}},
		},
		Default:        true,
		Host:           "gcr.io",
		CredentialHint: "Google expects a service account's JSON key (keyfile or jsonkey), or its client_email and private_key, with the Artifact Registry Reader (or Storage Object Viewer for gcr.io) role",
		Example:        Values{"keyfile": "/run/secrets/gcr-key.json"},
	}
}

func (GCR) Serves(_ Values, host string) bool {
	host = strings.ToLower(host)
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, "-docker.pkg.dev")
}

// Authenticates reports that a configured instance always has credentials:
// a key, or the application default credentials (Instance.Anonymous).
func (GCR) Authenticates(Values) bool { return true }

func (g GCR) Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error) {
	// The token sources have no context of their own, so the instance's
	// transport is what bounds a token request in time and size.
	calls := newCredentialCalls(rt)
	client := &http.Client{Transport: calls}
	if g.HTTPClient != nil {
		client = g.HTTPClient
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	tokenKeychain := func(ts oauth2.TokenSource) authn.Keychain {
		return staticKeychain{gcrAuth{oauth2.ReuseTokenSourceWithExpiry(nil, ts, earlyRefresh), calls}}
	}
	switch {
	case v.Has("keyfile"):
		key, err := readKeyFile(v["keyfile"])
		if err == nil {
			var cfg *jwt.Config
			if cfg, err = jwtFromJSON(key); err == nil {
				return tokenKeychain(cfg.TokenSource(ctx)), nil
			}
		}
		return nil, &FieldError{Variable: "keyfile", Message: err.Error()}
	case v.Has("jsonkey"):
		cfg, err := jwtFromJSON([]byte(v["jsonkey"]))
		if err != nil {
			return nil, &FieldError{Variable: "jsonkey", Message: err.Error()}
		}
		return tokenKeychain(cfg.TokenSource(ctx)), nil
	case v.Has("clientemail"):
		// A key pasted from the JSON key file keeps its "\n" escapes.
		key := []byte(strings.ReplaceAll(v["privatekey"], `\n`, "\n"))
		if err := checkPrivateKey(key); err != nil {
			return nil, &FieldError{Variable: "privatekey", Message: err.Error()}
		}
		cfg := &jwt.Config{Email: v["clientemail"], PrivateKey: key, Scopes: []string{googleScope}, TokenURL: googleTokenURL}
		if g.TokenURL != "" {
			cfg.TokenURL = g.TokenURL
		}
		return tokenKeychain(cfg.TokenSource(ctx)), nil
	}
	return staticKeychain{&adcAuth{ctx: ctx, calls: calls}}, nil
}

type gcrAuth struct {
	ts    oauth2.TokenSource
	calls *credentialCalls
}

func (a gcrAuth) Authorization() (*authn.AuthConfig, error) {
	tok, err := a.ts.Token()
	if err != nil {
		return nil, a.calls.withCause(err)
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: tok.AccessToken}, nil
}

// adcAuth finds Google's application default credentials on first use, not
// when the instance opens: finding them may ask the metadata server, which
// off Google Cloud takes seconds to not answer.
type adcAuth struct {
	ctx   context.Context
	calls *credentialCalls
	mu    sync.Mutex
	ts    oauth2.TokenSource
}

func (a *adcAuth) Authorization() (*authn.AuthConfig, error) {
	a.mu.Lock()
	if a.ts == nil {
		creds, err := google.FindDefaultCredentialsWithParams(a.ctx, google.CredentialsParams{Scopes: []string{googleScope}, EarlyTokenRefresh: earlyRefresh})
		if err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("no key is set, and Google's application default credentials: %w", a.calls.withCause(err))
		}
		a.ts = oauth2.ReuseTokenSourceWithExpiry(nil, creds.TokenSource, earlyRefresh)
	}
	ts := a.ts
	a.mu.Unlock()
	tok, err := ts.Token()
	if err != nil {
		return nil, fmt.Errorf("application default credentials: %w", a.calls.withCause(err))
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: tok.AccessToken}, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d KiB: not a JSON key file", path, maxKeyFile>>10)
	}
	return b, nil
}

// jwtFromJSON checks a service account's JSON key and reads it with
// Google's own parser. Only service account keys are taken: other types
// (external_account, …) may make tagwatch read files or run programs the
// key names. Messages never quote the key.
func jwtFromJSON(data []byte) (*jwt.Config, error) {
	var key struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
		TokenURI    string `json:"token_uri"`
	}
	if err := json.Unmarshal(data, &key); err != nil {
		return nil, authError("is not a JSON key: a service account's key file is a JSON object (IAM → Service accounts → Keys → Add key → JSON)")
	}
	if key.Type != "service_account" {
		return nil, authError(fmt.Sprintf("is a key of type %q; a service account's JSON key has type \"service_account\"", key.Type))
	}
	if key.ClientEmail == "" {
		return nil, authError("has no client_email")
	}
	if err := checkPrivateKey([]byte(key.PrivateKey)); err != nil {
		return nil, authError("private_key " + err.Error())
	}
	if key.TokenURI != "" {
		if err := checkTokenURI(key.TokenURI); err != nil {
			return nil, err
		}
	}
	cfg, err := google.JWTConfigFromJSON(data, googleScope)
	if err != nil {
		return nil, authError("could not be read: " + err.Error())
	}
	return cfg, nil
}

// checkTokenURI keeps the signed assertion on HTTPS, except to a token
// endpoint on this machine.
func checkTokenURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return authError("has a token_uri that is not a URL")
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return authError("has a token_uri that is not https")
}

func checkPrivateKey(b []byte) error {
	block, _ := pem.Decode(b)
	if block == nil {
		return authError("is not a PEM private key (copy private_key from the key file, BEGIN and END lines included)")
	}
	// PKCS#8 also holds EC and Ed25519 keys, which the RS256 JWT cannot use.
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return nil
		}
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	return authError("is PEM but not an RSA private key in PKCS#8 or PKCS#1 form")
}
