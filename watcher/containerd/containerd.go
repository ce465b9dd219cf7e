// Package containerd is tagwatch's containerd source: the images of the
// containers a containerd holds (nerdctl hosts, k3s nodes, any CRI node),
// through containerd's Go API (github.com/containerd/containerd/api: the
// generated gRPC clients its own client is built on). tagwatch makes four
// read calls; the full client (containerd/v2/client) would add its pull,
// snapshot and runtime machinery: 4.7 MB of binary against 2.0 MB. It
// lives apart from package watcher so that gRPC stays in its own room:
// watcher never imports it; cmd/tagwatch builds it from the config.
package containerd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// Kind is the source kind in store.Location.
const Kind = "containerd"

// DefaultAddress is containerd's own socket. k3s runs its containerd at
// /run/k3s/containerd/containerd.sock.
const DefaultAddress = "/run/containerd/containerd.sock"

// namespaceHeader is the gRPC metadata key containerd reads a call's
// namespace from (what its client's namespaces.WithNamespace sets).
const namespaceHeader = "containerd-namespace"

// maxMessage is the largest answer taken: a container record carries its
// OCI spec, and a node's k8s.io namespace holds many (containerd's own
// client allows 16 MiB too).
const maxMessage = 16 << 20

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

	mu   sync.Mutex
	conn *grpc.ClientConn
}

var _ watcher.Source = (*Source)(nil)

// Name is the watcher's name.
func (s *Source) Name() string { return s.Watcher }

// Kind names the source's kind before any listing has worked (watcher.Kinder).
func (s *Source) Kind() string { return Kind }

func (s *Source) socket() string {
	return strings.TrimPrefix(cmp.Or(s.Address, DefaultAddress), "unix://")
}

func (s *Source) errorf(format string, args ...any) error {
	return fmt.Errorf("watcher %s (%s): "+format, append([]any{s.Watcher, s.socket()}, args...)...)
}

// client makes the connection on first use and keeps it; gRPC makes it
// again when containerd restarts.
func (s *Source) client() (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, nil
	}
	if a := cmp.Or(s.Address, DefaultAddress); strings.Contains(a, "://") && !strings.HasPrefix(a, "unix://") {
		return nil, fmt.Errorf("address %s: containerd listens on a unix socket: unix:///path or /path", a)
	}
	conn, err := grpc.NewClient("unix://"+s.socket(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), // a local socket
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return conn, nil
}

// Close releases the connection. The source can be listed again afterwards.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// List returns the images of the watched containers. Like
// watcher.DockerSource, a container that cannot be watched (a bad label,
// its image gone) is left out and named in a watcher.ContainerErrors
// returned with the others; any other error means containerd could not be
// listed, and nothing is returned.
func (s *Source) List(ctx context.Context) ([]watcher.Found, error) {
	conn, err := s.client()
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(s.Timeout, defaultTimeout))
	defer cancel()
	nss := s.Namespaces
	if len(nss) == 0 {
		resp, err := namespacesapi.NewNamespacesClient(conn).List(ctx, &namespacesapi.ListNamespacesRequest{})
		if err != nil {
			return nil, s.errorf("listing namespaces: %w", err)
		}
		for _, n := range resp.Namespaces {
			nss = append(nss, n.Name)
		}
		sort.Strings(nss)
	}
	var found []watcher.Found
	var bad watcher.ContainerErrors
	for _, ns := range nss {
		f, b, err := s.namespace(metadata.AppendToOutgoingContext(ctx, namespaceHeader, ns), conn, ns)
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

func (s *Source) namespace(ctx context.Context, conn *grpc.ClientConn, ns string) ([]watcher.Found, watcher.ContainerErrors, error) {
	ctrs, err := listContainers(ctx, containersapi.NewContainersClient(conn))
	if err != nil {
		return nil, nil, fmt.Errorf("listing containers: %w", err)
	}
	var running map[string]bool
	if !s.WatchStopped {
		resp, err := tasksapi.NewTasksClient(conn).List(ctx, &tasksapi.ListTasksRequest{})
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
	images := imagesapi.NewImagesClient(conn)
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
				var resp *imagesapi.GetImageResponse
				if resp, im.err = images.Get(ctx, &imagesapi.GetImageRequest{Name: c.Image}); im.err == nil {
					im.digest = resp.GetImage().GetTarget().GetDigest()
				}
				imgs[c.Image] = im
			}
			switch {
			case status.Code(im.err) == codes.NotFound:
				problem(fmt.Errorf("its image %s is no longer in namespace %s", c.Image, ns))
				continue
			case im.err != nil:
				return nil, nil, fmt.Errorf("reading image %s: %w", c.Image, im.err)
			}
			t.Digest = im.digest
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
	digest string
	err    error
}

// listContainers streams the records (one message each, so no answer
// grows with the node), falling back to the one-message List of a
// containerd without ListStream.
func listContainers(ctx context.Context, cli containersapi.ContainersClient) ([]*containersapi.Container, error) {
	stream, err := cli.ListStream(ctx, &containersapi.ListContainersRequest{})
	if err == nil {
		var out []*containersapi.Container
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if status.Code(err) == codes.Unimplemented && len(out) == 0 {
				break
			}
			if err != nil {
				return nil, err
			}
			out = append(out, msg.Container)
		}
	} else if status.Code(err) != codes.Unimplemented {
		return nil, err
	}
	resp, err := cli.List(ctx, &containersapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Containers, nil
}

// place names a container as its admin knows it: a Kubernetes container by
// its pod (k8s.io/media/jellyfin-5d8f…/jellyfin), a nerdctl one by its
// name, any other by its ID; each after its containerd namespace.
func place(ns string, c *containersapi.Container) string {
	l := c.Labels
	if l[labelPodNamespace] != "" && l[labelPodName] != "" && l[labelContainerName] != "" {
		return ns + "/" + l[labelPodNamespace] + "/" + l[labelPodName] + "/" + l[labelContainerName]
	}
	if n := l[labelNerdctlName]; n != "" {
		return ns + "/" + n
	}
	return ns + "/" + c.ID
}
