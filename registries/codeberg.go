package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Codeberg is codeberg.org, the Forgejo instance Codeberg e.V. runs: its
// public packages are read anonymously (codeberg.public), private ones with
// a login and an access token, as any Forgejo's.
type Codeberg struct{}

func (Codeberg) Spec() Spec {
	return Spec{
		Kind:           "codeberg",
		Title:          "Codeberg",
		Description:    "codeberg.org's package registry (Forgejo). Anonymous by default; a username and an access token with the read:package scope for private packages.",
		Variables:      withShared(loginPair("Codeberg username", "Codeberg access token (read:package) or password")...),
		Rules:          together("login", "password"),
		Default:        true,
		Host:           "codeberg.org",
		Example:        Values{"login": "octocat", "password": "<access token>"},
		CredentialHint: "Codeberg expects your username as the login and an access token with the read:package scope (Settings → Applications) as the password",
	}
}

func (Codeberg) Serves(_ Values, host string) bool { return hostIs(host, "codeberg.org") }

func (Codeberg) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
