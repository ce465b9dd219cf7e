package registries

import (
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// OCIR is Oracle Cloud Infrastructure Registry. Its login joins the
// tenancy's namespace and the user name (<namespace>/<user>), with an auth
// token as the password; admins give the parts and tagwatch joins them, so
// the slash cannot be forgotten. A region, by key or identifier, narrows
// the instance to that region's two host names.
type OCIR struct{}

// ocirRegions maps OCI region keys to region identifiers: a region has a
// host under each (fra.ocir.io, ocir.eu-frankfurt-1.oci.oraclecloud.com).
var ocirRegions = map[string]string{
	"iad": "us-ashburn-1", "phx": "us-phoenix-1", "sjc": "us-sanjose-1", "ord": "us-chicago-1",
	"yyz": "ca-toronto-1", "yul": "ca-montreal-1", "qro": "mx-queretaro-1", "mty": "mx-monterrey-1",
	"gru": "sa-saopaulo-1", "vcp": "sa-vinhedo-1", "scl": "sa-santiago-1", "bog": "sa-bogota-1", "vap": "sa-valparaiso-1",
	"lhr": "uk-london-1", "cwl": "uk-cardiff-1", "fra": "eu-frankfurt-1", "ams": "eu-amsterdam-1", "zrh": "eu-zurich-1",
	"cdg": "eu-paris-1", "mrs": "eu-marseille-1", "lin": "eu-milan-1", "arn": "eu-stockholm-1", "mad": "eu-madrid-1",
	"jnb": "af-johannesburg-1", "dxb": "me-dubai-1", "jed": "me-jeddah-1", "auh": "me-abudhabi-1", "ruh": "me-riyadh-1",
	"mtz": "il-jerusalem-1", "bom": "ap-mumbai-1", "hyd": "ap-hyderabad-1", "sin": "ap-singapore-1", "xsp": "ap-singapore-2",
	"icn": "ap-seoul-1", "yny": "ap-chuncheon-1", "nrt": "ap-tokyo-1", "kix": "ap-osaka-1", "syd": "ap-sydney-1", "mel": "ap-melbourne-1",
}

var (
	ocirShortHost = regexp.MustCompile(`^(?P<region>[a-z0-9-]+)\.ocir\.io$`)
	ocirLongHost  = regexp.MustCompile(`^ocir\.(?P<region>[a-z0-9-]+)\.oci\.oraclecloud\.com$`)
)

func (OCIR) Spec() Spec {
	return Spec{
		Kind:  "ocir",
		Title: "Oracle Cloud Infrastructure Registry",
		Description: "<region>.ocir.io and ocir.<region>.oci.oraclecloud.com. The login is <tenancy-namespace>/<username> " +
			"(federated users: <tenancy-namespace>/oracleidentitycloudservice/<username>) and the password an auth token; give the parts and tagwatch joins them.",
		Variables: withShared(
			Variable{Name: "region", Endpoint: true, Description: "Region key or identifier (fra or eu-frankfurt-1): only that region's hosts are served", Supported: ocirRegionList(), Default: "every region"},
			Variable{Name: "namespace", Required: true, Description: "Tenancy namespace (the Object Storage namespace on the tenancy's page)"},
			Variable{Name: "username", Required: true, Description: "OCI username, e.g. jane@example.com (federated: oracleidentitycloudservice/jane@example.com)"},
			Variable{Name: "token", Required: true, Secret: true, Description: "Auth token (My profile → Auth tokens), not the console password"},
		),
		Narrowing:      []string{"region"},
		Example:        Values{"region": "fra", "namespace": "axaxnpcrorw5", "username": "jane@example.com", "token": "<auth token>"},
		CredentialHint: "OCIR expects the login <tenancy-namespace>/<username> (tagwatch joins namespace and username) and an auth token, not the console password, as the password",
	}
}

// ocirRegionList is the help's list of regions: "fra (eu-frankfurt-1), …".
func ocirRegionList() string {
	keys := make([]string, 0, len(ocirRegions))
	for k := range ocirRegions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + " (" + ocirRegions[k] + ")"
	}
	return strings.Join(keys, ", ")
}

// ocirSpellings returns both names of a region (fra → fra, eu-frankfurt-1).
func ocirSpellings(region string) []string {
	region = strings.ToLower(region)
	if id, ok := ocirRegions[region]; ok {
		return []string{region, id}
	}
	for k, id := range ocirRegions {
		if id == region {
			return []string{k, id}
		}
	}
	return []string{region}
}

func (OCIR) Serves(v Values, host string) bool {
	var spellings []string
	if v.Has("region") {
		spellings = ocirSpellings(v["region"])
	}
	return regional(ocirShortHost, host, spellings...) || regional(ocirLongHost, host, spellings...)
}

func (OCIR) Hosts(v Values) (show, test string) {
	if !v.Has("region") {
		return "*.ocir.io", ""
	}
	h := ocirSpellings(v["region"])[0] + ".ocir.io"
	return h, h
}

func (OCIR) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	ns, user := v["namespace"], v["username"]
	// An admin who pasted the whole login into username keeps it whole.
	if !strings.HasPrefix(strings.ToLower(user), strings.ToLower(ns)+"/") {
		user = ns + "/" + user
	}
	return basic(user, v["token"]), nil
}
