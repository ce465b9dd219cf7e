package registries

import (
	"net/http"
	"regexp"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Scaleway is Scaleway Container Registry, rg.<region>.scw.cloud. It takes
// an API key's secret key as the password of the fixed login nologin.
type Scaleway struct{}

var scalewayHost = regexp.MustCompile(`^rg\.(?P<region>[a-z0-9-]+)\.scw\.cloud$`)

const scalewayLogin = "nologin"

func (Scaleway) Spec() Spec {
	return Spec{
		Kind:        "scaleway",
		Title:       "Scaleway Container Registry",
		Description: "rg.<region>.scw.cloud (fr-par, nl-ams, pl-waw). An IAM API key's secret key, sent as the password of the login nologin.",
		Variables: withShared(
			Variable{Name: "region", Endpoint: true, Description: "Region: only rg.<region>.scw.cloud is served", Supported: "fr-par, nl-ams, pl-waw", Default: "every region"},
			Variable{Name: "secretkey", Required: true, Secret: true, Description: "Secret key of an IAM API key allowed ContainerRegistryReadOnly (not its SCW… access key)"},
		),
		Narrowing:      []string{"region"},
		Example:        Values{"region": "fr-par", "secretkey": "<secret key>"},
		CredentialHint: "Scaleway expects the login nologin (tagwatch sends it) and an API key's secret key, not its access key, as the password",
	}
}

func (Scaleway) Serves(v Values, host string) bool { return regional(scalewayHost, host, v["region"]) }

func (Scaleway) Hosts(v Values) (show, test string) {
	if !v.Has("region") {
		return "rg.*.scw.cloud", ""
	}
	h := "rg." + v["region"] + ".scw.cloud"
	return h, h
}

func (Scaleway) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(scalewayLogin, v["secretkey"]), nil
}
