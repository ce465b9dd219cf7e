package watcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tagwatch/tagwatch/registries"
)

// Podman serves Docker's API on its socket, with a few differences this
// file handles:
//   - pods: a pod's containers share an infra container (the pause image),
//     which is not something the admin runs; the Docker-compatible listing
//     does not tell it apart, nor say which pod a container is in, so the
//     libpod listing on the same socket is asked too;
//   - digests: Podman lists every name of an image with every digest the
//     image is known by (the manifest list's and the platform manifest's),
//     so RepoDigests may pair a repository with a digest it never had, and
//     libpod's Digest is that of the image's first pull, whichever name it
//     was; all of them are passed on as the same image (podmanDigests);
//   - names: localhost/… is an image built or committed on the host, which
//     no registry serves.

// podmanLibpodVersion is the libpod API path version asked for: Podman 4.0
// and newer answer it (older releases lack parts of the API tagwatch uses).
const podmanLibpodVersion = "v4.0.0"

// maxLibpodBody bounds a libpod answer: a listing of thousands of
// containers is a few MB.
const maxLibpodBody = 64 << 20

// podmanContainer is what the libpod listing says of a container that the
// Docker-compatible one does not.
type podmanContainer struct {
	ID      string `json:"Id"`
	PodName string `json:"PodName"`
	IsInfra bool   `json:"IsInfra"`
}

// podmanHost is where Podman's service listens when the watcher does not
// say: CONTAINER_HOST (Podman's remote clients read it), else the rootful
// socket for root and the rootless one for anyone else.
func podmanHost(getenv func(string) string, uid int) string {
	if h := getenv("CONTAINER_HOST"); strings.HasPrefix(h, "unix://") || strings.HasPrefix(h, "tcp://") {
		return h
	}
	if uid == 0 {
		return "unix:///run/podman/podman.sock"
	}
	dir := getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = fmt.Sprintf("/run/user/%d", uid)
	}
	return "unix://" + dir + "/podman/podman.sock"
}

// libpod GETs a libpod endpoint through the engine client's own HTTP
// client (its socket, its TLS) and decodes the JSON answer into v.
func (l *listing) libpod(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	u := &url.URL{Scheme: "http", Host: "podman", Path: "/" + podmanLibpodVersion + "/libpod" + path}
	if host := l.d.host(); strings.HasPrefix(host, "tcp://") {
		u.Host = strings.TrimPrefix(host, "tcp://")
		if l.d.CAFile != "" || l.d.CertFile != "" {
			u.Scheme = "https"
		}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = "/"+podmanLibpodVersion+"/libpod"+path[:i], path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	res, err := l.cli.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("libpod %s: %w", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxLibpodBody+1))
	if err != nil {
		return fmt.Errorf("libpod %s: %w", path, err)
	}
	if len(body) > maxLibpodBody {
		return fmt.Errorf("libpod %s: answer larger than %d MB", path, maxLibpodBody>>20)
	}
	if res.StatusCode != http.StatusOK {
		if res.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/containers/json") {
			return fmt.Errorf("libpod %s: %s: is this Podman (4.0 or newer)? A Docker engine is kind docker", path, res.Status)
		}
		return fmt.Errorf("libpod %s: %s", path, res.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("libpod %s: %w", path, err)
	}
	return nil
}

// podmanContainers is libpod's listing of the containers, by ID.
func (l *listing) podmanContainers(ctx context.Context) (map[string]podmanContainer, error) {
	var list []podmanContainer
	q := url.Values{"all": {fmt.Sprint(l.d.WatchStopped)}}
	if err := l.libpod(ctx, "/containers/json?"+q.Encode(), &list); err != nil {
		return nil, fmt.Errorf("listing pods' containers: %w", err)
	}
	out := make(map[string]podmanContainer, len(list))
	for _, c := range list {
		out[c.ID] = c
	}
	return out, nil
}

// podmanDigests are the digests in use of a Podman container's image: the
// one Podman records for it (the digest of its first pull: a manifest
// list's or the image's own manifest's), and every other digest it knows
// the image by, one of which is the image's own manifest. Podman pairs
// every name of an image with every digest, so RepoDigests cannot say which
// digest came from which repository; the check treats them as one image.
// Nothing is known of an image never pulled from img's repository.
func (l *listing) podmanDigests(ctx context.Context, imageID string, repoDigests []string, img registries.Image) (string, []string, error) {
	var all []string
	for _, rd := range repoDigests {
		if r, err := registries.ParseImage(rd); err == nil && r.Name() == img.Name() && !slices.Contains(all, r.Digest) {
			all = append(all, r.Digest)
		}
	}
	if len(all) == 0 {
		return "", nil, nil
	}
	d, ok := l.digests[imageID]
	if !ok {
		var in struct {
			Digest string `json:"Digest"`
		}
		if err := l.libpod(ctx, "/images/"+url.PathEscape(strings.TrimPrefix(imageID, "sha256:"))+"/json", &in); err != nil {
			return "", nil, fmt.Errorf("inspecting image %s: %w", shortID(imageID), err)
		}
		if l.digests == nil {
			l.digests = map[string]string{}
		}
		d = in.Digest
		l.digests[imageID] = d
	}
	if !slices.Contains(all, d) {
		d = all[0]
	}
	return d, slices.DeleteFunc(all, func(s string) bool { return s == d }), nil
}

// isPodmanLocal says whether Podman names img as a local image: it puts
// images it did not pull under localhost/.
func isPodmanLocal(img registries.Image) bool {
	return img.Host == "localhost"
}
