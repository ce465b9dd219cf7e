package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Custom is a self-hosted registry (the CNCF distribution registry, Harbor,
// Nexus, a vendor's private registry…): a url, and login/password or a
// base64 auth string when it asks for them.
type Custom struct{}

func (Custom) Spec() Spec {
	return Spec{
		Kind:  "custom",
		Title: "Custom registry",
		// a registry of the admin's own, most often on the LAN.
		Concurrency: LANConcurrency,
		Description: "A self-hosted Docker registry, or any registry not listed here. Anonymous unless login/password or auth is set; Basic or Bearer, as the registry's challenge asks.",
		Variables: withShared(append(urlVariables("Registry URL (e.g. http://localhost:5000)"),
			Variable{Name: "login", Description: "Login (when htpasswd auth is enabled on the registry)", Default: "password must be defined"},
			Variable{Name: "password", Secret: true, Description: "Password (when htpasswd auth is enabled on the registry)", Default: "login must be defined"},
			Variable{Name: "auth", Secret: true, Description: "Htpasswd string: base64 of login:password (when htpasswd auth is enabled on the registry)", Default: "login/password must not be defined"},
		)...),
		Rules: []Rule{
			{If: "login", Needs: []string{"password"}},
			{If: "password", Needs: []string{"login"}},
			{If: "auth", Excludes: []string{"login", "password"}},
		},
		Example:        Values{"url": "https://shpcr.io", "login": "seller@example.com", "password": "<access token>"},
		CredentialHint: "Use what docker login accepts for this registry: often a username or e-mail with an access token as the password",
	}
}

func (Custom) Serves(v Values, host string) bool { return servesURL(v, host) }

func (Custom) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) { return loginOrAuth(v) }
