package kubernetes_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/watcher/kubernetes"
)

const contrib = "../../contrib/kubernetes"

// manifests decodes the Kubernetes objects of a YAML file under contrib/kubernetes.
func manifests(t *testing.T, file string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contrib, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, obj)
	}
	return out
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(s, "")
}

func shippedClusterRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	for _, o := range manifests(t, "rbac.yaml") {
		if r, ok := o.(*rbacv1.ClusterRole); ok {
			return r
		}
	}
	t.Fatal("rbac.yaml has no ClusterRole")
	return nil
}

// create makes an object for real, as kubectl apply would on an empty cluster.
func create(ctx context.Context, cs clientset.Interface, o runtime.Object) error {
	opts := metav1.CreateOptions{FieldValidation: "Strict"} // an unknown field is an error, not dropped
	var err error
	switch o := o.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Create(ctx, o, opts)
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *corev1.Service:
		_, err = cs.CoreV1().Services(o.Namespace).Create(ctx, o, opts)
	case *corev1.PersistentVolumeClaim:
		_, err = cs.CoreV1().PersistentVolumeClaims(o.Namespace).Create(ctx, o, opts)
	case *appsv1.Deployment:
		_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	default:
		return &unexpected{o}
	}
	return err
}

type unexpected struct{ o runtime.Object }

func (u *unexpected) Error() string {
	return "the test does not create a " + u.o.GetObjectKind().GroupVersionKind().Kind
}

// TestContribManifests creates contrib/kubernetes' objects in a real
// apiserver (as `kubectl apply -k contrib/kubernetes` would), then acts as
// the ServiceAccount they set up, with a token the apiserver issues for it:
// the shipped ClusterRole is enough to list every namespace and nothing
// more is granted; the Deployment's environment is a configuration tagwatch
// accepts; the namespaced Role is enough for a watcher of that namespace.
func TestContribManifests(t *testing.T) {
	f := newFixture(t)
	cs := f.cluster.Client(t)
	ctx := f.ctx

	var kust struct{ resources []string }
	b, err := os.ReadFile(filepath.Join(contrib, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+- (\S+\.yaml)$`).FindAllStringSubmatch(string(b), -1) {
		kust.resources = append(kust.resources, m[1])
	}
	if !slices.Equal(kust.resources, []string{"namespace.yaml", "rbac.yaml", "tagwatch.yaml"}) {
		t.Errorf("kustomization.yaml lists %v", kust.resources)
	}
	var deploy *appsv1.Deployment
	for _, file := range kust.resources {
		for _, o := range manifests(t, file) {
			if err := create(ctx, cs, o); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if d, ok := o.(*appsv1.Deployment); ok {
				deploy = d
			}
		}
	}

	// The Deployment runs tagwatch with a configuration it accepts.
	if deploy == nil || deploy.Spec.Template.Spec.ServiceAccountName != "tagwatch" {
		t.Fatalf("tagwatch.yaml's Deployment: %+v", deploy)
	}
	var env []string
	for _, e := range deploy.Spec.Template.Spec.Containers[0].Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "admin" // from the Secret
		}
		if strings.HasSuffix(e.Name, "_FILE") {
			p := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(p, []byte("$2y$10$abcdefghijklmnopqrstuu5xJ0BNCKAyEDLVhIQrgzxTs.a4DLJ5W"), 0o600); err != nil {
				t.Fatal(err)
			}
			v = p
		}
		env = append(env, e.Name+"="+v)
	}
	cfg, err := config.Load("", env, registries.DefaultCatalog())
	if err != nil {
		t.Fatalf("the Deployment's environment: %v", err)
	}
	if w := cfg.Watchers["cluster"]; w.KindOf() != config.KindKubernetes || w.Kubeconfig != "" {
		t.Errorf("the Deployment's watcher: %+v (want kubernetes, in-cluster)", w)
	}
	if cfg.Web.Listen != "0.0.0.0:8080" || !cfg.Web.Auth.Enabled() {
		t.Errorf("the Deployment's web settings: %+v", cfg.Web)
	}

	// A pod to find, in the test's namespace.
	f.pod(t, "web", nil, nil, podSpec(corev1.Container{Name: "web", Image: f.ref("media/web:1.0.0")}), corev1.PodRunning, nil)

	// The ServiceAccount's own token, issued by the apiserver (TokenRequest).
	tok, err := cs.CoreV1().ServiceAccounts("tagwatch").CreateToken(ctx, "tagwatch", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitAllowed(t, cs, authorizationv1.SubjectAccessReviewSpec{User: "system:serviceaccount:tagwatch:tagwatch",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:tagwatch", "system:authenticated"}}, "")
	sa := &rest.Config{Host: f.cluster.URL, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: f.cluster.CAData}}
	src := &kubernetes.Source{Watcher: "cluster", Config: sa, WatchByDefault: true} // all namespaces
	found, err := src.List(ctx)
	var bad watcher.ContainerErrors // other tests' pods, in other namespaces, may have bad annotations
	if err != nil && !errors.As(err, &bad) {
		t.Fatalf("listing as the shipped ServiceAccount: %v", err)
	}
	if _, ok := byPlace(found)[f.ns+"/Pod/web/web"]; !ok {
		t.Errorf("the shipped role did not find %s/Pod/web/web in %d images", f.ns, len(found))
	}
	// Nothing more: no secrets, no nodes, no writes.
	saCS, err := clientset.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := saCS.CoreV1().Secrets(f.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as tagwatch: %v, want forbidden", err)
	}
	if _, err := saCS.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing nodes as tagwatch: %v, want forbidden", err)
	}
	if err := saCS.CoreV1().Pods(f.ns).Delete(ctx, "web", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("deleting a pod as tagwatch: %v, want forbidden", err)
	}

	// The namespaced variant, bound to a user with no other rights, is
	// enough for a watcher of that namespace.
	objs := manifests(t, "namespaced/rbac.yaml")
	for _, o := range objs {
		switch o := o.(type) {
		case *rbacv1.Role:
			o.Namespace = f.ns
		case *rbacv1.RoleBinding:
			o.Namespace = f.ns
			o.Subjects = []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "tagwatch-ns-reader"}}
		}
		if err := create(ctx, cs, o); err != nil {
			t.Fatalf("namespaced/rbac.yaml: %v", err)
		}
	}
	waitAllowed(t, cs, authorizationv1.SubjectAccessReviewSpec{User: "tagwatch-ns-reader"}, f.ns)
	src = &kubernetes.Source{Watcher: "cluster", Config: f.cluster.Config("tagwatch-ns-reader"), Namespaces: []string{f.ns}, WatchByDefault: true}
	found, err = src.List(ctx)
	if err != nil || len(found) != 1 || found[0].Location.Place != f.ns+"/Pod/web/web" {
		t.Errorf("listing %s with the namespaced Role: %v, %+v", f.ns, err, found)
	}
}

// waitAllowed waits until the apiserver's authorizer lets who list pods in
// ns ("": every namespace). RBAC objects reach the authorizer through its
// informers a moment after they are created; asking the authorizer itself
// (a SubjectAccessReview) waits for that without hiding a role that grants
// too little: one that never allows fails here, naming the reason.
func waitAllowed(t *testing.T, cs clientset.Interface, who authorizationv1.SubjectAccessReviewSpec, ns string) {
	t.Helper()
	who.ResourceAttributes = &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: who}, metav1.CreateOptions{})
		cancel()
		if err == nil && r.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("denied: " + r.Status.Reason + r.Status.EvaluationError)
			}
			t.Fatalf("%s may not list pods in %q after 30 s: %v", who.User, ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
