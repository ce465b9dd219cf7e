package registries

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DockerHub is the host Docker Hub images are written with; go-containerregistry
// spells it index.docker.io, which nobody types.
const DockerHub = "docker.io"

// Image is one image reference as an admin wrote it, split and normalized:
// `nginx` becomes docker.io/library/nginx:latest.
type Image struct {
	Given      string // as written
	Host       string // "docker.io", "ghcr.io", "127.0.0.1:5000"
	Repository string // "library/nginx"
	Tag        string // "1.25.3"; "latest" when none was written
	// Digest is the digest pinned with @sha256:…, the one in use.
	Digest string
}

// pathComponent is one component of a repository path in Docker's reference
// grammar; go-containerregistry checks only the characters, not their order.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ParseImage normalizes a reference the way Docker does. A reference pinned
// as repo:tag@sha256:… keeps both its tag and its digest.
func ParseImage(s string) (Image, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Image{}, fmt.Errorf("empty image reference")
	}
	if strings.Contains(in, "://") {
		return Image{}, fmt.Errorf("image %q: write the reference without a scheme (no http:// or https://)", RedactUserinfo(s))
	}
	base, digest, pinned := strings.Cut(in, "@")
	if pinned {
		if _, err := name.NewDigest("example.invalid/x@"+digest, name.StrictValidation); err != nil {
			return Image{}, fmt.Errorf("image %q: bad digest: %w", s, err)
		}
	}
	tag, err := name.NewTag(base, name.WeakValidation)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", s, err)
	}
	// Host names are case-insensitive; one spelling keeps one instance and
	// one watch per repository.
	host := strings.ToLower(tag.RegistryStr())
	switch host {
	case name.DefaultRegistry, "registry-1.docker.io", "registry.hub.docker.com":
		// Docker Hub's other names: one repository, one watch.
		host = DockerHub
	}
	for _, c := range strings.Split(tag.RepositoryStr(), "/") {
		if !pathComponent.MatchString(c) {
			return Image{}, fmt.Errorf("image %q: repository path component %q must be lowercase letters and digits separated by '.', '_', '__' or '-'", s, c)
		}
	}
	return Image{
		Given:      s,
		Host:       host,
		Repository: tag.RepositoryStr(),
		Tag:        tag.TagStr(),
		Digest:     digest,
	}, nil
}

// Name is host/repository, the form that names a repository across registries.
func (i Image) Name() string { return i.Host + "/" + i.Repository }

// String is the normalized reference: host/repository:tag[@digest].
func (i Image) String() string {
	if i.Repository == "" {
		return i.Host // a registry, not an image: what a connection test names
	}
	s := i.Name()
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// WithTag returns the same repository at another tag, unpinned.
func (i Image) WithTag(tag string) Image {
	i.Tag, i.Digest, i.Given = tag, "", ""
	return i
}
