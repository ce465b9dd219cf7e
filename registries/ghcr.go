package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// GHCR is the GitHub Container Registry. Public images need no credentials.
type GHCR struct{}

func (GHCR) Spec() Spec {
	return Spec{
		Kind:        "ghcr",
		Title:       "GitHub Container Registry",
		Description: "ghcr.io. Anonymous by default; a username and a personal access token (read:packages) for private images.",
		// The host is fixed (ghcr.io): only the proxy is an Endpoint.
		Variables: withShared(
			Variable{Name: "username", Description: "GitHub username"},
			Variable{Name: "token", Secret: true, Description: "GitHub token", Supported: "GitHub password or GitHub Personal Token"},
		),
		Rules: []Rule{
			{If: "username", Needs: []string{"token"}},
			{If: "token", Needs: []string{"username"}},
		},
		Default:        true,
		Host:           "ghcr.io",
		Example:        Values{"username": "octocat", "token": "<personal access token>"},
		CredentialHint: "GHCR expects your GitHub username and a personal access token (classic) with the read:packages scope",
	}
}

func (GHCR) Serves(_ Values, host string) bool { return hostIs(host, "ghcr.io") }

func (GHCR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["username"], v["token"]), nil
}
