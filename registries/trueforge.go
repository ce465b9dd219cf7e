package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// TrueForge is oci.trueforge.org, the registry of TrueForge (formerly
// TrueCharts) apps' images. It is public: an instance only chooses a proxy.
type TrueForge struct{}

const trueforgeHost = "oci.trueforge.org"

func (TrueForge) Spec() Spec {
	return publicSpec("trueforge", "TrueForge", trueforgeHost,
		"oci.trueforge.org, the TrueForge (formerly TrueCharts) apps' images. Anonymous.")
}

func (TrueForge) Serves(_ Values, host string) bool { return hostIs(host, trueforgeHost) }

func (TrueForge) Keychain(Values, http.RoundTripper) (authn.Keychain, error) { return anonymous, nil }
