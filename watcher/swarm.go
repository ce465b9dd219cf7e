package watcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/swarm"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// Labels Docker puts on Swarm objects.
const (
	// swarmServiceIDLabel is on every task container of a service.
	swarmServiceIDLabel = "com.docker.swarm.service.id"
	// swarmStackLabel is on every service `docker stack deploy` made.
	swarmStackLabel = "com.docker.stack.namespace"
)

// swarmServices lists the engine's Swarm services when it is a manager and
// the watcher does not say otherwise. Only managers can list services; a
// worker's containers (its tasks) are listed as containers.
func (l *listing) swarmServices(ctx context.Context) ([]swarm.Service, error) {
	if l.d.Swarm != nil && !*l.d.Swarm {
		return nil, nil
	}
	cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	info, err := l.cli.Info(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("asking whether it is a Swarm manager: %w", err)
	}
	if !info.Swarm.ControlAvailable {
		if l.d.Swarm != nil {
			state := cmp.Or(string(info.Swarm.LocalNodeState), "inactive")
			return nil, fmt.Errorf("swarm is true, but the engine is not a Swarm manager (swarm state %s): point host at a manager, or set swarm: false", state)
		}
		return nil, nil
	}
	cctx, cancel = context.WithTimeout(ctx, dockerCallTimeout)
	services, err := l.cli.ServiceList(cctx, swarm.ServiceListOptions{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("listing Swarm services: %w", err)
	}
	sort.Slice(services, func(i, j int) bool { return servicePlace(services[i]) < servicePlace(services[j]) })
	l.services = make(map[string]bool, len(services))
	for _, sv := range services {
		l.services[sv.ID] = true
	}
	return services, nil
}

// service makes a Swarm service's Found from its spec, whatever its
// replicas: a service scaled to 0 still says what it runs. It returns nil
// for a service not watched, a problem for one that cannot be.
func (l *listing) service(sv swarm.Service) (*Found, error) {
	labels := sv.Spec.Labels
	on, err := labelEnabled(labels, l.d.WatchByDefault)
	if err != nil || !on {
		return nil, err
	}
	settings, err := parseLabels(labels)
	if err != nil {
		return nil, err
	}
	cs := sv.Spec.TaskTemplate.ContainerSpec
	if cs == nil || cs.Image == "" {
		return nil, errors.New("its spec names no container image (a plugin service?)")
	}
	img, digest, err := serviceImage(cs.Image)
	if err != nil {
		return nil, err
	}
	t := Target{Image: img, Digest: digest, Options: settings.Options, Platform: l.d.Platform}
	if p := sv.Spec.TaskTemplate.Placement; p != nil && len(p.Platforms) == 1 && p.Platforms[0].OS != "" {
		// Pinned to one platform: its tasks run that one.
		t.Platform = v1.Platform{OS: p.Platforms[0].OS, Architecture: p.Platforms[0].Architecture}
	}
	return &Found{
		Target: t,
		Location: store.Location{
			Watcher: l.d.Watcher, Kind: KindSwarm, Place: servicePlace(sv),
			// The service stands where a container would.
			Container: sv.Spec.Name, ContainerID: sv.ID,
		},
		DisplayName:  settings.DisplayName,
		LinkTemplate: settings.LinkTemplate,
	}, nil
}

// serviceImage reads a service spec's image. `docker service create` and
// `docker stack deploy` resolve the tag and pin its digest there
// (repo:tag@sha256:…): that digest is what the tasks run, not a pin the
// admin chose, so the tag is what gets compared and the digest is the one in
// use, as for a container.
func serviceImage(ref string) (registries.Image, string, error) {
	img, err := registries.ParseImage(ref)
	if err != nil {
		return registries.Image{}, "", err
	}
	base, digest, _ := strings.Cut(strings.TrimSpace(ref), "@")
	if digest != "" && !hasTag(base) {
		return registries.Image{}, "", fmt.Errorf("it runs %s, pinned by digest with no tag to compare: deploy it as repo:tag (or label it %s=false)", ref, LabelEnable)
	}
	img.Given, img.Digest = base, ""
	return img, digest, nil
}

// hasTag says whether a reference without digest names a tag: a colon after
// the last slash (a colon before it is a registry's port).
func hasTag(ref string) bool {
	return strings.LastIndex(ref, ":") > strings.LastIndex(ref, "/")
}

// servicePlace is where a service runs as the admin names it: stack/service
// for a stack's service (whose name Docker prefixed with "stack_"), else the
// service name.
func servicePlace(sv swarm.Service) string {
	name := sv.Spec.Name
	if stack := sv.Spec.Labels[swarmStackLabel]; stack != "" {
		return stack + "/" + strings.TrimPrefix(name, stack+"_")
	}
	return name
}
