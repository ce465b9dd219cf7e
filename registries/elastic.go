package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Elastic is docker.elastic.co, Elastic's registry (Elasticsearch, Kibana,
// Logstash, Beats, the Elastic Agent). Its images are public; a login
// serves what Elastic restricts to customers.
type Elastic struct{}

const elasticHost = "docker.elastic.co"

func (Elastic) Spec() Spec {
	return Spec{
		Kind:           "elastic",
		Title:          "Elastic",
		Description:    "docker.elastic.co: Elasticsearch, Kibana, Logstash, Beats and Elastic Agent images. Anonymous by default; a login for images Elastic restricts.",
		Variables:      withShared(loginPair("Login Elastic gave you", "Its password or token")...),
		Rules:          together("login", "password"),
		Default:        true,
		Host:           elasticHost,
		Example:        Values{"login": "acme", "password": "<password>"},
		CredentialHint: "Elastic's public images need no credentials; restricted ones expect the login and password Elastic gave you",
	}
}

func (Elastic) Serves(_ Values, host string) bool { return hostIs(host, elasticHost) }

func (Elastic) Keychain(v Values, _ http.RoundTripper) (authn.Keychain, error) {
	return basic(v["login"], v["password"]), nil
}
