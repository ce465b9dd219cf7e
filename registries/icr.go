package registries

import (
	"net/http"
	"regexp"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ICR is IBM Cloud Container Registry. It takes an IBM Cloud API key as the
// password of the fixed login iamapikey; the admin gives the key alone.
type ICR struct{}

// icrHost matches icr.io, the regional hosts (us.icr.io, jp2.icr.io…) and
// their private endpoints (private.de.icr.io).
var icrHost = regexp.MustCompile(`^(private\.)?((?P<region>[a-z0-9]+)\.)?icr\.io$`)

const icrLogin = "iamapikey"

func (ICR) Spec() Spec {
	return Spec{
		Kind:        "icr",
		Title:       "IBM Cloud Container Registry",
		Description: "icr.io and the regional <region>.icr.io (us, uk, de, au, jp, jp2, br, ca, fr2, es; private.<region>.icr.io too). An IBM Cloud API key, sent as the password of the login iamapikey.",
		Variables: withShared(
			Variable{Name: "apikey", Required: true, Secret: true, Description: "IBM Cloud API key (a service ID's key with Reader access to the namespace is enough)"},
		),
		Host:           "icr.io",
		Example:        Values{"apikey": "<IBM Cloud API key>"},
		CredentialHint: "ICR expects the login iamapikey (tagwatch sends it) and an IBM Cloud API key as the password",
	}
}

func (ICR) Serves(_ Values, host string) bool { return regional(icrHost, host) }

func (ICR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(icrLogin, v["apikey"]), nil
}
