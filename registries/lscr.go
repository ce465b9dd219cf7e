package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// LSCR is LinuxServer's registry, lscr.io, which fronts GHCR and so takes
// GitHub credentials. Without an instance its public images are read
// anonymously like any other host.
type LSCR struct{}

func (LSCR) Spec() Spec {
	return Spec{
		Kind:        "lscr",
		Title:       "LinuxServer Container Registry",
		Description: "lscr.io, with GitHub credentials.",
		// The host is fixed (lscr.io): only the proxy is an Endpoint.
		Variables: withShared(
			Variable{Name: "username", Required: true, Description: "GitHub username"},
			Variable{Name: "token", Required: true, Secret: true, Description: "GitHub token", Supported: "GitHub password or GitHub Personal Token"},
		),
		Host:           "lscr.io",
		Example:        Values{"username": "octocat", "token": "<personal access token>"},
		CredentialHint: "LSCR expects your GitHub username and a personal access token (classic) with the read:packages scope",
	}
}

func (LSCR) Serves(_ Values, host string) bool { return hostIs(host, "lscr.io") }

func (LSCR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["username"], v["token"]), nil
}
