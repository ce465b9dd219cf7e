package watcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// dockerCallTimeout bounds each call to an engine: a NAS that stops
// answering must not hold a cycle (and every other watcher's results) forever.
const dockerCallTimeout = 30 * time.Second

// DockerSource lists the images a Docker engine's containers run.
//
// List returns the watched containers' images. When the engine answered but
// some containers cannot be watched (a bad label, an image it cannot name),
// List returns the others together with a ContainerErrors naming each one
// left out; any other error means the listing failed and nothing is returned.
// So a typo in one container's labels is reported without hiding the rest:
//
//	found, err := src.List(ctx)
//	var bad ContainerErrors
//	if err != nil && !errors.As(err, &bad) {
//		return err // the engine could not be listed
//	}
//	// use found; report bad
type DockerSource struct {
	// Watcher is the watcher's name in the config ("local", "nas"). The
	// field is not called Name: that is the Source method.
	Watcher string
	// Host is the engine: unix:///path or tcp://host:2376. Empty means
	// the docker CLI's environment (DOCKER_HOST, DOCKER_CERT_PATH,
	// DOCKER_TLS_VERIFY), else unix:///var/run/docker.sock.
	Host string
	// CAFile, CertFile and KeyFile are PEM files for a tcp:// host's TLS.
	CAFile, CertFile, KeyFile string
	// WatchByDefault watches containers without a tagwatch.enable label.
	WatchByDefault bool
	// WatchStopped also watches stopped and created containers.
	WatchStopped bool
	// Platform is used when the engine does not say an image's platform.
	Platform v1.Platform
	// Engine is KindDocker (also when empty) or KindPodman: Podman's
	// Docker-compatible API, with its pods and digests (podman.go).
	Engine string
	// Swarm lists the engine's Swarm services (swarm.go): nil when the
	// engine says it is a Swarm manager, false never, true always.
	Swarm *bool

	mu  sync.Mutex
	cli *client.Client
}

// Source kinds, as Location.Kind names them.
const (
	KindDocker = "docker"
	KindSwarm  = "swarm"
	KindPodman = "podman"
	KindConfig = "config"
)

var _ Source = (*DockerSource)(nil)

// Name is the watcher's name.
func (d *DockerSource) Name() string { return d.Watcher }

// Kind is the kind of engine: docker or podman.
func (d *DockerSource) Kind() string {
	if d.Engine == KindPodman {
		return KindPodman
	}
	return KindDocker
}

// ContainerError is a container (or Swarm service) List leaves out, and why.
type ContainerError struct {
	Watcher     string
	Container   string // name, without the leading "/"
	ContainerID string
	// Service is set instead of Container for a Swarm service: stack/service.
	Service string
	Err     error
}

func (e *ContainerError) Error() string {
	if e.Service != "" {
		return fmt.Sprintf("watcher %s: service %s: %v", e.Watcher, e.Service, e.Err)
	}
	return fmt.Sprintf("watcher %s: container %s: %v", e.Watcher, e.Container, e.Err)
}

func (e *ContainerError) Unwrap() error { return e.Err }

// ContainerErrors is List's error when only some containers could not be
// watched: the listing itself worked, and List returns the other containers.
type ContainerErrors []*ContainerError

func (e ContainerErrors) Error() string {
	msgs := make([]string, len(e))
	for i, ce := range e {
		msgs[i] = ce.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e ContainerErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, ce := range e {
		errs[i] = ce
	}
	return errs
}

// host is the engine address the source talks to.
func (d *DockerSource) host() string {
	if d.Kind() == KindPodman {
		return cmp.Or(d.Host, podmanHost(os.Getenv, os.Geteuid()))
	}
	return cmp.Or(d.Host, os.Getenv(client.EnvOverrideHost), client.DefaultDockerHost)
}

// errorf names the watcher and host, which an admin watching several
// engines needs to find the one at fault.
func (d *DockerSource) errorf(format string, args ...any) error {
	return fmt.Errorf("watcher %s (%s): "+format, append([]any{d.Watcher, d.host()}, args...)...)
}

// client makes the engine client on first use and keeps it: it holds the
// negotiated API version and a pool of connections.
func (d *DockerSource) client() (*client.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cli != nil {
		return d.cli, nil
	}
	host := d.host()
	tlsFiles := d.CAFile != "" || d.CertFile != "" || d.KeyFile != ""
	var opts []client.Opt
	if d.Host == "" && !tlsFiles && d.Kind() == KindDocker {
		// Like the docker CLI. It replaces the HTTP client, so it goes
		// before WithHost, which sets up that client's transport.
		opts = append(opts, client.WithTLSClientConfigFromEnv())
	}
	opts = append(opts, client.WithHost(host), client.WithAPIVersionNegotiation())
	if tlsFiles {
		if !strings.HasPrefix(host, "tcp://") {
			return nil, errors.New("cafile, certfile and keyfile are for a tcp:// host")
		}
		opts = append(opts, client.WithTLSClientConfig(d.CAFile, d.CertFile, d.KeyFile))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, err
	}
	d.cli = cli
	return cli, nil
}

// Close releases the engine client's connections. The source can be listed
// again afterwards; it then connects anew.
func (d *DockerSource) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cli == nil {
		return nil
	}
	err := d.cli.Close()
	d.cli = nil
	return err
}

// List returns the images of the watched containers; see DockerSource for
// its errors.
func (d *DockerSource) List(ctx context.Context) ([]Found, error) {
	cli, err := d.client()
	if err != nil {
		return nil, d.errorf("%w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	containers, err := cli.ContainerList(cctx, container.ListOptions{All: d.WatchStopped})
	cancel()
	if err != nil {
		return nil, d.errorf("listing containers: %w", err)
	}
	// Names order the output: engines list newest first, which would
	// shuffle reports from one cycle to the next.
	sort.Slice(containers, func(i, j int) bool { return containerName(containers[i]) < containerName(containers[j]) })

	l := &listing{d: d, cli: cli, images: map[string]*inspected{}}
	var found []Found
	var bad ContainerErrors
	if d.Kind() == KindDocker {
		services, err := l.swarmServices(ctx)
		if err != nil {
			return nil, d.errorf("%w", err)
		}
		for _, sv := range services {
			f, problem := l.service(sv)
			switch {
			case problem != nil:
				bad = append(bad, &ContainerError{Watcher: d.Watcher, Service: servicePlace(sv), Err: problem})
			case f != nil:
				found = append(found, *f)
			}
		}
	} else {
		if l.pods, err = l.podmanContainers(ctx); err != nil {
			return nil, d.errorf("%w", err)
		}
	}

	for _, c := range containers {
		if l.skip(c) {
			continue
		}
		f, problem, err := l.container(ctx, c)
		switch {
		case err != nil:
			return nil, d.errorf("container %s: %w", containerName(c), err)
		case problem != nil:
			bad = append(bad, &ContainerError{Watcher: d.Watcher, Container: containerName(c), ContainerID: c.ID, Err: problem})
		case f != nil:
			found = append(found, *f)
		}
	}
	if len(bad) > 0 {
		return found, bad
	}
	return found, nil
}

// listing is one List call: it inspects each image once, however many
// containers run it.
type listing struct {
	d      *DockerSource
	cli    *client.Client
	images map[string]*inspected // by image ID
	// services are the IDs of the Swarm services listed: their task
	// containers are the same image in use, not more of it.
	services map[string]bool
	// pods are Podman's own view of its containers, by container ID.
	pods map[string]podmanContainer
	// digests are Podman's manifest digests, by image ID.
	digests map[string]string
}

// skip says whether a container is not watched for what it is rather than
// for its labels: a task of a Swarm service already listed, a Podman pod's
// infra container.
func (l *listing) skip(c container.Summary) bool {
	if c.Labels[swarmServiceIDLabel] != "" && l.services != nil {
		// A manager lists every service: a task's is listed, or is
		// being removed with its tasks.
		return true
	}
	if p, ok := l.pods[c.ID]; ok && p.IsInfra {
		return true
	}
	return false
}

type inspected struct {
	image.InspectResponse
	err error
}

func (l *listing) image(ctx context.Context, id string) (image.InspectResponse, error) {
	if in, ok := l.images[id]; ok {
		return in.InspectResponse, in.err
	}
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	resp, err := l.cli.ImageInspect(ctx, id)
	l.images[id] = &inspected{resp, err}
	return resp, err
}

// container makes a container's Found. It returns nil for a container not
// watched, a problem for one that cannot be (reported, the listing goes
// on), and an error when the engine failed (the listing stops).
func (l *listing) container(ctx context.Context, c container.Summary) (f *Found, problem, err error) {
	on, err := labelEnabled(c.Labels, l.d.WatchByDefault)
	if err != nil || !on {
		return nil, err, nil
	}
	settings, err := parseLabels(c.Labels)
	if err != nil {
		return nil, err, nil
	}

	ref := c.Image
	if isImageID(ref, c.ImageID) {
		// The engine shows the image ID when the name the container was
		// made from now names another image: its tag moved with a pull,
		// and the container still runs the old image (an update waiting
		// for a restart). The container's config keeps the name as written.
		cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		ci, err := l.cli.ContainerInspect(cctx, c.ID)
		cancel()
		if cerrdefs.IsNotFound(err) {
			return nil, nil, nil // removed since the listing
		}
		if err != nil {
			return nil, nil, fmt.Errorf("inspecting: %w", err)
		}
		if ci.Config != nil && ci.Config.Image != "" {
			ref = ci.Config.Image
		}
	}

	img, err := l.image(ctx, c.ImageID)
	if cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("its image %s is no longer on the engine", shortID(c.ImageID)), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("inspecting image %s: %w", shortID(c.ImageID), err)
	}

	if isImageID(ref, c.ImageID) {
		// Made from an image ID: the image's own name, if it still has one.
		if ref = repoTag(img.RepoTags); ref == "" {
			return nil, fmt.Errorf("it runs image %s, which has no name to check: recreate it from a name (repo:tag), or label it %s=false",
				shortID(c.ImageID), LabelEnable), nil
		}
	}
	parsed, err := registries.ParseImage(ref)
	if err != nil {
		return nil, err, nil
	}
	if l.d.Kind() == KindPodman && isPodmanLocal(parsed) {
		// Built or committed on the host: no registry has it.
		return nil, nil, nil
	}

	t := Target{Image: parsed, Options: settings.Options, Platform: l.d.Platform}
	switch {
	case c.Labels[swarmServiceIDLabel] != "" && parsed.Digest != "":
		// A Swarm task on a worker: Docker pinned the digest, not the
		// admin; it is the digest in use, as for its service.
		if t.Image, t.Digest, err = serviceImage(ref); err != nil {
			return nil, err, nil
		}
	case parsed.Digest != "":
		t.Digest, t.Pinned = parsed.Digest, true
	case l.d.Kind() == KindPodman:
		if t.Digest, t.SameImage, err = l.podmanDigests(ctx, c.ImageID, img.RepoDigests, parsed); err != nil {
			return nil, nil, err
		}
	default:
		t.Digest = repoDigest(img.RepoDigests, parsed)
	}
	if img.Os != "" {
		t.Platform = v1.Platform{OS: img.Os, Architecture: img.Architecture, Variant: img.Variant}
	}
	name := containerName(c)
	loc := store.Location{Watcher: l.d.Watcher, Container: name, ContainerID: c.ID, Kind: l.d.Kind(), Place: name}
	if p, ok := l.pods[c.ID]; ok && p.PodName != "" {
		loc.Place = p.PodName + "/" + name
	}
	return &Found{
		Target:       t,
		Location:     loc,
		DisplayName:  settings.DisplayName,
		LinkTemplate: settings.LinkTemplate,
	}, nil, nil
}

// containerName is the container's own name. Its other names are links
// ("/web/db": db as seen from web).
func containerName(c container.Summary) string {
	for _, n := range c.Names {
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			return n
		}
	}
	return shortID(c.ID)
}

// isImageID says whether ref is the image ID (full, or a prefix as
// `docker run 3f2a1b` takes) rather than a name.
func isImageID(ref, imageID string) bool {
	hex := strings.TrimPrefix(imageID, "sha256:")
	r := strings.TrimPrefix(ref, "sha256:")
	return r != "" && strings.HasPrefix(hex, r)
}

// repoTag picks the image's first name; the engine lists them in no
// meaningful order, so sorting keeps the choice stable between cycles.
func repoTag(tags []string) string {
	tags = append([]string(nil), tags...)
	sort.Strings(tags)
	for _, t := range tags {
		if t != "" && t != "<none>:<none>" {
			return t
		}
	}
	return ""
}

// repoDigest is the digest the engine pulled img's repository by. It
// compares normalized names: the engine writes docker.io/library/nginx for
// what the admin wrote as nginx. An image built locally has none.
func repoDigest(repoDigests []string, img registries.Image) string {
	for _, rd := range repoDigests {
		if r, err := registries.ParseImage(rd); err == nil && r.Name() == img.Name() {
			return r.Digest
		}
	}
	return ""
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
