package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/watcher"
)

// tagwatch runs the command in-process, as a user would from a shell.
func tagwatch(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, env, &out, &errb)
	return out.String(), errb.String(), code
}

func checkJSON(t *testing.T, env []string, args ...string) ([]watcher.Result, int) {
	t.Helper()
	out, errOut, code := tagwatch(t, env, append([]string{"check", "--json"}, args...)...)
	var rs []watcher.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("check --json printed no JSON array (exit %d): %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	return rs, code
}

// TestCheckEndToEnd pushes tags of several shapes and multi-arch indexes to
// a real registry and reads them back through `tagwatch check --json`.
func TestCheckEndToEnd(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	amd64, arm64 := regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64")

	digests := map[string]string{}
	for _, tag := range []string{"1.0.0", "1.0.1", "1.1.0", "2.0.0-rc1", "1.0.0-alpine", "1.1.0-alpine", "1.2.0-bookworm"} {
		digests[tag] = reg.Push(t, "team/app:"+tag, regtest.Image(t, tag)).String()
	}
	oldIndex := reg.PushIndex(t, "team/app:latest", regtest.Index(t, "v1", amd64, arm64)).String()

	ref := func(s string) string { return reg.Host + "/team/app:" + s }
	tests := []struct {
		name       string
		args       []string
		latestTag  string
		latestDig  string
		update     watcher.UpdateKind
		wantDigest string
	}{
		{"minor from a stable tag; rc and other suffixes ignored", []string{ref("1.0.0")}, "1.1.0", digests["1.1.0"], watcher.UpdateMinor, digests["1.0.0"]},
		{"suffix family kept", []string{ref("1.0.0-alpine")}, "1.1.0-alpine", digests["1.1.0-alpine"], watcher.UpdateMinor, digests["1.0.0-alpine"]},
		{"newest already", []string{ref("1.1.0")}, "1.1.0", digests["1.1.0"], watcher.UpdateNone, digests["1.1.0"]},
		{"latest pinned to the index in use", []string{ref("latest@" + oldIndex)}, "latest", oldIndex, watcher.UpdateNone, oldIndex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, code := checkJSON(t, nil, tt.args...)
			if code != 0 || len(rs) != 1 {
				t.Fatalf("exit %d, %d results: %+v", code, len(rs), rs)
			}
			r := rs[0]
			if r.Error != "" || r.LatestTag != tt.latestTag || r.LatestDigest != tt.latestDig || r.Update != tt.update || r.Digest != tt.wantDigest {
				t.Fatalf("got latestTag=%q latestDigest=%q update=%q digest=%q error=%q\nwant latestTag=%q latestDigest=%q update=%q digest=%q",
					r.LatestTag, r.LatestDigest, r.Update, r.Digest, r.Error, tt.latestTag, tt.latestDig, tt.update, tt.wantDigest)
			}
			if r.Registry != "custom."+reg.Host || r.Reference != tt.args[0] || r.Image != tt.args[0] {
				t.Errorf("registry=%q reference=%q image=%q", r.Registry, r.Reference, r.Image)
			}
		})
	}

	// The arm64 manifest digest an engine reports for a multi-arch pull.
	arm64Digest := platformDigest(t, reg, oldIndex, "arm64")

	// A new image is pushed to latest, changing only amd64.
	onlyAmd := regtest.Index(t, "v2", amd64)
	onlyAmd = appendPlatformFromIndex(t, reg, onlyAmd, oldIndex, "arm64")
	amdOnlyIndex := reg.PushIndex(t, "team/app:latest", onlyAmd).String()
	if amdOnlyIndex == oldIndex {
		t.Fatal("the rebuilt index has the old digest")
	}

	rs, _ := checkJSON(t, nil, "--platform", "linux/arm64", ref("latest@"+oldIndex))
	if rs[0].Update != watcher.UpdateNone || rs[0].LatestDigest != amdOnlyIndex {
		t.Errorf("arm64 unchanged behind a rebuilt index: update=%q latestDigest=%q error=%q; want none and %s", rs[0].Update, rs[0].LatestDigest, rs[0].Error, amdOnlyIndex)
	}
	rs, _ = checkJSON(t, nil, "--platform", "linux/arm64", ref("latest@"+arm64Digest))
	if rs[0].Update != watcher.UpdateNone {
		t.Errorf("pinned to the arm64 manifest, which did not change: update=%q error=%q", rs[0].Update, rs[0].Error)
	}
	rs, _ = checkJSON(t, nil, "--platform", "linux/amd64", ref("latest@"+oldIndex))
	if rs[0].Update != watcher.UpdateDigest {
		t.Errorf("amd64 changed: update=%q error=%q; want digest", rs[0].Update, rs[0].Error)
	}

	// Now every platform changes.
	newIndex := reg.PushIndex(t, "team/app:latest", regtest.Index(t, "v3", amd64, arm64)).String()
	rs, _ = checkJSON(t, nil, "--platform", "linux/arm64", ref("latest@"+oldIndex))
	if rs[0].Update != watcher.UpdateDigest || rs[0].LatestDigest != newIndex || rs[0].Digest != oldIndex {
		t.Errorf("after a new image on latest: update=%q digest=%q latestDigest=%q error=%q; want digest, %s → %s",
			rs[0].Update, rs[0].Digest, rs[0].LatestDigest, rs[0].Error, oldIndex, newIndex)
	}
}

// TestCheckPrivateRegistry is seed 000's registry: e-mail as login, an
// access token as password, images at host/team/product:tag, configured as
// a custom instance.
func TestCheckPrivateRegistry(t *testing.T) {
	const email, token = "seller@example.com", "shpat_3f9d0c1e8b7a"
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{email: token}})
	reg.Push(t, "acme/airstudio:1.0.0", regtest.Image(t, "a"))
	reg.Push(t, "acme/airstudio:1.0.1", regtest.Image(t, "b"))
	reg.Push(t, "acme/airstudio:latest", regtest.Image(t, "b"))

	dir := t.TempDir()
	writeConfig := func(password string) string {
		p := filepath.Join(dir, "config.yml")
		cfg := "registries:\n  custom:\n    shpcr:\n      url: " + reg.URL + "\n      login: " + email + "\n      password: " + password + "\n"
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	img := reg.Host + "/acme/airstudio:1.0.0"

	rs, code := checkJSON(t, nil, "--config", writeConfig(token), img)
	if code != 0 || rs[0].Registry != "custom.shpcr" || rs[0].LatestTag != "1.0.1" || rs[0].Update != watcher.UpdatePatch {
		t.Fatalf("exit %d: %+v", code, rs[0])
	}

	// The token from the environment wins over the file's.
	rs, code = checkJSON(t, []string{"TAGWATCH_REGISTRY_CUSTOM_SHPCR_PASSWORD=wrong"}, "--config", writeConfig(token), img)
	if code != 1 || rs[0].Registry != "custom.shpcr" || !strings.Contains(rs[0].Error, "refused the credentials of custom.shpcr") {
		t.Fatalf("wrong token from the environment: exit %d, %+v", code, rs[0])
	}
	if strings.Contains(rs[0].Error, "wrong") {
		t.Errorf("the error shows the password: %s", rs[0].Error)
	}

	// With no instance for the host, the registry is tried anonymously and
	// the error says what to configure: this one answered over plain HTTP.
	rs, code = checkJSON(t, nil, img)
	if code != 1 || rs[0].Registry != "custom."+reg.Host || !strings.Contains(rs[0].Error, "requires credentials (401). Configure a registry with url: http://"+reg.Host) {
		t.Fatalf("implicit registry: exit %d, %+v", code, rs[0])
	}
	if rs[0].Reference != img {
		t.Errorf("a failed image still reports its reference: %q", rs[0].Reference)
	}
}

func TestCheckBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yml")
	cfg := "registries:\n  custom:\n    shpcr:\n      url: https://shpcr.io\n      login: me@example.com\n  hub:\n    public:\n      password: x\n      auth: eA==\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := tagwatch(t, nil, "check", "--config", p, "nginx")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{
		p + ":3: registries.custom.shpcr.password: must be defined when login is defined",
		p + ":8: registries.hub.public.password: must not be defined when auth is defined",
		p + ":7: registries.hub.public.login: must be defined when password is defined", // missing: the instance's line
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func fetchIndex(t *testing.T, reg *regtest.Registry, digest string) v1.ImageIndex {
	t.Helper()
	d, err := name.NewDigest(reg.Host+"/team/app@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(d, remote.WithTransport(reg.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func platformDescriptor(t *testing.T, idx v1.ImageIndex, arch string) v1.Descriptor {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			return d
		}
	}
	t.Fatalf("no %s manifest in the index", arch)
	return v1.Descriptor{}
}

func platformDigest(t *testing.T, reg *regtest.Registry, index, arch string) string {
	return platformDescriptor(t, fetchIndex(t, reg, index), arch).Digest.String()
}

// appendPlatformFromIndex adds another index's image for arch to idx
// unchanged, as a rebuild that only touched the other platforms would.
func appendPlatformFromIndex(t *testing.T, reg *regtest.Registry, idx v1.ImageIndex, from, arch string) v1.ImageIndex {
	t.Helper()
	src := fetchIndex(t, reg, from)
	desc := platformDescriptor(t, src, arch)
	img, err := src.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: desc.Platform}})
}
