package watcher_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// dockerFixture is a registry, images pulled from it into a real engine,
// and containers created (not started) from them.
type dockerFixture struct {
	host string
	// prefix makes names unique: the engine may be shared with other
	// tests, whose containers List also sees.
	prefix string
	ids    map[string]string // container name → ID

	appRef, armRef, pinRef, movedRef, localRef      string
	appDigest, armDigest, pinDigest, movedOldDigest string
	appID                                           string
}

func (f *dockerFixture) name(s string) string { return f.prefix + "-" + s }

func newDockerFixture(t *testing.T) *dockerFixture {
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{})
	b := make([]byte, 4)
	rand.Read(b)
	f := &dockerFixture{host: host, prefix: "tw" + hex.EncodeToString(b), ids: map[string]string{}}
	// Seeds carry the prefix too: an image's ID is its content, and an
	// image another test also pulled would have names this test did not give.
	img := func(seed string) v1.Image { return regtest.Image(t, f.prefix+"-"+seed) }

	f.appRef = reg.Ref("team/app:1.0.0")
	f.appDigest = reg.Push(t, "team/app:1.0.0", img("app")).String()
	f.appID = dockertest.Pull(t, host, f.appRef)

	arm, err := withPlatform(img("arm"), v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"})
	if err != nil {
		t.Fatal(err)
	}
	f.armRef = reg.Ref("team/arm:2.0")
	f.armDigest = reg.Push(t, "team/arm:2.0", arm).String()
	dockertest.Pull(t, host, f.armRef)

	f.pinDigest = reg.Push(t, "team/pin:1", img("pin")).String()
	f.pinRef = reg.Ref("team/pin:1") + "@" + f.pinDigest
	dockertest.Pull(t, host, f.pinRef)

	// Pulled by digest only, the image has no name to check.
	anonDigest := reg.Push(t, "team/anon:1", img("anon"))
	anonID := dockertest.Pull(t, host, reg.Ref("team/anon")+"@"+anonDigest.String())

	f.localRef = "tagwatch-test/" + f.prefix + ":dev"
	importImage(t, host, f.localRef)

	f.create(t, "web", f.appRef, map[string]string{
		watcher.LabelEnable:       "true",
		watcher.LabelInclude:      `^\d+\.\d+\.\d+$`,
		watcher.LabelPolicy:       "minor",
		watcher.LabelDigest:       "true",
		watcher.LabelDisplayName:  "Web",
		watcher.LabelLinkTemplate: "https://example.com/{{.LatestTag}}",
	})
	f.create(t, "web2", f.appRef, nil)
	f.create(t, "off", f.appRef, map[string]string{watcher.LabelEnable: "false"})
	f.create(t, "on", f.appRef, map[string]string{watcher.LabelEnable: "true"})
	f.create(t, "bad", f.appRef, map[string]string{watcher.LabelInclude: "[", watcher.LabelPolicy: "sideways"})
	f.create(t, "byid", f.appID, nil)
	f.create(t, "anon", anonID, nil)
	f.create(t, "arm", f.armRef, nil)
	f.create(t, "pin", f.pinRef, nil)
	f.create(t, "local", f.localRef, nil)

	// A container whose tag moved after it was created: it still runs
	// the old image.
	f.movedRef = reg.Ref("team/moved:1.0")
	f.movedOldDigest = reg.Push(t, "team/moved:1.0", img("old")).String()
	dockertest.Pull(t, host, f.movedRef)
	f.create(t, "moved", f.movedRef, nil)
	reg.Push(t, "team/moved:1.0", img("new"))
	dockertest.Pull(t, host, f.movedRef)
	return f
}

func (f *dockerFixture) create(t *testing.T, name, ref string, labels map[string]string) {
	f.ids[f.name(name)] = dockertest.Create(t, f.host, f.name(name), ref, labels)
}

// listEngine lists src within a minute: what it found, and the containers
// and services it left out with their errors (any other error fails the test).
func listEngine(t *testing.T, src *watcher.DockerSource) ([]watcher.Found, watcher.ContainerErrors) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all, err := src.List(ctx)
	var bad watcher.ContainerErrors
	if err != nil && !errors.As(err, &bad) {
		t.Fatalf("List: %v", err)
	}
	return all, bad
}

// list runs src.List and keeps this fixture's containers: found by
// container name, and the containers left out with their errors.
func (f *dockerFixture) list(t *testing.T, src *watcher.DockerSource) (map[string]watcher.Found, map[string]error) {
	t.Helper()
	all, bad := listEngine(t, src)
	found := map[string]watcher.Found{}
	for _, fd := range all {
		if _, ok := f.ids[fd.Location.Container]; ok {
			found[strings.TrimPrefix(fd.Location.Container, f.prefix+"-")] = fd
		}
	}
	left := map[string]error{}
	for _, ce := range bad {
		if _, ok := f.ids[ce.Container]; ok {
			left[strings.TrimPrefix(ce.Container, f.prefix+"-")] = ce
		}
	}
	return found, left
}

func withPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cf)
}

// importImage makes an image the way a local build does: never pulled,
// so without RepoDigests.
func importImage(t *testing.T, host, ref string) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	cli := dockertest.Client(t, host)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &layer, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	t.Cleanup(func() { dockertest.RemoveImage(t, host, ref) })
}

func TestDockerSource(t *testing.T) {
	f := newDockerFixture(t)
	proxy := dockertest.NewProxy(t, f.host)
	src := &watcher.DockerSource{Watcher: "local", Host: proxy.Host, WatchByDefault: true, WatchStopped: true, Platform: amd64}
	t.Cleanup(func() { src.Close() })
	found, left := f.list(t, src)

	t.Run("labels", func(t *testing.T) {
		web, ok := found["web"]
		if !ok {
			t.Fatalf("web not found; found %v, left out %v", keys(found), left)
		}
		want := store.Location{Watcher: "local", Container: f.name("web"), ContainerID: f.ids[f.name("web")], Kind: "docker", Place: f.name("web")}
		if web.Location != want {
			t.Errorf("location = %+v, want %+v", web.Location, want)
		}
		tg := web.Target
		if tg.Image.Given != f.appRef || tg.Image.Repository != "team/app" || tg.Image.Tag != "1.0.0" {
			t.Errorf("image = %+v, want %s", tg.Image, f.appRef)
		}
		if tg.Digest != f.appDigest || tg.Pinned {
			t.Errorf("digest, pinned = %s, %v; want %s (pulled), false", tg.Digest, tg.Pinned, f.appDigest)
		}
		if tg.Platform.String() != "linux/amd64" {
			t.Errorf("platform = %s", tg.Platform)
		}
		o := tg.Options
		if o.Include == nil || o.Include.String() != `^\d+\.\d+\.\d+$` || o.Policy != watcher.UpdateMinor || o.Digest == nil || !*o.Digest {
			t.Errorf("options = %+v", o)
		}
		if web.DisplayName != "Web" || web.LinkTemplate != "https://example.com/{{.LatestTag}}" {
			t.Errorf("display, link = %q, %q", web.DisplayName, web.LinkTemplate)
		}
	})

	t.Run("enable", func(t *testing.T) {
		for _, n := range []string{"web2", "on"} {
			if fd, ok := found[n]; !ok || fd.Target.Digest != f.appDigest {
				t.Errorf("%s: found %v with digest %q, want %s", n, ok, fd.Target.Digest, f.appDigest)
			}
		}
		if _, ok := found["off"]; ok {
			t.Errorf("off (tagwatch.enable=false) was listed")
		}
	})

	t.Run("bad labels", func(t *testing.T) {
		err := left["bad"]
		if err == nil {
			t.Fatalf("bad: no error; found %v", keys(found))
		}
		for _, want := range []string{"watcher local", "container " + f.name("bad"), "tagwatch.tag.include", "tagwatch.tag.policy"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if _, ok := found["bad"]; ok {
			t.Errorf("bad was listed too")
		}
	})

	t.Run("image ID", func(t *testing.T) {
		if fd := found["byid"]; fd.Target.Image.Given != f.appRef || fd.Target.Digest != f.appDigest {
			t.Errorf("byid = %+v, want %s at %s", fd.Target, f.appRef, f.appDigest)
		}
		if err := left["anon"]; err == nil || !strings.Contains(err.Error(), "no name") {
			t.Errorf("anon: error %v, want one saying its image has no name", err)
		}
	})

	t.Run("tag moved", func(t *testing.T) {
		fd, ok := found["moved"]
		if !ok {
			t.Fatalf("moved not found; left out: %v", left["moved"])
		}
		if fd.Target.Image.Given != f.movedRef || fd.Target.Digest != f.movedOldDigest {
			t.Errorf("moved = %s at %s, want %s at %s (the image it runs)", fd.Target.Image.Given, fd.Target.Digest, f.movedRef, f.movedOldDigest)
		}
	})

	t.Run("platform", func(t *testing.T) {
		fd := found["arm"]
		if want := (v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}); !fd.Target.Platform.Equals(want) {
			t.Errorf("arm platform = %q, want %q", fd.Target.Platform.String(), want.String())
		}
		if fd.Target.Digest != f.armDigest {
			t.Errorf("arm digest = %s, want %s", fd.Target.Digest, f.armDigest)
		}
	})

	t.Run("pinned", func(t *testing.T) {
		fd := found["pin"]
		if !fd.Target.Pinned || fd.Target.Digest != f.pinDigest || fd.Target.Image.Repository != "team/pin" {
			t.Errorf("pin = %+v, want pinned at %s", fd.Target, f.pinDigest)
		}
	})

	t.Run("local build", func(t *testing.T) {
		fd, ok := found["local"]
		want, _ := registries.ParseImage(f.localRef)
		if !ok || fd.Target.Image.String() != want.String() || fd.Target.Digest != "" {
			t.Errorf("local = %v %+v, want %s without digest", ok, fd.Target, want)
		}
	})

	t.Run("one inspect per image", func(t *testing.T) {
		n := 0
		for _, r := range proxy.Requests() {
			if strings.Contains(r, "/images/"+f.appID+"/json") {
				n++
			}
		}
		// web, web2, on and byid run it (off and bad are not inspected).
		if n != 1 {
			t.Errorf("%s inspected %d times, want 1", f.appID, n)
		}
	})

	t.Run("WatchByDefault=false", func(t *testing.T) {
		src := &watcher.DockerSource{Watcher: "local", Host: f.host, WatchStopped: true}
		defer src.Close()
		found, _ := f.list(t, src)
		if got := keys(found); strings.Join(got, " ") != "on web" {
			t.Errorf("found %v, want only the containers labelled tagwatch.enable=true: [on web]", got)
		}
	})

	t.Run("WatchStopped=false", func(t *testing.T) {
		src := &watcher.DockerSource{Watcher: "local", Host: f.host, WatchByDefault: true}
		defer src.Close()
		found, left := f.list(t, src)
		if len(found) > 0 || len(left) > 0 {
			t.Errorf("created containers listed: %v, %v", keys(found), left)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		p := dockertest.NewTLSProxy(t, f.host)
		src := &watcher.DockerSource{Watcher: "nas", Host: p.Host, CAFile: p.CAFile, CertFile: p.CertFile, KeyFile: p.KeyFile,
			WatchByDefault: true, WatchStopped: true}
		defer src.Close()
		found, _ := f.list(t, src)
		if fd := found["web"]; fd.Location.Watcher != "nas" || fd.Target.Digest != f.appDigest {
			t.Errorf("web over TLS = %+v", fd)
		}

		// Without a client certificate the engine refuses: the error says
		// which watcher and host.
		noCert := &watcher.DockerSource{Watcher: "nas", Host: p.Host, CAFile: p.CAFile}
		defer noCert.Close()
		_, err := noCert.List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "watcher nas ("+p.Host+")") {
			t.Errorf("List without a client certificate: %v", err)
		}
	})
}

func TestDockerSourceErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		src  *watcher.DockerSource
		want string
	}{
		{&watcher.DockerSource{Watcher: "nas", Host: "tcp://127.0.0.1:1"}, "watcher nas (tcp://127.0.0.1:1): listing containers"},
		{&watcher.DockerSource{Watcher: "nas", Host: "unix:///nonexistent/docker.sock", CAFile: "ca.pem"}, "tcp://"},
		{&watcher.DockerSource{Watcher: "nas", Host: "tcp://127.0.0.1:1", CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{&watcher.DockerSource{Watcher: "nas", Host: "ssh://nas"}, "watcher nas (ssh://nas)"},
	}
	for _, tt := range tests {
		found, err := tt.src.List(ctx)
		if err == nil || !strings.Contains(err.Error(), tt.want) || found != nil {
			t.Errorf("%s: List = %v, %v; want an error containing %q", tt.src.Host, found, err, tt.want)
		}
		var bad watcher.ContainerErrors
		if errors.As(err, &bad) {
			t.Errorf("%s: a failed listing is reported as ContainerErrors", tt.src.Host)
		}
		tt.src.Close()
	}
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
