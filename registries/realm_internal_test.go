package registries

import (
	"net/http"
	"net/url"
	"testing"
)

func TestRealmAliases(t *testing.T) {
	tests := []struct {
		registry, realm string
		aliased         bool
	}{
		{"127.0.0.1:5000", "http://127.0.0.1:5001/token", true},
		{"192.168.1.10:5050", "https://192.168.1.10/jwt/auth", true},
		{"localhost:5000", "http://10.0.0.2:8080/token", true},
		{"[fd00::5]", "http://[fd00::6]:8080/token", true},             // an IPv6 registry on the default port
		{"127.0.0.1:5000", "http://127.0.0.1:5000/token", false},       // its own host: go-containerregistry allows it
		{"127.0.0.1:5000", "https://auth.example.com/token", false},    // a name: allowed as is
		{"registry.example.com", "http://127.0.0.1:5001/token", false}, // a public registry may not reach in
		{"203.0.113.7:443", "http://192.168.1.1/token", false},
		// Link-local and cloud metadata addresses stay refused, private
		// registry or not: AWS's answers there hold the instance role's token.
		{"127.0.0.1:5000", "http://169.254.169.254/latest/meta-data/iam/security-credentials/role", false},
		{"192.168.1.10:5000", "http://[fd00:ec2::254]/latest/api/token", false},
		{"192.168.1.10:5000", "http://[fe80::1]:8080/token", false},
		{"192.168.1.10:5000", "http://100.100.100.200/latest/meta-data", false},
	}
	for _, tt := range tests {
		var a realmAliases
		h := http.Header{}
		h.Set("Www-Authenticate", `Bearer realm="`+tt.realm+`",service="registry",scope="repository:a/b:pull"`)
		a.rewrite(tt.registry, h)
		got := h.Get("Www-Authenticate")
		changed := got != `Bearer realm="`+tt.realm+`",service="registry",scope="repository:a/b:pull"`
		if changed != tt.aliased {
			t.Errorf("registry %s, realm %s: rewritten to %s; want aliased=%v", tt.registry, tt.realm, got, tt.aliased)
			continue
		}
		if !changed {
			continue
		}
		aliased, err := url.Parse(bearerRealm.FindStringSubmatch(got)[2])
		if err != nil {
			t.Fatal(err)
		}
		orig, _ := url.Parse(tt.realm)
		if real, ok := a.real(aliased.Host); !ok || real != orig.Host || aliased.Path != orig.Path || aliased.Scheme != orig.Scheme {
			t.Errorf("realm %s became %s, whose host maps back to %q, %v", tt.realm, aliased, real, ok)
		}
	}
}

func TestCatalogFromEnv(t *testing.T) {
	env := map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/"}
	c := CatalogFromEnv(func(k string) string { return env[k] })
	if got := c["ecr"].(ECR).Endpoint; got != "http://127.0.0.1:4566" {
		t.Errorf("ecr endpoint %q", got)
	}
	env["AWS_ENDPOINT_URL_ECR"] = "http://127.0.0.1:9999"
	c = CatalogFromEnv(func(k string) string { return env[k] })
	if got := c["ecr"].(ECR).Endpoint; got != "http://127.0.0.1:9999" {
		t.Errorf("the service-specific variable wins: ecr endpoint %q", got)
	}
	if got := c["acr"].(ACR).AuthorityHost; got != "https://127.0.0.1:8443/" {
		t.Errorf("acr authority %q", got)
	}
	if len(c) != len(DefaultCatalog()) {
		t.Errorf("%d kinds, want %d", len(c), len(DefaultCatalog()))
	}
}
