package registries

import (
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

// K8s is registry.k8s.io, the Kubernetes project's registry (it replaced
// k8s.gcr.io, which gcr.public still serves). It is public: an instance
// only chooses a proxy.
type K8s struct{}

const k8sHost = "registry.k8s.io"

func (K8s) Spec() Spec {
	return publicSpec("k8s", "Kubernetes registry", k8sHost,
		"registry.k8s.io, the Kubernetes project's images (ingress-nginx, metrics-server, kube-state-metrics…); it replaced k8s.gcr.io. Anonymous.")
}

func (K8s) Serves(_ Values, host string) bool { return hostIs(host, k8sHost) }

func (K8s) Keychain(Values, http.RoundTripper) (authn.Keychain, error) { return anonymous, nil }
