package registries

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
)

// GCR is Google Container Registry and Artifact Registry. A service
// account's key is turned into an OAuth2 access token (the JWT bearer flow),
// which the registry takes as the password of the user oauth2accesstoken.
type GCR struct {
	// TokenURL overrides Google's token endpoint; tests point it at a local one.
	TokenURL string
	// HTTPClient carries the token requests (nil: the instance's transport,
	// with its deadlines and size caps).
	HTTPClient *http.Client
}

const googleTokenURL = "https://oauth2.googleapis.com/token"

func (GCR) Spec() Spec {
	return Spec{
		Kind:        "gcr",
		Title:       "Google Container Registry",
		Description: "gcr.io, *.gcr.io and Artifact Registry (*-docker.pkg.dev). Anonymous by default; a service account's client_email and private_key for private images.",
		Variables: []Variable{
			{Name: "clientemail", Description: "Service Account Client Email (required for private images access)", Supported: "See Service Account credentials"},
			{Name: "privatekey", Secret: true, Description: "Service Account Private Key (required for private images access)", Supported: "See Service Account credentials"},
		},
		Rules: []Rule{
			{If: "clientemail", Needs: []string{"privatekey"}},
			{If: "privatekey", Needs: []string{"clientemail"}},
		},
		Default: true,
		Example: Values{"clientemail": "tagwatch@my-project.iam.gserviceaccount.com", "privatekey": "-----BEGIN PRIVATE KEY-----\\n…\\n-----END PRIVATE KEY-----\\n"},
	}
}

func (GCR) Serves(_ Values, host string) bool {
	host = strings.ToLower(host)
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, "-docker.pkg.dev")
}

func (g GCR) Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error) {
	if !v.Has("clientemail") {
		return anonymous, nil
	}
	// A key pasted from the JSON key file keeps its "\n" escapes.
	key := []byte(strings.ReplaceAll(v["privatekey"], `\n`, "\n"))
	if err := checkPrivateKey(key); err != nil {
		return nil, &FieldError{Variable: "privatekey", Message: err.Error()}
	}
	cfg := &jwt.Config{
		Email:      v["clientemail"],
		PrivateKey: key,
		Scopes:     []string{"https://www.googleapis.com/auth/cloud-platform"},
		TokenURL:   googleTokenURL,
	}
	if g.TokenURL != "" {
		cfg.TokenURL = g.TokenURL
	}
	// The token source has no context of its own, so the instance's
	// transport is what bounds a token request in time and size.
	client := &http.Client{Transport: rt}
	if g.HTTPClient != nil {
		client = g.HTTPClient
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	// Refresh five minutes before expiry, so a token never dies mid-cycle.
	ts := oauth2.ReuseTokenSourceWithExpiry(nil, cfg.TokenSource(ctx), 5*time.Minute)
	return staticKeychain{gcrAuth{ts}}, nil
}

type gcrAuth struct{ ts oauth2.TokenSource }

func (a gcrAuth) Authorization() (*authn.AuthConfig, error) {
	tok, err := a.ts.Token()
	if err != nil {
		return nil, err
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: tok.AccessToken}, nil
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
