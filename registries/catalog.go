package registries

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
)

// A Provider is one kind of registry (Docker Hub, GHCR, a self-hosted one…).
// Each lives in a file of its own and is listed once in DefaultCatalog.
type Provider interface {
	// Spec declares the kind's variables as the settings page lists them.
	Spec() Spec
	// Serves reports whether an instance with these (validated) values
	// serves images on host, e.g. "ghcr.io" or "127.0.0.1:5000".
	Serves(v Values, host string) bool
	// Keychain turns validated values into credentials. rt reaches the
	// instance's registries (its CA, its proxy), for kinds that must call
	// the registry itself to obtain them (ACR's token exchange).
	Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error)
}

// A Hoster is a kind whose hosts follow from its variables (ECR's region):
// it names the host its tile shows and the host a connection test without
// an image reaches, "" when the admin must name an image.
type Hoster interface {
	Hosts(v Values) (show, test string)
}

// hostsOf answers for any kind: the url's host, a Hoster's answer, or the
// kind's one fixed host.
func hostsOf(p Provider, v Values) (show, test string) {
	if u, err := parseURL(v["url"]); err == nil && u != nil {
		return u.Host, u.Host
	}
	if h, ok := p.(Hoster); ok {
		return h.Hosts(v)
	}
	h := p.Spec().Host
	return h, h
}

// Catalog is the set of known kinds, by kind name.
type Catalog map[string]Provider

// DefaultCatalog lists every kind tagwatch ships. Adding a registry kind is
// one file and one line here.
func DefaultCatalog() Catalog {
	return NewCatalog(
		ACR{},
		AliCR{},
		Codeberg{},
		Custom{},
		DHI{},
		DOCR{},
		ECR{},
		Elastic{},
		Forgejo{},
		GCR{},
		GHCR{},
		Gitea{},
		GitLab{},
		Harbor{},
		Hub{},
		ICR{},
		JFrog{},
		K8s{},
		Linode{},
		LSCR{},
		MCR{},
		Nexus{},
		OCIR{},
		ProGet{},
		Quay{},
		Scaleway{},
		TrueForge{},
	)
}

// CatalogFromEnv is DefaultCatalog with the cloud SDKs' own endpoint
// overrides honoured, as their tools honour them: AWS_ENDPOINT_URL_ECR (or
// AWS_ENDPOINT_URL) for the ECR API, AZURE_AUTHORITY_HOST for Azure AD. An
// air-gapped or sovereign cloud, or a local stand-in, needs nothing else.
func CatalogFromEnv(getenv func(string) string) Catalog {
	c := DefaultCatalog()
	endpoint := getenv("AWS_ENDPOINT_URL_ECR")
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL")
	}
	c["ecr"] = ECR{Endpoint: endpoint}
	c["acr"] = ACR{AuthorityHost: getenv("AZURE_AUTHORITY_HOST")}
	return c
}

// NewCatalog indexes providers by their kind; tests use it to swap in a
// provider pointed at a local credential service.
func NewCatalog(ps ...Provider) Catalog {
	c := Catalog{}
	for _, p := range ps {
		c[p.Spec().Kind] = p
	}
	return c
}

// Kinds returns the kind names in alphabetical order.
func (c Catalog) Kinds() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Hosts returns the host an instance of kind with values v shows on its
// tile, and the one a connection test without an image reaches ("" when
// the admin must name an image): for instances saved but not running.
func (c Catalog) Hosts(kind string, v Values) (show, test string) {
	p, ok := c[kind]
	if !ok {
		return "", ""
	}
	return hostsOf(p, v)
}

// Provider returns the provider of a kind, or an error naming the known kinds.
func (c Catalog) Provider(kind string) (Provider, error) {
	p, ok := c[kind]
	if !ok {
		return nil, fmt.Errorf("unknown registry kind %q (known: %v)", kind, c.Kinds())
	}
	return p, nil
}
