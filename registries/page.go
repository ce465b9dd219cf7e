package registries

import "strings"

// PageURL is the web page of an image's repository on its registry, for the
// dashboard's links; "" when the registry has no known page.
func PageURL(img Image) string {
	repo := img.Repository
	switch host := strings.ToLower(img.Host); {
	case host == DockerHub:
		if name, ok := strings.CutPrefix(repo, "library/"); ok {
			return "https://hub.docker.com/_/" + name
		}
		return "https://hub.docker.com/r/" + repo
	case host == "ghcr.io":
		return "https://" + host + "/" + repo
	case host == "quay.io":
		return "https://quay.io/repository/" + repo
	case host == "lscr.io":
		if name, ok := strings.CutPrefix(repo, "linuxserver/"); ok {
			return "https://docs.linuxserver.io/images/docker-" + name
		}
	case host == "public.ecr.aws":
		return "https://gallery.ecr.aws/" + repo
	case host == "gcr.io", strings.HasSuffix(host, ".gcr.io"), strings.HasSuffix(host, "-docker.pkg.dev"):
		return "https://" + host + "/" + repo
	}
	return ""
}
