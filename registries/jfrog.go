package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// JFrog is JFrog Artifactory: JFrog Cloud (<name>.jfrog.io) or self-hosted.
// With its router, images are <host>/<repository-key>/<image> and the API is
// at /v2/; reached without it, each Docker repository's API lives under
// /artifactory/api/docker/<repository-key>, which the url may name (URLPath).
type JFrog struct{}

func (JFrog) Spec() Spec {
	return Spec{
		Kind:  "jfrog",
		Title: "JFrog Artifactory",
		Description: "JFrog Cloud (<name>.jfrog.io) or a self-hosted Artifactory; images are <host>/<repository-key>/<image>. " +
			"When the Docker API is reached under a path instead of /v2/, give it in the url: https://artifactory.example.com/artifactory/api/docker/<repository-key>.",
		Variables: withShared(append(urlVariables("Artifactory URL (e.g. https://acme.jfrog.io), with the Docker API's path when it has one"),
			loginPair("JFrog username or e-mail", "Password, or an identity (access) token")...)...),
		Rules:          together("login", "password"),
		URLPath:        true,
		Example:        Values{"url": "https://acme.jfrog.io", "login": "jane@example.com", "password": "<identity token>"},
		CredentialHint: "JFrog expects your username (or e-mail) as the login and your password or an identity token (Edit Profile → Generate an Identity Token) as the password",
	}
}

func (JFrog) Serves(v Values, host string) bool { return servesURL(v, host) }

func (JFrog) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
