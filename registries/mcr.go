package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// MCR is mcr.microsoft.com, where Microsoft publishes its images (.NET, SQL
// Server, the Azure CLI, PowerShell…). It is public: an instance only
// chooses a proxy.
type MCR struct{}

const mcrHost = "mcr.microsoft.com"

func (MCR) Spec() Spec {
	return publicSpec("mcr", "Microsoft Artifact Registry", mcrHost,
		"mcr.microsoft.com (Microsoft Container Registry): .NET, SQL Server, Azure CLI, PowerShell images. Anonymous.")
}

func (MCR) Serves(_ Values, host string) bool { return hostIs(host, mcrHost) }

func (MCR) Keychain(Values, http.RoundTripper) (authn.Keychain, error) { return anonymous, nil }
