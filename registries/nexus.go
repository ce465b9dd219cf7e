package registries

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Nexus is Sonatype Nexus Repository 3. Each Docker repository is served on
// a port of its own (an HTTP connector) or under /repository/<name>: one
// instance, one set of credentials, serves the url's port and the other
// connector ports listed, and a url with a path (URLPath).
type Nexus struct{}

func (Nexus) Spec() Spec {
	return Spec{
		Kind:  "nexus",
		Title: "Sonatype Nexus Repository",
		// A registry of the admin's own: self-hosted, often on the LAN.
		Concurrency: LANConcurrency,
		Description: "Nexus Repository's Docker repositories, each on a connector port of its own (https://nexus.example.com:8082) or under /repository/<name>. " +
			"One instance serves the url's port and the other ports listed; when the Docker API is reached under a path, give it in the url: https://nexus.example.com/repository/docker-hosted.",
		Variables: withShared(append(append(urlVariables("Nexus Docker connector URL (e.g. https://nexus.example.com:8082), or a repository's URL with its path"),
			Variable{Name: "ports", Endpoint: true, Description: "Other connector ports of the same host, one Docker repository each: 8083, 8084", Default: "the url's port only"}),
			loginPair("Nexus username", "Password, or a user token's pass code")...)...),
		Rules:          together("login", "password"),
		URLPath:        true,
		Example:        Values{"url": "https://nexus.example.com:8082", "ports": "8083", "login": "tagwatch", "password": "<password>"},
		CredentialHint: "Nexus expects a Nexus user and its password (or a user token); anonymous pulls need the Docker Bearer Token Realm active and anonymous access allowed",
	}
}

// nexusPorts parses the ports variable: numbers separated by commas or spaces.
func nexusPorts(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q is not a port number (1-65535); list ports as 8083, 8084", f)
		}
		out = append(out, strconv.Itoa(n))
	}
	return out, nil
}

func (Nexus) Serves(v Values, host string) bool {
	if servesURL(v, host) {
		return true
	}
	u, err := parseURL(v["url"])
	h, port, splitErr := net.SplitHostPort(host)
	if err != nil || u == nil || splitErr != nil || !strings.EqualFold(h, u.Hostname()) {
		return false
	}
	ports, _ := nexusPorts(v["ports"])
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

func (Nexus) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	if _, err := nexusPorts(v["ports"]); err != nil {
		return nil, &FieldError{Variable: "ports", Message: err.Error()}
	}
	return basic(v["login"], v["password"]), nil
}
