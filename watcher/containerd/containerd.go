// Package containerd is tagwatch's containerd source: the images of the
// containers a containerd holds (nerdctl hosts, k3s nodes, any CRI node),
// through containerd's Go client. It lives apart from package watcher so
// that the client's dependencies stay in their own room: watcher never
// imports it; cmd/tagwatch builds it from the config.
package containerd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Kind is the source kind in store.Location.
const Kind = "containerd"

// DefaultAddress is containerd's own socket. k3s runs its containerd at
// /run/k3s/containerd/containerd.sock.
const DefaultAddress = "/run/containerd/containerd.sock"

// defaultTimeout bounds one List: a containerd that stops answering must
// not hold a cycle, and every other watcher's results.
const defaultTimeout = time.Minute

// Labels the CRI plugin (Kubernetes) and nerdctl put on containers.
const (
	labelCRIKind       = "io.cri-containerd.kind" // "sandbox" for a pod's pause container
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodName       = "io.kubernetes.pod.name"
	labelContainerName = "io.kubernetes.container.name"
	labelNerdctlName   = "nerdctl/name"
)

// Source lists the images of a containerd's containers: in each namespace,
// each container's image name and the digest that name's image has on the
// node (an index or a manifest digest, as pulled), with options from the
// container's tagwatch.* labels.
type Source struct {
	// Watcher is the watcher's name in the config ("node").
	Watcher string
	// Address is the socket: a path or unix:///path; empty: DefaultAddress.
	Address string
	// Namespaces to list; empty: all of them.
	Namespaces []string
	// WatchByDefault watches containers without a tagwatch.enable label.
	WatchByDefault bool
	// WatchStopped also watches containers with no running task.
	WatchStopped bool
	// Timeout bounds one List (default a minute).
	Timeout time.Duration

	mu  sync.Mutex
	cli *client.Client
}

var _ watcher.Source = (*Source)(nil)

// Name is the watcher's name.
func (s *Source) Name() string { return s.Watcher }

func (s *Source) socket() string {
	return strings.TrimPrefix(cmp.Or(s.Address, DefaultAddress), "unix://")
}

func (s *Source) errorf(format string, args ...any) error {
	return fmt.Errorf("watcher %s (%s): "+format, append([]any{s.Watcher, s.socket()}, args...)...)
}

// client makes the client on first use and keeps it: it holds one gRPC
// connection, made again by gRPC when containerd restarts.
func (s *Source) client() (*client.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli != nil {
		return s.cli, nil
	}
	if a := cmp.Or(s.Address, DefaultAddress); strings.Contains(a, "://") && !strings.HasPrefix(a, "unix://") {
		return nil, fmt.Errorf("address %s: containerd listens on a unix socket: unix:///path or /path", a)
	}
	cli, err := client.New(s.socket(), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	s.cli = cli
	return cli, nil
}

// Close releases the connection. The source can be listed again afterwards.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli == nil {
		return nil
	}
	err := s.cli.Close()
	s.cli = nil
	return err
}

// List returns the images of the watched containers. Like
// watcher.DockerSource, a container that cannot be watched (a bad label,
// its image gone) is left out and named in a watcher.ContainerErrors
// returned with the others; any other error means containerd could not be
// listed, and nothing is returned.
func (s *Source) List(ctx context.Context) ([]watcher.Found, error) {
	cli, err := s.client()
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(s.Timeout, defaultTimeout))
	defer cancel()
	nss := s.Namespaces
	if len(nss) == 0 {
		if nss, err = cli.NamespaceService().List(ctx); err != nil {
			return nil, s.errorf("listing namespaces: %w", err)
		}
		sort.Strings(nss)
	}
	var found []watcher.Found
	var bad watcher.ContainerErrors
	for _, ns := range nss {
		f, b, err := s.namespace(namespaces.WithNamespace(ctx, ns), cli, ns)
		if err != nil {
			return nil, s.errorf("namespace %s: %w", ns, err)
		}
		found, bad = append(found, f...), append(bad, b...)
	}
	if len(bad) > 0 {
		return found, bad
	}
	return found, nil
}

func (s *Source) namespace(ctx context.Context, cli *client.Client, ns string) ([]watcher.Found, watcher.ContainerErrors, error) {
	ctrs, err := cli.ContainerService().List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing containers: %w", err)
	}
	var running map[string]bool
	if !s.WatchStopped {
		resp, err := cli.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			return nil, nil, fmt.Errorf("listing tasks: %w", err)
		}
		running = map[string]bool{}
		for _, t := range resp.Tasks {
			if t.Status == tasktypes.Status_RUNNING || t.Status == tasktypes.Status_PAUSED {
				running[t.ID] = true
			}
		}
	}
	sort.Slice(ctrs, func(i, j int) bool { return place(ns, ctrs[i]) < place(ns, ctrs[j]) })

	imgs := map[string]*image{}
	seen := map[string]bool{}
	var found []watcher.Found
	var bad watcher.ContainerErrors
	for _, c := range ctrs {
		if c.Labels[labelCRIKind] == "sandbox" {
			continue // a pod's pause container: the node's, not a workload's
		}
		if running != nil && !running[c.ID] {
			continue
		}
		where := place(ns, c)
		problem := func(err error) {
			bad = append(bad, &watcher.ContainerError{Watcher: s.Watcher, Container: where, ContainerID: c.ID, Err: err})
		}
		on, settings, err := watcher.ReadLabels(c.Labels, s.WatchByDefault)
		if err != nil {
			problem(fmt.Errorf("labels: %w", err))
			continue
		}
		if !on {
			continue
		}
		if c.Image == "" {
			problem(errors.New("it was made from no image (a rootfs of its own): nothing to check"))
			continue
		}
		ref, err := registries.ParseImage(c.Image)
		if err != nil {
			problem(err)
			continue
		}
		t := watcher.Target{Image: ref, Options: settings.Options}
		if ref.Digest != "" {
			t.Digest, t.Pinned = ref.Digest, true
		} else {
			im, ok := imgs[c.Image]
			if !ok {
				im = &image{}
				im.Image, im.err = cli.ImageService().Get(ctx, c.Image)
				imgs[c.Image] = im
			}
			switch {
			case cerrdefs.IsNotFound(im.err):
				problem(fmt.Errorf("its image %s is no longer in namespace %s", c.Image, ns))
				continue
			case im.err != nil:
				return nil, nil, fmt.Errorf("reading image %s: %w", c.Image, im.err)
			}
			t.Digest = im.Target.Digest.String()
		}
		key := where + "\x00" + c.Image + "\x00" + t.Digest
		if seen[key] {
			continue
		}
		seen[key] = true
		found = append(found, watcher.Found{
			Target:       t,
			Location:     store.Location{Watcher: s.Watcher, Kind: Kind, Place: where, Container: c.ID, ContainerID: c.ID},
			DisplayName:  settings.DisplayName,
			LinkTemplate: settings.LinkTemplate,
		})
	}
	return found, bad, nil
}

type image struct {
	images.Image
	err error
}

// place names a container as its admin knows it: a Kubernetes container by
// its pod (k8s.io/media/jellyfin-5d8f…/jellyfin), a nerdctl one by its
// name, any other by its ID; each after its containerd namespace.
func place(ns string, c containers.Container) string {
	l := c.Labels
	if l[labelPodNamespace] != "" && l[labelPodName] != "" && l[labelContainerName] != "" {
		return ns + "/" + l[labelPodNamespace] + "/" + l[labelPodName] + "/" + l[labelContainerName]
	}
	if n := l[labelNerdctlName]; n != "" {
		return ns + "/" + n
	}
	return ns + "/" + c.ID
}
