package registries

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// AliCR is Alibaba Cloud Container Registry, in its two editions: the
// personal edition on registry[-intl][-vpc].<region>.aliyuncs.com and the
// enterprise edition on <instance>-registry[-vpc].<region>.cr.aliyuncs.com.
// An instance serves one edition (an enterprise one names its instance), so
// that a personal and an enterprise instance never claim each other's hosts.
type AliCR struct{}

var (
	alicrPersonal   = regexp.MustCompile(`^registry(-intl)?(-vpc)?\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com$`)
	alicrEnterprise = regexp.MustCompile(`^(?P<instance>[a-z0-9-]+?)-registry(-vpc)?\.(?P<region>[a-z0-9-]+)\.cr\.aliyuncs\.com$`)
)

func (AliCR) Spec() Spec {
	return Spec{
		Kind:  "alicr",
		Title: "Alibaba Cloud Container Registry",
		Description: "Personal edition: registry.<region>.aliyuncs.com (and -intl, -vpc); enterprise edition: <instance>-registry.<region>.cr.aliyuncs.com (and -vpc). " +
			"The login is the Alibaba Cloud account name (a RAM user: <user>@<account-id>), the password the registry password set in the Container Registry console.",
		Variables: withShared(
			Variable{Name: "instance", Endpoint: true, Description: "Enterprise edition instance name: the part of its host before -registry", Default: "the personal edition's hosts"},
			Variable{Name: "region", Endpoint: true, Description: "Region, e.g. cn-hangzhou or ap-southeast-1: only that region's hosts are served", Default: "every region"},
			Variable{Name: "login", Required: true, Description: "Alibaba Cloud account name, or a RAM user as <user>@<account-id>"},
			Variable{Name: "password", Required: true, Secret: true, Description: "Registry password (Container Registry → Access Credentials), not the console sign-in password"},
		),
		Narrowing:      []string{"instance", "region"},
		Example:        Values{"region": "cn-hangzhou", "login": "acme@1234567890123456", "password": "<registry password>"},
		CredentialHint: "Alibaba Cloud expects your account name (a RAM user as <user>@<account-id>) and the registry password set under Container Registry → Access Credentials, not the password you sign in with",
	}
}

func (AliCR) Serves(v Values, host string) bool {
	if !v.Has("instance") {
		return regional(alicrPersonal, host, v["region"])
	}
	m := alicrEnterprise.FindStringSubmatch(strings.ToLower(host))
	return m != nil && strings.EqualFold(m[alicrEnterprise.SubexpIndex("instance")], v["instance"]) && regional(alicrEnterprise, host, v["region"])
}

func (AliCR) Hosts(v Values) (show, test string) {
	region, test := "*", ""
	if v.Has("region") {
		region = v["region"]
	}
	if v.Has("instance") {
		show = v["instance"] + "-registry." + region + ".cr.aliyuncs.com"
	} else {
		show = "registry." + region + ".aliyuncs.com"
	}
	if v.Has("region") {
		test = show
	}
	return show, test
}

func (AliCR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
