package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Hub is Docker Hub, public and private repositories. Its pull allowance is
// read from the ratelimit-* headers into the instance's Stats.
type Hub struct{}

func (Hub) Spec() Spec {
	return Spec{
		Kind:  "hub",
		Title: "Docker Hub",
		// Docker Hub counts and throttles requests per address; 16 in flight is what a bare client does.
		Concurrency: 16,
		Description: "Docker Hub including private repositories: login + access token (or password), or the base64 auth string of .docker/config.json. Anonymous by default.",
		// Docker Hub's hosts are fixed (see Serves): only the proxy is an
		// Endpoint.
		Variables: withShared(
			Variable{Name: "login", Description: "A valid Docker Hub Login", Default: "token must be defined"},
			Variable{Name: "password", Secret: true, Description: "A valid Docker Hub Token", Default: "login must be defined"},
			Variable{Name: "token", Secret: true, AliasOf: "password", Description: "A valid Docker Hub Token (deprecated; replaced by password)", Default: "login must be defined"},
			Variable{Name: "auth", Secret: true, Description: "A valid Docker Hub Base64 Auth String", Default: "login/token must not be defined"},
		),
		Rules: []Rule{
			{If: "login", Needs: []string{"password"}},
			{If: "password", Needs: []string{"login"}},
			{If: "auth", Excludes: []string{"login", "password"}},
		},
		Default:        true,
		Host:           DockerHub,
		Example:        Values{"login": "johndoe", "password": "<access token>"},
		CredentialHint: "Docker Hub expects your username (not your e-mail) and a personal access token",
	}
}

func (Hub) Serves(_ Values, host string) bool {
	return hostIs(host, DockerHub, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
}

func (Hub) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) { return loginOrAuth(v) }
