package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// DOCR is DigitalOcean Container Registry. It takes one API token as both
// login and password (what doctl registry login writes), so the admin gives
// the token once.
type DOCR struct{}

const docrHost = "registry.digitalocean.com"

func (DOCR) Spec() Spec {
	return Spec{
		Kind:        "docr",
		Title:       "DigitalOcean Container Registry",
		Description: "registry.digitalocean.com. A DigitalOcean API token with read access to the registry, sent as both login and password (as doctl registry login does).",
		Variables: withShared(
			Variable{Name: "token", Required: true, Secret: true, Description: "DigitalOcean personal access token (read scope is enough)"},
		),
		Host:           docrHost,
		Example:        Values{"token": "<dop_v1_… token>"},
		CredentialHint: "DigitalOcean expects an API token with read access to the registry as both the login and the password (tagwatch sends it as both)",
	}
}

func (DOCR) Serves(_ Values, host string) bool { return hostIs(host, docrHost) }

func (DOCR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["token"], v["token"]), nil
}
