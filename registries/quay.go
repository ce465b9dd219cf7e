package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Quay is quay.io. Private images are read with a robot account, whose
// name is namespace+account.
type Quay struct{}

func (Quay) Spec() Spec {
	return Spec{
		Kind:        "quay",
		Title:       "Quay",
		Description: "quay.io. Anonymous by default; a robot account (namespace+account and its token) for private images.",
		// The host is fixed (quay.io), and namespace/account only name the
		// robot: only the proxy is an Endpoint.
		Variables: withShared(
			Variable{Name: "namespace", Description: "Quay namespace (the robot account name before the +)"},
			Variable{Name: "account", Description: "Quay account (the robot account name after the +)"},
			Variable{Name: "token", Secret: true, Description: "Quay token"},
		),
		Rules: []Rule{
			{If: "namespace", Needs: []string{"account", "token"}},
			{If: "account", Needs: []string{"namespace", "token"}},
			{If: "token", Needs: []string{"namespace", "account"}},
		},
		Default:        true,
		Host:           "quay.io",
		Example:        Values{"namespace": "myorg", "account": "tagwatch", "token": "<robot token>"},
		CredentialHint: "Quay expects a robot account: namespace and account are its name's parts before and after the +, token its token",
	}
}

func (Quay) Serves(_ Values, host string) bool { return hostIs(host, "quay.io") }

func (Quay) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	if !v.Has("token") {
		return anonymous, nil
	}
	return basic(v["namespace"]+"+"+v["account"], v["token"]), nil
}
