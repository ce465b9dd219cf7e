package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// DHI is dhi.io, Docker Hardened Images: minimal, patched images Docker
// serves to the members of organizations that have them, with Docker Hub
// accounts. Its token server is Docker Hub's kind (service
// registry.docker.io), reached through the registry's challenge.
type DHI struct{}

const dhiHost = "dhi.io"

func (DHI) Spec() Spec {
	return Spec{
		Kind:        "dhi",
		Title:       "Docker Hardened Images",
		Description: "dhi.io, Docker Hardened Images. A Docker Hub username and a personal access token of an account in an organization with access to Docker Hardened Images.",
		Variables: withShared(
			Variable{Name: "login", Required: true, Description: "Docker Hub username"},
			Variable{Name: "password", Required: true, Secret: true, Description: "Docker Hub personal access token (read-only is enough) or password"},
		),
		Host:           dhiHost,
		Example:        Values{"login": "johndoe", "password": "<personal access token>"},
		CredentialHint: "Docker Hardened Images expects your Docker Hub username and a personal access token of an account in an organization that has Docker Hardened Images",
	}
}

func (DHI) Serves(_ Values, host string) bool { return hostIs(host, dhiHost) }

func (DHI) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
