package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Gitea is a self-hosted Gitea's package registry.
type Gitea struct{}

func (Gitea) Spec() Spec { return forgeSpec("gitea", "Gitea") }

func (Gitea) Serves(v Values, host string) bool { return servesURL(v, host) }

func (Gitea) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) { return loginOrAuth(v) }

// forgeSpec declares Gitea and Forgejo, whose registries are the same code
// under two names: a url, and a login with its password (or token), or auth.
func forgeSpec(kind, title string) Spec {
	return Spec{
		Kind:  kind,
		Title: title,
		// A registry of the admin's own: self-hosted, often on the LAN.
		Concurrency: LANConcurrency,
		Description: "A self-hosted " + title + " instance's container registry: a login and a password or access token (read:package).",
		Variables: withShared(append(urlVariables("Registry URL (e.g. https://"+kind+".example.com)"),
			Variable{Name: "login", Required: true, Description: title + " username", Default: "password must be defined"},
			Variable{Name: "password", Required: true, Secret: true, Description: title + " password or access token", Default: "login must be defined"},
			Variable{Name: "auth", Secret: true, Description: "Htpasswd string: base64 of login:password (replaces login and password)", Default: "login/password must not be defined"},
		)...),
		Rules: []Rule{
			{If: "login", Needs: []string{"password"}},
			{If: "password", Needs: []string{"login"}},
			{If: "auth", Excludes: []string{"login", "password"}},
		},
		Example:        Values{"url": "https://" + kind + ".example.com", "login": "admin", "password": "<access token>"},
		CredentialHint: title + " expects your username and an access token with the read:package scope (or your password)",
	}
}
