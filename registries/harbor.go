package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Harbor is a Harbor registry (goharbor.io). On the wire it is a
// distribution registry behind Harbor's token service (/service/token); what
// sets it apart is who logs in: a user, or a robot account whose name holds
// a $ (robot$project+name) that must reach the token service intact.
type Harbor struct{}

func (Harbor) Spec() Spec {
	return Spec{
		Kind:  "harbor",
		Title: "Harbor",
		// A registry of the admin's own: self-hosted, often on the LAN.
		Concurrency: LANConcurrency,
		Description: "A Harbor registry; images are <host>/<project>/<repository>. A user and its password (or CLI secret with OIDC), or a robot account: " +
			"its full name robot$<project>+<name> as Harbor shows it, $ included, and its secret. Public projects need no credentials. " +
			"In a compose file write $$ for the $ (compose reads $ as a variable), or pass the login in a _FILE.",
		Variables: withShared(append(urlVariables("Harbor URL (e.g. https://harbor.example.com)"), loginPair(
			"Harbor username, or a robot account's full name: robot$<project>+<name> (a system robot: robot$<name>)",
			"Password, CLI secret (OIDC users) or the robot account's secret")...)...),
		Rules:          together("login", "password"),
		Example:        Values{"url": "https://harbor.example.com", "login": "robot$library+tagwatch", "password": "<robot secret>"},
		CredentialHint: "Harbor expects a user and its password (the CLI secret with OIDC), or a robot account: the login robot$<project>+<name> exactly as Harbor shows it, $ included, and the robot's secret",
	}
}

func (Harbor) Serves(v Values, host string) bool { return servesURL(v, host) }

func (Harbor) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
