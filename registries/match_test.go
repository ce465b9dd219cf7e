package registries_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/registries"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// matchSets returns a Set of the defaults only, and one holding the defaults
// plus a configured instance of every kind that serves hosts of its own.
// Nothing goes on the wire: Open fetches no token.
func matchSets(t *testing.T) (defaults, full *registries.Set) {
	t.Helper()
	cat := registries.DefaultCatalog()
	defaults, err := registries.NewSet(cat, nil, localOptions())
	if err != nil {
		t.Fatalf("NewSet(defaults): %v", err)
	}
	file, ui := registries.SourceFile, registries.SourceUI
	full, err = registries.NewSet(cat, []registries.Config{
		{Kind: "custom", Name: "shpcr", Source: file, Values: registries.Values{"url": "http://reg.example.com:5000", "login": "seller", "password": "pw"}},
		{Kind: "custom", Name: "local", Source: file, Values: registries.Values{"url": "http://127.0.0.1:5000"}},
		{Kind: "gitlab", Name: "main", Source: file, Values: registries.Values{"url": "https://registry.gitlab.example.com", "authurl": "https://gitlab.example.com", "token": "glpat-x"}},
		{Kind: "gitea", Name: "main", Source: file, Values: registries.Values{"url": "https://gitea.example.com", "login": "admin", "password": "pw"}},
		{Kind: "forgejo", Name: "codeberg", Source: ui, Values: registries.Values{"url": "https://codeberg.org", "login": "me", "password": "pw"}},
		{Kind: "acr", Name: "main", Source: file, Values: registries.Values{"clientid": "11111111-2222-3333-4444-555555555555", "clientsecret": "s"}},
		{Kind: "ecr", Name: "prod", Source: file, Values: registries.Values{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE", "secretaccesskey": "s"}},
		{Kind: "lscr", Name: "main", Source: file, Values: registries.Values{"username": "octocat", "token": "ghp_x"}},
		{Kind: "hub", Name: "mine", Source: file, Values: registries.Values{"login": "johndoe", "password": "dckr_pat_x"}},
		// The kinds of issue 16, with regional hosts: an instance narrowed
		// to a region is listed after one that is not, and still wins its
		// region's hosts.
		{Kind: "ocir", Name: "main", Source: file, Values: registries.Values{"namespace": "axaxnpcrorw5", "username": "jane@example.com", "token": "t"}},
		{Kind: "ocir", Name: "zz-ashburn", Source: file, Values: registries.Values{"region": "us-ashburn-1", "namespace": "axaxnpcrorw5", "username": "jane@example.com", "token": "t"}},
		{Kind: "alicr", Name: "personal", Source: file, Values: registries.Values{"login": "acme", "password": "pw"}},
		{Kind: "alicr", Name: "acme", Source: file, Values: registries.Values{"instance": "acme", "region": "cn-hangzhou", "login": "acme", "password": "pw"}},
		{Kind: "scaleway", Name: "main", Source: file, Values: registries.Values{"secretkey": "s"}},
		{Kind: "scaleway", Name: "waw", Source: ui, Values: registries.Values{"region": "pl-waw", "secretkey": "s"}},
		{Kind: "icr", Name: "main", Source: file, Values: registries.Values{"apikey": "k"}},
		{Kind: "jfrog", Name: "acme", Source: file, Values: registries.Values{"url": "https://acme.jfrog.io", "login": "jane", "password": "pw"}},
		{Kind: "jfrog", Name: "onprem", Source: file, Values: registries.Values{"url": "https://artifactory.example.com/artifactory/api/docker/docker-local"}},
		{Kind: "docr", Name: "main", Source: file, Values: registries.Values{"token": "dop_v1_x"}},
		{Kind: "dhi", Name: "main", Source: file, Values: registries.Values{"login": "johndoe", "password": "dckr_pat_x"}},
		{Kind: "harbor", Name: "main", Source: file, Values: registries.Values{"url": "https://harbor.example.com", "login": "robot$library+tagwatch", "password": "s"}},
		{Kind: "nexus", Name: "main", Source: file, Values: registries.Values{"url": "https://nexus.example.com:8082", "ports": "8083", "login": "tagwatch", "password": "pw"}},
		{Kind: "proget", Name: "main", Source: file, Values: registries.Values{"url": "https://proget.example.com", "apikey": "k"}},
		{Kind: "linode", Name: "main", Source: file, Values: registries.Values{"url": "https://registry.linode.example.com", "login": "tagwatch", "password": "t"}},
	}, localOptions())
	if err != nil {
		t.Fatalf("NewSet(full): %v", err)
	}
	return defaults, full
}

func TestMatchResolve(t *testing.T) {
	defaults, full := matchSets(t)
	const (
		def  = registries.SourceDefault
		file = registries.SourceFile
		ui   = registries.SourceUI
		impl = registries.SourceImplicit
	)
	tests := []struct {
		defaultsOnly bool
		ref          string
		want         string // normalized String()
		id           string // instance ID
		source       registries.Source
		tag, digest  string // checked when set
	}{
		// Docker Hub: short names, the docker.io spellings, a configured hub
		// before hub.public.
		{defaultsOnly: true, ref: "nginx", want: "docker.io/library/nginx:latest", id: "hub.public", source: def, tag: "latest"},
		{ref: "nginx", want: "docker.io/library/nginx:latest", id: "hub.mine", source: file},
		{ref: "docker.io/nginx:1.25", want: "docker.io/library/nginx:1.25", id: "hub.mine", source: file, tag: "1.25"},
		{ref: "index.docker.io/library/nginx", want: "docker.io/library/nginx:latest", id: "hub.mine", source: file},
		{defaultsOnly: true, ref: "docker.io/library/nginx:1.27-alpine", want: "docker.io/library/nginx:1.27-alpine", id: "hub.public", source: def},
		{ref: "user/app", want: "docker.io/user/app:latest", id: "hub.mine", source: file},
		{ref: "  library/redis:7.4  ", want: "docker.io/library/redis:7.4", id: "hub.mine", source: file},
		{ref: "registry-1.docker.io/library/redis:7", want: "docker.io/library/redis:7", id: "hub.mine", source: file},
		// GHCR, LSCR (configured only), Quay, Google.
		{ref: "ghcr.io/o/r:tag", want: "ghcr.io/o/r:tag", id: "ghcr.public", source: def},
		{ref: "lscr.io/linuxserver/sonarr", want: "lscr.io/linuxserver/sonarr:latest", id: "lscr.main", source: file},
		{defaultsOnly: true, ref: "lscr.io/linuxserver/sonarr:4.0.0", want: "lscr.io/linuxserver/sonarr:4.0.0", id: "custom.lscr.io", source: impl},
		{ref: "quay.io/prometheus/node-exporter:v1.8.2", want: "quay.io/prometheus/node-exporter:v1.8.2", id: "quay.public", source: def},
		{ref: "gcr.io/distroless/static:nonroot", want: "gcr.io/distroless/static:nonroot", id: "gcr.public", source: def},
		{ref: "eu.gcr.io/my-project/app:1", want: "eu.gcr.io/my-project/app:1", id: "gcr.public", source: def},
		{ref: "europe-west1-docker.pkg.dev/p/r/i:1", want: "europe-west1-docker.pkg.dev/p/r/i:1", id: "gcr.public", source: def},
		// ECR: a configured region serves its region only; the anonymous
		// default takes every other private registry and public.ecr.aws.
		{ref: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", want: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", id: "ecr.prod", source: file},
		{ref: "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com/team/app:1", want: "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com/team/app:1", id: "ecr.prod", source: file},
		{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", want: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", id: "ecr.public", source: def},
		{ref: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", want: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:latest", id: "ecr.public", source: def},
		{defaultsOnly: true, ref: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", want: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", id: "ecr.public", source: def},
		{ref: "public.ecr.aws/nginx/nginx:1.27", want: "public.ecr.aws/nginx/nginx:1.27", id: "ecr.public", source: def},
		{ref: "12345.dkr.ecr.eu-west-1.amazonaws.com/app", want: "12345.dkr.ecr.eu-west-1.amazonaws.com/app:latest", id: "custom.12345.dkr.ecr.eu-west-1.amazonaws.com", source: impl},
		// ACR, any case.
		{ref: "myreg.azurecr.io/team/app:2", want: "myreg.azurecr.io/team/app:2", id: "acr.main", source: file},
		{ref: "MYREG.AZURECR.IO/team/app:2", want: "myreg.azurecr.io/team/app:2", id: "acr.main", source: file},
		{defaultsOnly: true, ref: "myreg.azurecr.io/team/app", want: "myreg.azurecr.io/team/app:latest", id: "custom.myreg.azurecr.io", source: impl},
		// Kinds with a url serve exactly that host and port.
		{ref: "reg.example.com:5000/team/app:1.0", want: "reg.example.com:5000/team/app:1.0", id: "custom.shpcr", source: file},
		{ref: "REG.Example.COM:5000/team/app", want: "reg.example.com:5000/team/app:latest", id: "custom.shpcr", source: file},
		{ref: "reg.example.com:5001/team/app", want: "reg.example.com:5001/team/app:latest", id: "custom.reg.example.com:5001", source: impl},
		{ref: "reg.example.com/team/app", want: "reg.example.com/team/app:latest", id: "custom.reg.example.com", source: impl},
		{ref: "127.0.0.1:5000/team/app:3", want: "127.0.0.1:5000/team/app:3", id: "custom.local", source: file},
		{ref: "127.0.0.1:5001/team/app", want: "127.0.0.1:5001/team/app:latest", id: "custom.127.0.0.1:5001", source: impl},
		{ref: "localhost:5000/x", want: "localhost:5000/x:latest", id: "custom.localhost:5000", source: impl},
		{ref: "[::1]:5000/x:1", want: "[::1]:5000/x:1", id: "custom.[::1]:5000", source: impl},
		{ref: "registry.gitlab.example.com/group/project/image:v1", want: "registry.gitlab.example.com/group/project/image:v1", id: "gitlab.main", source: file},
		{ref: "gitea.example.com/owner/app:1.2", want: "gitea.example.com/owner/app:1.2", id: "gitea.main", source: file},
		{ref: "codeberg.org/owner/app", want: "codeberg.org/owner/app:latest", id: "forgejo.codeberg", source: ui},
		{defaultsOnly: true, ref: "codeberg.org/forgejo/forgejo:11", want: "codeberg.org/forgejo/forgejo:11", id: "codeberg.public", source: def},
		// The kinds of issue 16 on real-looking hosts. Anonymous defaults:
		{ref: "mcr.microsoft.com/dotnet/runtime:8.0", want: "mcr.microsoft.com/dotnet/runtime:8.0", id: "mcr.public", source: def},
		{defaultsOnly: true, ref: "mcr.microsoft.com/mssql/server:2022-latest", want: "mcr.microsoft.com/mssql/server:2022-latest", id: "mcr.public", source: def},
		{ref: "registry.k8s.io/ingress-nginx/controller:v1.11.2", want: "registry.k8s.io/ingress-nginx/controller:v1.11.2", id: "k8s.public", source: def},
		{ref: "k8s.gcr.io/pause:3.9", want: "k8s.gcr.io/pause:3.9", id: "gcr.public", source: def},
		{ref: "docker.elastic.co/elasticsearch/elasticsearch:8.15.0", want: "docker.elastic.co/elasticsearch/elasticsearch:8.15.0", id: "elastic.public", source: def},
		{ref: "oci.trueforge.org/truecharts/jellyfin:10.9.11", want: "oci.trueforge.org/truecharts/jellyfin:10.9.11", id: "trueforge.public", source: def},
		// OCIR: both host forms; a region's instance wins its region.
		{ref: "fra.ocir.io/axaxnpcrorw5/app:1.0", want: "fra.ocir.io/axaxnpcrorw5/app:1.0", id: "ocir.main", source: file},
		{ref: "ocir.eu-frankfurt-1.oci.oraclecloud.com/axaxnpcrorw5/app:1.0", want: "ocir.eu-frankfurt-1.oci.oraclecloud.com/axaxnpcrorw5/app:1.0", id: "ocir.main", source: file},
		{ref: "iad.ocir.io/axaxnpcrorw5/app:1.0", want: "iad.ocir.io/axaxnpcrorw5/app:1.0", id: "ocir.zz-ashburn", source: file},
		{ref: "ocir.us-ashburn-1.oci.oraclecloud.com/axaxnpcrorw5/app", want: "ocir.us-ashburn-1.oci.oraclecloud.com/axaxnpcrorw5/app:latest", id: "ocir.zz-ashburn", source: file},
		{defaultsOnly: true, ref: "fra.ocir.io/axaxnpcrorw5/app:1.0", want: "fra.ocir.io/axaxnpcrorw5/app:1.0", id: "custom.fra.ocir.io", source: impl},
		// Alibaba: personal and enterprise editions.
		{ref: "registry.cn-hangzhou.aliyuncs.com/acme/app:2.0", want: "registry.cn-hangzhou.aliyuncs.com/acme/app:2.0", id: "alicr.personal", source: file},
		{ref: "registry-intl.ap-southeast-1.aliyuncs.com/acme/app", want: "registry-intl.ap-southeast-1.aliyuncs.com/acme/app:latest", id: "alicr.personal", source: file},
		{ref: "registry-vpc.cn-shanghai.aliyuncs.com/acme/app:2", want: "registry-vpc.cn-shanghai.aliyuncs.com/acme/app:2", id: "alicr.personal", source: file},
		{ref: "acme-registry.cn-hangzhou.cr.aliyuncs.com/team/app:2.0", want: "acme-registry.cn-hangzhou.cr.aliyuncs.com/team/app:2.0", id: "alicr.acme", source: file},
		{ref: "acme-registry-vpc.cn-hangzhou.cr.aliyuncs.com/team/app:2.0", want: "acme-registry-vpc.cn-hangzhou.cr.aliyuncs.com/team/app:2.0", id: "alicr.acme", source: file},
		{ref: "acme-registry.cn-beijing.cr.aliyuncs.com/team/app:2.0", want: "acme-registry.cn-beijing.cr.aliyuncs.com/team/app:2.0", id: "custom.acme-registry.cn-beijing.cr.aliyuncs.com", source: impl},
		{ref: "other-registry.cn-hangzhou.cr.aliyuncs.com/team/app", want: "other-registry.cn-hangzhou.cr.aliyuncs.com/team/app:latest", id: "custom.other-registry.cn-hangzhou.cr.aliyuncs.com", source: impl},
		// Scaleway: every region, and a region's own instance.
		{ref: "rg.fr-par.scw.cloud/acme/app:1.2.3", want: "rg.fr-par.scw.cloud/acme/app:1.2.3", id: "scaleway.main", source: file},
		{ref: "rg.nl-ams.scw.cloud/acme/app:1.2.3", want: "rg.nl-ams.scw.cloud/acme/app:1.2.3", id: "scaleway.main", source: file},
		{ref: "rg.pl-waw.scw.cloud/acme/app:1.2.3", want: "rg.pl-waw.scw.cloud/acme/app:1.2.3", id: "scaleway.waw", source: ui},
		// IBM: global, regional and private endpoints.
		{ref: "icr.io/acme/app:1", want: "icr.io/acme/app:1", id: "icr.main", source: file},
		{ref: "us.icr.io/acme/app:1", want: "us.icr.io/acme/app:1", id: "icr.main", source: file},
		{ref: "jp2.icr.io/acme/app:1", want: "jp2.icr.io/acme/app:1", id: "icr.main", source: file},
		{ref: "private.de.icr.io/acme/app:1", want: "private.de.icr.io/acme/app:1", id: "icr.main", source: file},
		{ref: "icr.io.example.com/acme/app:1", want: "icr.io.example.com/acme/app:1", id: "custom.icr.io.example.com", source: impl},
		// Fixed hosts.
		{ref: "registry.digitalocean.com/acme/app:1.0.0", want: "registry.digitalocean.com/acme/app:1.0.0", id: "docr.main", source: file},
		{ref: "dhi.io/python:3.13", want: "dhi.io/python:3.13", id: "dhi.main", source: file},
		{defaultsOnly: true, ref: "dhi.io/python:3.13", want: "dhi.io/python:3.13", id: "custom.dhi.io", source: impl},
		// Kinds with a url: JFrog Cloud, an Artifactory API under a path,
		// Harbor, Nexus's connector ports, ProGet, Linode.
		{ref: "acme.jfrog.io/docker-local/app:1.0", want: "acme.jfrog.io/docker-local/app:1.0", id: "jfrog.acme", source: file},
		{ref: "other.jfrog.io/docker-local/app:1.0", want: "other.jfrog.io/docker-local/app:1.0", id: "custom.other.jfrog.io", source: impl},
		{ref: "artifactory.example.com/app:1.0", want: "artifactory.example.com/app:1.0", id: "jfrog.onprem", source: file},
		{ref: "harbor.example.com/library/app:1.0", want: "harbor.example.com/library/app:1.0", id: "harbor.main", source: file},
		{ref: "nexus.example.com:8082/app:1.0", want: "nexus.example.com:8082/app:1.0", id: "nexus.main", source: file},
		{ref: "nexus.example.com:8083/app:1.0", want: "nexus.example.com:8083/app:1.0", id: "nexus.main", source: file},
		{ref: "nexus.example.com:8084/app:1.0", want: "nexus.example.com:8084/app:1.0", id: "custom.nexus.example.com:8084", source: impl},
		{ref: "proget.example.com/docker-feed/app:1.0", want: "proget.example.com/docker-feed/app:1.0", id: "proget.main", source: file},
		{ref: "registry.linode.example.com/team/app:1.0", want: "registry.linode.example.com/team/app:1.0", id: "linode.main", source: file},
		// Pinned references keep both the tag and the digest.
		{ref: "nginx:1.25@" + testDigest, want: "docker.io/library/nginx:1.25@" + testDigest, id: "hub.mine", source: file, tag: "1.25", digest: testDigest},
		{ref: "ghcr.io/o/r:v2@" + testDigest, want: "ghcr.io/o/r:v2@" + testDigest, id: "ghcr.public", source: def, tag: "v2", digest: testDigest},
		{ref: "myreg.azurecr.io/team/app:2@" + testDigest, want: "myreg.azurecr.io/team/app:2@" + testDigest, id: "acr.main", source: file, tag: "2", digest: testDigest},
	}
	if len(tests) < 75 {
		t.Fatalf("only %d references", len(tests))
	}
	for _, tt := range tests {
		set, setName := full, "full"
		if tt.defaultsOnly {
			set, setName = defaults, "defaults"
		}
		t.Run(setName+"/"+tt.ref, func(t *testing.T) {
			img, err := registries.ParseImage(tt.ref)
			if err != nil {
				t.Fatalf("ParseImage(%q): %v", tt.ref, err)
			}
			if got := img.String(); got != tt.want {
				t.Errorf("ParseImage(%q).String() = %q; want %q", tt.ref, got, tt.want)
			}
			if img.Given != tt.ref {
				t.Errorf("Given = %q; want the reference as written", img.Given)
			}
			if tt.tag != "" && img.Tag != tt.tag {
				t.Errorf("Tag = %q; want %q", img.Tag, tt.tag)
			}
			if img.Digest != tt.digest {
				t.Errorf("Digest = %q; want %q", img.Digest, tt.digest)
			}
			in, err := set.Resolve(img)
			if err != nil {
				t.Fatalf("Resolve(%s): %v", img, err)
			}
			if in.ID() != tt.id || in.Source != tt.source {
				t.Errorf("Resolve(%s) = %s (%s); want %s (%s)", img, in.ID(), in.Source, tt.id, tt.source)
			}
			if tt.source == impl {
				if !in.Anonymous() || in.Kind != "custom" || in.Host() != img.Host {
					t.Errorf("implicit instance %s: anonymous %v, kind %s, host %q; want an anonymous custom for %q", in.ID(), in.Anonymous(), in.Kind, in.Host(), img.Host)
				}
			}
		})
	}
}

func TestMatchBadReferences(t *testing.T) {
	tests := []struct{ ref, want string }{
		{"", "empty image reference"},
		{"   ", "empty image reference"},
		{"nginx:", "must specify a tag name"},
		{"ghcr.io/o/r:bad tag", "tag can only contain"},
		{"UPPER/app", "repository can only contain"},
		{"https://ghcr.io/o/r", "without a scheme"},
		{"ghcr.io/o/r@sha256:abc", "bad digest"},
		{"nginx@md5:0123", "bad digest"},
		{"-nginx", `path component "-nginx"`},
		{"ghcr.io//x", `path component ""`},
		{"ghcr.io/o/r/", `path component ""`},
		{"nginx:tag:tag", "repository can only contain"},
	}
	for _, tt := range tests {
		img, err := registries.ParseImage(tt.ref)
		if err == nil {
			t.Errorf("ParseImage(%q) = %s; want an error", tt.ref, img)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseImage(%q) error %q; want it to mention %q", tt.ref, err, tt.want)
		}
	}
}

func TestResolveImplicitReused(t *testing.T) {
	_, full := matchSets(t)
	first, err := full.Resolve(mustParse(t, "reg.example.com:5001/a/b"))
	if err != nil {
		t.Fatal(err)
	}
	// Another repository of the same host, spelled in capitals.
	again, err := full.Resolve(mustParse(t, "REG.EXAMPLE.COM:5001/c/d:1"))
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Errorf("two images of reg.example.com:5001 got two implicit instances; tokens would not be shared")
	}
	other, err := full.Resolve(mustParse(t, "reg.example.com:5002/a/b"))
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Errorf("another port got the same implicit instance")
	}
	// Implicit instances are not among the configured or default ones.
	for _, in := range full.Instances() {
		if in.Source == registries.SourceImplicit {
			t.Errorf("Instances() lists implicit %s", in.ID())
		}
	}
}

func TestResolveConfiguredBeforeDefault(t *testing.T) {
	_, full := matchSets(t)
	ins := full.Instances()
	seenDefault := false
	for _, in := range ins {
		if in.Source == registries.SourceDefault {
			seenDefault = true
		} else if seenDefault {
			t.Errorf("configured %s listed after a default instance", in.ID())
		}
	}
	if _, ok := full.Instance("hub", "public"); !ok {
		t.Errorf("hub.public is gone once another hub instance is configured")
	}
}

func mustParse(t *testing.T, ref string) registries.Image {
	t.Helper()
	img, err := registries.ParseImage(ref)
	if err != nil {
		t.Fatalf("ParseImage(%q): %v", ref, err)
	}
	return img
}

// BenchmarkResolve measures what matching an image to its instance costs
// with an instance of every kind configured (regional patterns included),
// over a mix of hosts: the daemon resolves every image of every cycle.
func BenchmarkResolve(b *testing.B) {
	t := &testing.T{}
	_, full := matchSets(t)
	refs := []string{
		"nginx:1.27", "ghcr.io/o/r:1", "fra.ocir.io/ns/app:1", "acme-registry.cn-hangzhou.cr.aliyuncs.com/t/a:1",
		"rg.pl-waw.scw.cloud/a/b:1", "private.de.icr.io/a/b:1", "mcr.microsoft.com/dotnet/runtime:8.0",
		"registry.k8s.io/pause:3.9", "nexus.example.com:8083/app:1", "artifactory.example.com/app:1",
	}
	imgs := make([]registries.Image, len(refs))
	for i, r := range refs {
		img, err := registries.ParseImage(r)
		if err != nil {
			b.Fatal(err)
		}
		imgs[i] = img
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := full.Resolve(imgs[i%len(imgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(full.Instances())), "instances")
}

// TestResolveRepositories: several instances of a kind on one host, each
// limited to repositories. The longest matching pattern wins, then the
// rule without patterns (configured before default, narrowed before not,
// then by name); an instance with patterns serves nothing outside them.
func TestResolveRepositories(t *testing.T) {
	file, ui := registries.SourceFile, registries.SourceUI
	hub := func(repos string) registries.Values {
		v := registries.Values{"login": "u", "password": "p"}
		if repos != "" {
			v["repositories"] = repos
		}
		return v
	}
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{
		{Kind: "hub", Name: "work", Source: file, Values: hub("acmecorp/*")},
		{Kind: "hub", Name: "team", Source: ui, Values: hub("acmecorp/team/**")},
		{Kind: "hub", Name: "api", Source: file, Values: hub("acmecorp/api, acmecorp/api-*")},
		{Kind: "hub", Name: "b2", Source: file, Values: hub("shared/*")},
		{Kind: "hub", Name: "b1", Source: file, Values: hub("shared/*")},
		{Kind: "ghcr", Name: "acme", Source: file, Values: registries.Values{"username": "u", "token": "t", "repositories": "acme/**"}},
		{Kind: "custom", Name: "a", Source: file, Values: registries.Values{"url": "http://reg.example.com:5000", "login": "a", "password": "p", "repositories": "team-a/**"}},
		{Kind: "custom", Name: "b", Source: file, Values: registries.Values{"url": "http://reg.example.com:5000", "login": "b", "password": "p", "repositories": "team-b/*"}},
		{Kind: "ocir", Name: "main", Source: file, Values: registries.Values{"namespace": "ns", "username": "u", "token": "t", "repositories": "ns/app"}},
		{Kind: "ocir", Name: "fra", Source: file, Values: registries.Values{"region": "fra", "namespace": "ns", "username": "u", "token": "t"}},
	}, localOptions())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ ref, id string }{
		{"acmecorp/web:1", "hub.work"},                // acmecorp/* (10)
		{"docker.io/acmecorp/team/app:1", "hub.team"}, // acmecorp/team/** (16); hub.work's * stops at one level
		{"acmecorp/team:1", "hub.team"},               // ** matches no segment too (16 > 10)
		{"acmecorp/api:2", "hub.api"},                 // acmecorp/api (12) beats acmecorp/* (10)
		{"acmecorp/api-gateway:2", "hub.api"},         // acmecorp/api-* (14)
		{"shared/tool:1", "hub.b1"},                   // a tie: by name
		{"nginx:1.27", "hub.public"},                  // library/nginx: no pattern matches, the default serves it
		{"johndoe/tool:1", "hub.public"},              //
		{"ghcr.io/acme/app:1", "ghcr.acme"},           //
		{"ghcr.io/other/app:1", "ghcr.public"},        // outside ghcr.acme's patterns
		{"reg.example.com:5000/team-a/x/y:1", "custom.a"},
		{"reg.example.com:5000/team-b/x:1", "custom.b"},
		{"reg.example.com:5000/other/x:1", "custom.reg.example.com:5000"}, // served by no pattern: anonymous, implicit
		{"fra.ocir.io/ns/app:1", "ocir.main"},                             // a pattern wins over a region
		{"fra.ocir.io/ns/other:1", "ocir.fra"},
	}
	for _, tc := range tests {
		img := mustParse(t, tc.ref)
		in, err := set.Resolve(img)
		if err != nil {
			t.Errorf("Resolve(%s): %v", tc.ref, err)
			continue
		}
		if in.ID() != tc.id {
			t.Errorf("Resolve(%s) = %s, want %s", tc.ref, in.ID(), tc.id)
		}
		// The same answer the second time, from the host's cache.
		if again, _ := set.Resolve(img); again != in {
			t.Errorf("Resolve(%s) changed its mind: %s", tc.ref, again.ID())
		}
	}
	// The implicit instance of a host is made once, and its repositories
	// are the host's the patterns leave out.
	a, _ := set.Resolve(mustParse(t, "reg.example.com:5000/other/x:1"))
	b, _ := set.Resolve(mustParse(t, "reg.example.com:5000/more/y:1"))
	if a != b || a.Source != registries.SourceImplicit || !a.Anonymous() {
		t.Errorf("implicit instances: %s (%s), %s", a.ID(), a.Source, b.ID())
	}
	if in, _ := set.Instance("hub", "api"); in.Repositories().String() != "acmecorp/api, acmecorp/api-*" {
		t.Errorf("hub.api's repositories = %q", in.Repositories())
	}
}

// TestPickNamed: an image that names its instance gets that one, or an
// error that names the image and the instance and says what to do.
func TestPickNamed(t *testing.T) {
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{
		{Kind: "hub", Name: "work", Source: registries.SourceFile, Values: registries.Values{"login": "u", "password": "p", "repositories": "acmecorp/*, acmecorp/team/**"}},
		{Kind: "custom", Name: "lan", Source: registries.SourceUI, Values: registries.Values{"url": "http://192.168.1.10:5000"}},
	}, localOptions())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref, named string
		id         string // the instance picked, or…
		err        string // …the error
	}{
		{"acmecorp/web:1", "hub.work", "hub.work", ""},
		// A named default beats the patterns that would otherwise pick hub.work.
		{"acmecorp/web:1", "hub.public", "hub.public", ""},
		{"192.168.1.10:5000/app:1", "custom.lan", "custom.lan", ""},
		{"nginx:1.27", "hub.work", "", "nginx:1.27 names the registry hub.work, which serves only acmecorp/*, acmecorp/team/** on docker.io. Add library/nginx to its repositories, or name another instance."},
		{"ghcr.io/acmecorp/web:1", "hub.work", "", "ghcr.io/acmecorp/web:1 names the registry hub.work, which does not serve ghcr.io (it serves docker.io). Name an instance of ghcr.io, or none."},
		{"ghcr.io/acmecorp/web:1", "custom.lan", "", "ghcr.io/acmecorp/web:1 names the registry custom.lan, which does not serve ghcr.io (it serves 192.168.1.10:5000). Name an instance of ghcr.io, or none."},
		{"acmecorp/web:1", "hub.home", "", "acmecorp/web:1 names the registry hub.home, which does not exist. Add it (Settings → Registries, or the config file) or name another."},
		{"acmecorp/web:1", "nope.x", "", "acmecorp/web:1 names the registry nope.x, which does not exist. Add it (Settings → Registries, or the config file) or name another."},
	}
	for _, tc := range tests {
		in, err := set.Pick(mustParse(t, tc.ref), tc.named)
		switch {
		case tc.err != "":
			var ne *registries.NamedError
			if err == nil || err.Error() != tc.err || !errors.As(err, &ne) {
				t.Errorf("Pick(%s, %s) = %v, %v; want the error\n%s", tc.ref, tc.named, in, err, tc.err)
			}
			if p := registries.Explain(err); p.Reason != tc.err || p.Class != registries.ClassTagwatch {
				t.Errorf("Pick(%s, %s): explained as %+v", tc.ref, tc.named, p)
			}
		case err != nil || in.ID() != tc.id:
			t.Errorf("Pick(%s, %s) = %v, %v; want %s", tc.ref, tc.named, in, err, tc.id)
		}
	}
}

func TestParseID(t *testing.T) {
	for _, id := range []string{"hub.work", "custom.my-lan_2", "gcr.public"} {
		if _, _, err := registries.ParseID(id); err != nil {
			t.Errorf("ParseID(%q): %v", id, err)
		}
	}
	for id, want := range map[string]string{
		"hub":          `"hub" is not a registry instance: write kind.name, e.g. hub.work`,
		"hub.":         `"hub." is not a registry instance: write kind.name, e.g. hub.work`,
		".work":        `".work" is not a registry instance: write kind.name, e.g. hub.work`,
		"Hub.work":     `"Hub.work" is not a registry instance: its kind "Hub" may hold only a-z and 0-9`,
		"hub.Work":     `"hub.Work" is not a registry instance: its name "Work" may hold only a-z, 0-9, - and _`,
		"hub.work.two": `"hub.work.two" is not a registry instance: its name "work.two" may hold only a-z, 0-9, - and _`,
	} {
		if _, _, err := registries.ParseID(id); err == nil || err.Error() != want {
			t.Errorf("ParseID(%q) = %v; want %s", id, err, want)
		}
	}
}

// BenchmarkResolveRepositories is BenchmarkResolve where the hosts have
// several instances each limited to repositories: resolution then matches
// the image's repository against every serving instance's patterns.
func BenchmarkResolveRepositories(b *testing.B) {
	var configs []registries.Config
	for i := range 8 {
		configs = append(configs, registries.Config{Kind: "hub", Name: fmt.Sprintf("org%d", i), Source: registries.SourceFile,
			Values: registries.Values{"login": "u", "password": "p", "repositories": fmt.Sprintf("org%d/*, org%d/team/**, org%d-labs/app-?", i, i, i)}})
	}
	set, err := registries.NewSet(registries.DefaultCatalog(), configs, localOptions())
	if err != nil {
		b.Fatal(err)
	}
	refs := []string{"org3/app:1", "org7/team/a/b:1", "nginx:1.27", "org5-labs/app-x:1", "johndoe/tool:1"}
	imgs := make([]registries.Image, len(refs))
	for i, r := range refs {
		if imgs[i], err = registries.ParseImage(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := set.Resolve(imgs[i%len(imgs)]); err != nil {
			b.Fatal(err)
		}
	}
}
