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

// Catalog is the set of known kinds, by kind name.
type Catalog map[string]Provider

// DefaultCatalog lists every kind tagwatch ships. Adding a registry kind is
// one file and one line here.
func DefaultCatalog() Catalog {
	return NewCatalog(
		ACR{},
		Custom{},
		ECR{},
		Forgejo{},
		GCR{},
		GHCR{},
		Gitea{},
		GitLab{},
		Hub{},
		LSCR{},
		Quay{},
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

// Provider returns the provider of a kind, or an error naming the known kinds.
func (c Catalog) Provider(kind string) (Provider, error) {
	p, ok := c[kind]
	if !ok {
		return nil, fmt.Errorf("unknown registry kind %q (known: %v)", kind, c.Kinds())
	}
	return p, nil
}
