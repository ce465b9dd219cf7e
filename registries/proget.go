package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ProGet is an Inedo ProGet server's Docker feeds: images are
// <host>/<feed>/<image>. Besides a user's password it takes an API key,
// which ProGet wants as the password of the login api.
type ProGet struct{}

const progetAPILogin = "api"

func (ProGet) Spec() Spec {
	return Spec{
		Kind:  "proget",
		Title: "Inedo ProGet",
		// A registry of the admin's own: self-hosted, often on the LAN.
		Concurrency: LANConcurrency,
		Description: "An Inedo ProGet server's Docker feeds; images are <host>/<feed>/<image>. A user and its password, or an API key (sent as the password of the login api).",
		Variables: withShared(append(append(urlVariables("ProGet URL (e.g. https://proget.example.com)"), loginPair("ProGet username", "The user's password")...),
			Variable{Name: "apikey", Secret: true, Description: "API key with the View permission on the feeds (replaces login and password)", Default: "login/password must not be defined"})...),
		Rules:          append(together("login", "password"), Rule{If: "apikey", Excludes: []string{"login", "password"}}),
		Example:        Values{"url": "https://proget.example.com", "apikey": "<API key>"},
		CredentialHint: "ProGet expects a user and its password, or the login api with an API key as the password (tagwatch sends api when apikey is set)",
	}
}

func (ProGet) Serves(v Values, host string) bool { return servesURL(v, host) }

func (ProGet) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	if v.Has("apikey") {
		return basic(progetAPILogin, v["apikey"]), nil
	}
	return basic(v["login"], v["password"]), nil
}
