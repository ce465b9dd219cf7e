// Package kubernetes is tagwatch's Kubernetes source: the images a cluster's
// pods run, through client-go. It lives apart from package watcher so that
// client-go stays in its own room (as Prometheus' discovery/kubernetes):
// watcher never imports it; cmd/tagwatch builds it from the config.
package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Kind is the source kind in store.Location.
const Kind = "kubernetes"

const (
	// defaultTimeout bounds one List: a cluster whose apiserver stops
	// answering must not hold a cycle, and every other watcher's results.
	defaultTimeout = 2 * time.Minute
	// requestTimeout bounds each call to the apiserver.
	requestTimeout = 30 * time.Second
	// defaultPageSize is the pods asked for per call: a big cluster is
	// listed in pages rather than in one response held in memory at once.
	defaultPageSize = 500
)

// Source lists the images of a cluster's pods: every container and init
// container (not ephemeral ones: `kubectl debug` containers are not part
// of a workload), with the digest the node runs, options from the tagwatch.*
// annotations of the pod and of its owner, and where = namespace/OwnerKind/
// ownerName/container. Replicas of a workload are one location.
//
// It lists rather than watches: a cycle every few hours needs no watch
// cache, and a list holds no connection open between cycles.
type Source struct {
	// Watcher is the watcher's name in the config ("k3s").
	Watcher string
	// Kubeconfig is a kubeconfig file; empty: the in-cluster config (the
	// pod's ServiceAccount token and the KUBERNETES_SERVICE_* variables).
	Kubeconfig string
	// Context is the kubeconfig context to use; empty: its current-context.
	Context string
	// Namespaces to list; empty: all (which needs a ClusterRole).
	Namespaces []string
	// WatchByDefault watches pods without a tagwatch.enable annotation.
	WatchByDefault bool
	// Config, when set, is used instead of Kubeconfig and the in-cluster
	// config.
	Config *rest.Config
	// Timeout bounds one List (default 2 minutes).
	Timeout time.Duration
	// PageSize is the pods asked for per request (default 500).
	PageSize int64

	mu  sync.Mutex
	cli *clients
}

var _ watcher.Source = (*Source)(nil)

// Name is the watcher's name.
func (s *Source) Name() string { return s.Watcher }

// Kind names the source's kind before any listing has worked (watcher.Kinder).
func (s *Source) Kind() string { return Kind }

// clients are the two the source needs, rather than client-go's clientset:
// that one registers every API group's types and would add some 20 MB to
// the binary for three reads. Pods are read whole (core/v1 only); owners
// through the metadata client, which is all of them tagwatch uses.
type clients struct {
	host   string
	pods   rest.Interface
	params runtime.ParameterCodec
	meta   metadata.Interface
}

// errorf names the watcher and, once known, the apiserver.
func (s *Source) errorf(host, format string, args ...any) error {
	if host == "" {
		return fmt.Errorf("watcher %s: "+format, append([]any{s.Watcher}, args...)...)
	}
	return fmt.Errorf("watcher %s (%s): "+format, append([]any{s.Watcher, host}, args...)...)
}

// RESTConfig is the client configuration the source uses: Config, else the
// kubeconfig's context, else the in-cluster config.
func (s *Source) RESTConfig() (*rest.Config, error) {
	var cfg *rest.Config
	switch {
	case s.Config != nil:
		cfg = rest.CopyConfig(s.Config)
	case s.Kubeconfig != "":
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: s.Kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: s.Context})
		c, err := loader.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", s.Kubeconfig, err)
		}
		cfg = c
	default:
		if s.Context != "" {
			return nil, errors.New("context needs a kubeconfig: the in-cluster config has no contexts")
		}
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no kubeconfig set and not in a cluster: %w", err)
		}
		cfg = c
	}
	cfg.UserAgent = "tagwatch"
	cfg.Timeout = cmp.Or(cfg.Timeout, requestTimeout)
	// A List makes a few requests per namespace (pods, owner kinds, pages):
	// client-go's default of 5 a second would pace even those.
	cfg.QPS, cfg.Burst = 20, 50
	return cfg, nil
}

func (s *Source) clients() (*clients, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli != nil {
		return s.cli, nil
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion)
	core := rest.CopyConfig(cfg)
	core.APIPath, core.GroupVersion = "/api", &corev1.SchemeGroupVersion
	core.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	c := &clients{host: cfg.Host, params: runtime.NewParameterCodec(scheme)}
	if c.pods, err = rest.RESTClientForConfigAndClient(core, httpClient); err != nil {
		return nil, err
	}
	if c.meta, err = metadata.NewForConfigAndClient(cfg, httpClient); err != nil {
		return nil, err
	}
	s.cli = c
	return c, nil
}

// List returns the images of the watched pods. Like watcher.DockerSource,
// a workload that cannot be watched (a bad annotation, an image it cannot
// name) is left out and named in a watcher.ContainerErrors returned with the
// others; any other error means the cluster could not be listed, and
// nothing is returned.
func (s *Source) List(ctx context.Context) ([]watcher.Found, error) {
	c, err := s.clients()
	if err != nil {
		return nil, s.errorf("", "%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(s.Timeout, defaultTimeout))
	defer cancel()

	l := &listing{s: s, c: c, owners: map[string]*owner{}, indexes: map[string]map[string]metav1.Object{},
		seen: map[string]bool{}, bad: map[string]bool{}, cluster: len(s.Namespaces) == 0}
	namespaces := s.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		if err := l.namespace(ctx, ns); err != nil {
			return nil, s.errorf(c.host, "%w", err)
		}
	}
	sort.SliceStable(l.found, func(i, j int) bool {
		a, b := l.found[i], l.found[j]
		if a.Location.Place != b.Location.Place {
			return a.Location.Place < b.Location.Place
		}
		return a.Target.Image.String()+a.Target.Digest < b.Target.Image.String()+b.Target.Digest
	})
	if len(l.problems) > 0 {
		return l.found, l.problems
	}
	return l.found, nil
}

// listing is one List call: each owner is read once, however many pods it has.
type listing struct {
	s        *Source
	c        *clients
	owners   map[string]*owner // by kind/namespace/name
	indexes  map[string]map[string]metav1.Object
	cluster  bool            // listing all namespaces: owners too are listed cluster-wide
	seen     map[string]bool // place, image and digest already found
	bad      map[string]bool // places already reported
	found    []watcher.Found
	problems watcher.ContainerErrors
}

// namespace lists the pods of one namespace ("" for all) page by page.
func (l *listing) namespace(ctx context.Context, ns string) error {
	opts := metav1.ListOptions{Limit: cmp.Or(l.s.PageSize, defaultPageSize)}
	restarted := false
	for {
		pods := &corev1.PodList{}
		err := l.c.pods.Get().Namespace(ns).Resource("pods").VersionedParams(&opts, l.c.params).Do(ctx).Into(pods)
		if apierrors.IsResourceExpired(err) && !restarted {
			// The continue token outlived the apiserver's compaction window
			// (a very slow listing): start this namespace again, once.
			opts.Continue, restarted = "", true
			continue
		}
		if err != nil {
			where := "in all namespaces"
			if ns != "" {
				where = "in namespace " + ns
			}
			return fmt.Errorf("listing pods %s: %w", where, err)
		}
		for i := range pods.Items {
			if err := l.pod(ctx, &pods.Items[i]); err != nil {
				return err
			}
		}
		if pods.Continue == "" {
			return nil
		}
		opts.Continue = pods.Continue
	}
}

// pod adds the images of one pod. It returns an error only when the
// apiserver failed (the listing stops).
func (l *listing) pod(ctx context.Context, pod *corev1.Pod) error {
	if pod.DeletionTimestamp != nil {
		return nil // on its way out: its workload's other pods say what runs
	}
	o, err := l.owner(ctx, pod)
	if err != nil {
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// A finished pod still says what runs next time only when a CronJob
		// will start it again; a finished one-off Job, or an evicted pod
		// of a Deployment, is history.
		if o.kind != "CronJob" || o.gone {
			return nil
		}
	}
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, "tagwatch.") {
			annotations[k] = v
		}
	}
	maps.Copy(annotations, o.annotations) // the owner's win: it is what the admin edits
	statuses := map[string]corev1.ContainerStatus{}
	for _, st := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		statuses[st.Name] = st
	}
	base := pod.Namespace + "/" + o.kind + "/" + o.name + "/"
	on, settings, problem := watcher.ReadLabels(annotations, l.s.WatchByDefault)
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		place := base + c.Name
		if problem != nil {
			l.problem(place, pod, fmt.Errorf("annotations: %w", problem))
			continue
		}
		if !on {
			continue
		}
		img, err := registries.ParseImage(c.Image)
		if err != nil {
			l.problem(place, pod, err)
			continue
		}
		t := watcher.Target{Image: img, Options: settings.Options, Platform: platform(pod)}
		if img.Digest != "" {
			t.Digest, t.Pinned = img.Digest, true
		} else {
			t.Digest = RunningDigest(statuses[c.Name].ImageID)
		}
		key := place + "\x00" + c.Image + "\x00" + t.Digest
		if l.seen[key] {
			continue // another replica
		}
		l.seen[key] = true
		l.found = append(l.found, watcher.Found{
			Target:       t,
			Location:     store.Location{Watcher: l.s.Watcher, Kind: Kind, Place: place, Container: c.Name},
			DisplayName:  settings.DisplayName,
			LinkTemplate: settings.LinkTemplate,
		})
	}
	return nil
}

func (l *listing) problem(place string, pod *corev1.Pod, err error) {
	if l.bad[place] {
		return
	}
	l.bad[place] = true
	l.problems = append(l.problems, &watcher.ContainerError{Watcher: l.s.Watcher, Container: place, ContainerID: string(pod.UID), Err: err})
}

// platform is what the pod asks its node to be, when it says: without
// reading Node objects (which the least-privilege role does not grant)
// that is all a pod tells of its platform; otherwise the daemon's default.
func platform(pod *corev1.Pod) v1.Platform {
	arch := pod.Spec.NodeSelector[corev1.LabelArchStable]
	if arch == "" {
		return v1.Platform{}
	}
	return v1.Platform{OS: cmp.Or(pod.Spec.NodeSelector[corev1.LabelOSStable], "linux"), Architecture: arch}
}

// RunningDigest is the repository digest in a container status' imageID,
// or "" when it holds none. Runtimes write it as
//
//	docker-pullable://nginx@sha256:…    (dockershim, cri-dockerd)
//	docker.io/library/nginx@sha256:…    (containerd, CRI-O)
//	docker://sha256:…, sha256:…         (an image ID: the config's digest, not the manifest's)
//
// An image ID names no manifest a registry knows, so it is not a digest in
// use: the check then compares with what the tag points to now.
func RunningDigest(imageID string) string {
	if i := strings.Index(imageID, "://"); i >= 0 {
		imageID = imageID[i+3:]
	}
	_, digest, ok := strings.Cut(imageID, "@")
	if !ok {
		return ""
	}
	if _, err := v1.NewHash(digest); err != nil {
		return ""
	}
	return digest
}

// owner is the workload a pod belongs to, as the admin knows it: the
// Deployment rather than its ReplicaSet, the CronJob rather than its Job.
type owner struct {
	kind, name  string
	annotations map[string]string // tagwatch.* only
	gone        bool              // deleted since its pods were listed
}

func tagwatchAnnotations(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, "tagwatch.") {
			out[k] = v
		}
	}
	return out
}

// owner finds the pod's workload. An owner that vanished meanwhile leaves
// the pod under the owner it names; a refused read (RBAC) stops the listing
// with the permission to grant named, since guessing would check images
// with options their admin did not set.
func (l *listing) owner(ctx context.Context, pod *corev1.Pod) (*owner, error) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return &owner{kind: "Pod", name: pod.Name}, nil
	}
	return l.resolve(ctx, pod.Namespace, *ref, "pod "+pod.Namespace+"/"+pod.Name)
}

func (l *listing) resolve(ctx context.Context, ns string, ref metav1.OwnerReference, of string) (*owner, error) {
	kind, name := ref.Kind, ref.Name
	if group, _, _ := strings.Cut(ref.APIVersion, "/"); group != "apps" && group != "batch" {
		kind = "" // a resource of that name in another API group: not ours to read
	}
	key := ref.APIVersion + "/" + ref.Kind + "/" + ns + "/" + name
	if o, ok := l.owners[key]; ok {
		return o, nil
	}
	var (
		obj metav1.Object
		err error
	)
	switch kind {
	case "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob":
		gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: strings.ToLower(kind) + "s"}
		if kind == "Job" || kind == "CronJob" {
			gvr.Group = "batch"
		}
		obj, err = l.lookup(ctx, gvr, ns, name)
	default:
		// An operator's custom resource, or the Node of a static pod: the
		// role grants no read of it, and its kind and name are enough to
		// say where the pod runs.
		o := &owner{kind: ref.Kind, name: name}
		l.owners[key] = o
		return o, nil
	}
	o := &owner{kind: kind, name: name}
	switch {
	case apierrors.IsNotFound(err):
		// Deleted (a pod may outlive its owner until the garbage
		// collector comes): the pod's own annotations.
		o.gone = true
	case err != nil:
		hint := ""
		if apierrors.IsForbidden(err) {
			hint = " (tagwatch needs to list the owners of pods: see contrib/kubernetes/rbac.yaml)"
		}
		return nil, fmt.Errorf("reading %s %s/%s, owner of %s: %w%s", kind, ns, name, of, err, hint)
	default:
		o.annotations = tagwatchAnnotations(obj.GetAnnotations())
		// A ReplicaSet is its Deployment's (or another controller's, as
		// Argo Rollouts'), a Job its CronJob's: the workload the admin edits.
		if up := metav1.GetControllerOfNoCopy(obj); up != nil && (kind == "ReplicaSet" || kind == "Job") {
			parent, err := l.resolve(ctx, ns, *up, kind+" "+ns+"/"+name)
			if err != nil {
				return nil, err
			}
			o = parent
		}
	}
	l.owners[key] = o
	return o, nil
}

// lookup finds an owner by name. Each kind is listed once per List (per
// namespace, or cluster-wide when watching all of them), metadata only,
// rather than read one GET per workload: a few requests however many
// workloads there are (a GET each cost 3 s per 60 workloads under
// client-go's rate limit; see BenchmarkList).
func (l *listing) lookup(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error) {
	scope := ns
	if l.cluster {
		scope = metav1.NamespaceAll
	}
	key := gvr.String() + "\x00" + scope
	idx, ok := l.indexes[key]
	if !ok {
		idx = map[string]metav1.Object{}
		opts := metav1.ListOptions{Limit: cmp.Or(l.s.PageSize, defaultPageSize)}
		for {
			list, err := l.c.meta.Resource(gvr).Namespace(scope).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				m := &list.Items[i]
				idx[m.Namespace+"/"+m.Name] = m
			}
			if list.Continue == "" {
				break
			}
			opts.Continue = list.Continue
		}
		l.indexes[key] = idx
	}
	if obj, ok := idx[ns+"/"+name]; ok {
		return obj, nil
	}
	return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
}
