package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Forgejo is a self-hosted Forgejo's package registry (a Gitea fork; same
// registry, same credentials).
type Forgejo struct{}

func (Forgejo) Spec() Spec { return forgeSpec("forgejo", "Forgejo") }

func (Forgejo) Serves(v Values, host string) bool { return servesURL(v, host) }

func (Forgejo) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) { return loginOrAuth(v) }
