package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Linode is a registry run on Linode (Akamai Cloud). Linode sells no
// registry of its own: its Marketplace installs Harbor or a distribution
// registry, and LKE clusters run one. The kind is a url with a login and a
// token, under the name homelab admins look for.
type Linode struct{}

func (Linode) Spec() Spec {
	return Spec{
		Kind:           "linode",
		Title:          "Linode (Akamai)",
		Description:    "A registry you run on Linode (Akamai Cloud), e.g. the Marketplace's Harbor or Docker registry app or one on LKE (Linode has no managed registry): its url, a login and a token or password.",
		Variables:      withShared(append(urlVariables("Registry URL (e.g. https://registry.example.com)"), loginPair("Registry username", "Token or password")...)...),
		Rules:          together("login", "password"),
		Example:        Values{"url": "https://registry.example.com", "login": "tagwatch", "password": "<token>"},
		CredentialHint: "A registry on Linode expects the login and the token or password its own set-up gave you (Harbor: a user or robot account; the registry app: its htpasswd user)",
	}
}

func (Linode) Serves(v Values, host string) bool { return servesURL(v, host) }

func (Linode) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
