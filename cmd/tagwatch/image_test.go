package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/imagebuild"
	"github.com/tagwatch/tagwatch/internal/regtest"
)

// TestContainerImage builds the image the Dockerfile describes without a
// Docker engine (CI has none that builds): the static binary with go build,
// the final stage's files and metadata with internal/imagebuild. It checks
// the image, pushes it to a real registry, pulls it with a real dockerd and
// runs it: `version`, the refusal to serve on 0.0.0.0 unprotected, and
// `serve` until the image's own HEALTHCHECK says healthy, then a clean stop.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs containers")
	}
	t.Parallel()
	host := dockertest.Host(t)
	cli := dockertest.Client(t, host)

	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stage, err := imagebuild.ParseFinalStage(string(dockerfile))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}

	version := fmt.Sprintf("v0.0.0-imagetest.%d", time.Now().UnixNano())
	binary := buildStatic(t, version)
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the image carries the build machine's CA certificates: %v (apt-get install ca-certificates)", err)
	}
	// What the Dockerfile's build stage leaves for the final stage to copy.
	fromBuild := map[string]imagebuild.File{
		"/out/tagwatch":                      {Data: binary, Mode: 0o755},
		"/out/data":                          {Dir: true},
		"/etc/ssl/certs/ca-certificates.crt": {Data: certs, Mode: 0o644},
	}
	img, err := imagebuild.Build(string(dockerfile), imagebuild.Options{
		Platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Created:  time.Now(),
		Resolve: func(stageName, src string) (imagebuild.File, error) {
			if stageName == "" {
				return contextFile(src)
			}
			if f, ok := fromBuild[src]; ok && stageName == "build" {
				return f, nil
			}
			return imagebuild.File{}, fmt.Errorf("image_test.go does not know what stage %q leaves at %s: teach it", stageName, src)
		},
	})
	if err != nil {
		t.Fatalf("building the Dockerfile's final stage: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	checkImageConfig(t, img, stage)
	checkImageFiles(t, img, binary)
	size := int64(0)
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		size += n
	}
	t.Logf("image: %d layers, %.1f MB compressed, binary %.1f MB", len(layers), float64(size)/1e6, float64(len(binary))/1e6)

	reg := regtest.Start(t, regtest.Options{})
	digest := reg.Push(t, "tagwatch/tagwatch:test", img)
	ref := reg.Host + "/tagwatch/tagwatch:test"
	dockertest.Pull(t, host, ref)

	// version: the binary runs in the image, as the non-root user.
	out, code := runContainer(t, cli, ref, &container.Config{Image: ref, Cmd: []string{"version"}})
	if code != 0 || !strings.HasPrefix(out, "tagwatch "+version+"\n") || !strings.Contains(out, "linux/"+runtime.GOARCH) {
		t.Fatalf("docker run %s version: exit %d, output:\n%s", ref, code, out)
	}

	// The defaults listen on 0.0.0.0 and so refuse to start unprotected.
	out, code = runContainer(t, cli, ref, &container.Config{Image: ref})
	if code != exitUsage || !strings.Contains(out, "without authentication") {
		t.Fatalf("docker run %s with the image's defaults: exit %d, want %d and the refusal; output:\n%s", ref, code, exitUsage, out)
	}

	// serve, as the compose example runs it: healthy by the image's own
	// HEALTHCHECK (checked every 200ms here), state written to the /data
	// volume as user 65532, and a clean exit on docker stop's SIGTERM.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	id := createContainer(t, cli, &container.Config{
		Image:       ref,
		Env:         []string{"TAGWATCH_WEB_ALLOWREMOTE=true", "TAGWATCH_LOG_LEVEL=debug"},
		Healthcheck: &container.HealthConfig{Interval: 200 * time.Millisecond}, // the test command is the image's
	})
	startContainer(t, cli, id)
	var health *container.Health
	for {
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		health = info.State.Health
		if !info.State.Running {
			t.Fatalf("serve exited (%d):\n%s", info.State.ExitCode, containerLogs(t, cli, id))
		}
		if health != nil && health.Status == container.Healthy {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not healthy in time: %+v\n%s", health, containerLogs(t, cli, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last := health.Log[len(health.Log)-1]; last.ExitCode != 0 || !strings.HasPrefix(last.Output, "healthy: http://127.0.0.1:8080/api/v1/healthz") {
		t.Errorf("the healthcheck said %q (exit %d)", last.Output, last.ExitCode)
	}
	timeout := 20
	if err := cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	logs := containerLogs(t, cli, id)
	if info.State.ExitCode != 0 || !strings.Contains(logs, "data=/data/tagwatch.db") || !strings.Contains(logs, "shutting down") {
		t.Errorf("serve after docker stop: exit %d, want 0; logs:\n%s", info.State.ExitCode, logs)
	}
	// The key that encrypts the store's secrets was made beside it, in the
	// volume, private to the image's user.
	if !strings.Contains(logs, "secret_key=/data/tagwatch.db.key") {
		t.Errorf("serve does not say it uses /data/tagwatch.db.key; logs:\n%s", logs)
	}
	checkKeyFile(t, cli, id, "/data/tagwatch.db.key")
	t.Logf("pushed, pulled and ran %s@%s", ref, digest)
}

// checkKeyFile reads a file out of a stopped container: it must be a key
// file (44 characters of base64 and a newline), mode 0600, owned by 65532.
func checkKeyFile(t *testing.T, cli *client.Client, id, path string) {
	t.Helper()
	rc, _, err := cli.CopyFromContainer(context.Background(), id, path)
	if err != nil {
		t.Errorf("no %s in the container: %v", path, err)
		return
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatalf("reading %s out of the container: %v", path, err)
	}
	b, _ := io.ReadAll(tr)
	if h.Uid != 65532 || h.FileInfo().Mode().Perm() != 0o600 || len(b) != 45 {
		t.Errorf("%s: uid %d, mode %v, %d bytes; want 65532, 0600, a key", path, h.Uid, h.FileInfo().Mode().Perm(), len(b))
	}
}

// buildStatic builds the binary as the Dockerfile does.
func buildStatic(t *testing.T, version string) []byte {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds the image's binary: %v", err)
	}
	out := filepath.Join(t.TempDir(), "tagwatch")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contextFile is a file of the build context (the repository root), with
// its mode, as COPY takes it.
func contextFile(src string) (imagebuild.File, error) {
	p := filepath.Join("../..", filepath.FromSlash(src))
	fi, err := os.Stat(p)
	if err != nil {
		return imagebuild.File{}, err
	}
	if fi.IsDir() {
		return imagebuild.File{}, errors.New("copying a context directory: not supported by image_test.go")
	}
	b, err := os.ReadFile(p)
	return imagebuild.File{Data: b, Mode: fi.Mode().Perm()}, err
}

// checkImageConfig: the config is the Dockerfile's, and what README.md and
// compose.yaml promise.
func checkImageConfig(t *testing.T, img v1.Image, stage *imagebuild.Stage) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !slices.Equal(c.Entrypoint, []string{"/tagwatch"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q, cmd %q; want [/tagwatch] [serve]", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" || c.WorkingDir != "/data" {
		t.Errorf("user %q, workdir %q", c.User, c.WorkingDir)
	}
	for _, kv := range []string{"TAGWATCH_DATA=/data/tagwatch.db", "TAGWATCH_WEB_LISTEN=0.0.0.0:8080"} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("env %q lacks %s", c.Env, kv)
		}
	}
	if slices.ContainsFunc(c.Env, func(kv string) bool { return strings.HasPrefix(kv, "TAGWATCH_WEB_ALLOWREMOTE") }) {
		t.Errorf("the image must not allow remote access without auth by default: %q", c.Env)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes %v", c.Volumes)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	if hc := c.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/tagwatch", "healthcheck"}) || hc.Interval == 0 {
		t.Errorf("healthcheck %+v", hc)
	}
	if c.Healthcheck != nil && stage.Config.Healthcheck != nil && c.Healthcheck.Interval != stage.Config.Healthcheck.Interval {
		t.Errorf("healthcheck interval %v, the Dockerfile says %v", c.Healthcheck.Interval, stage.Config.Healthcheck.Interval)
	}
}

// checkImageFiles: the entrypoint is the binary just built, executable;
// /data belongs to the image's user; /etc/passwd names that user.
func checkImageFiles(t *testing.T, img v1.Image, binary []byte) {
	t.Helper()
	type entry struct {
		h   *tar.Header
		sum [32]byte
	}
	files := map[string]entry{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		hash := sha256.New()
		if _, err := io.Copy(hash, tr); err != nil {
			t.Fatal(err)
		}
		var sum [32]byte
		copy(sum[:], hash.Sum(nil))
		files[strings.TrimSuffix(h.Name, "/")] = entry{h, sum}
	}
	bin, ok := files["tagwatch"]
	if !ok || bin.sum != sha256.Sum256(binary) || bin.h.Mode&0o111 != 0o111 || bin.h.Uid != 0 {
		t.Errorf("/tagwatch is not the built binary, root's and executable: %+v", bin.h)
	}
	if d, ok := files["data"]; !ok || d.h.Typeflag != tar.TypeDir || d.h.Uid != 65532 || d.h.Gid != 65532 || d.h.Mode&0o700 != 0o700 {
		t.Errorf("/data is not a directory user 65532 can write: %+v", d.h)
	}
	for _, p := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if _, ok := files[p]; !ok {
			t.Errorf("the image lacks /%s", p)
		}
	}
	passwd, err := os.ReadFile("../../contrib/image/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(passwd, []byte("tagwatch:x:65532:65532:")) || files["etc/passwd"].sum != sha256.Sum256(passwd) {
		t.Errorf("/etc/passwd does not name user 65532:\n%s", passwd)
	}
}

// runContainer runs a container to its end (no network, like
// `docker run --rm --network none`) and returns its output and exit code.
func runContainer(t *testing.T, cli *client.Client, ref string, cfg *container.Config) (string, int) {
	t.Helper()
	id := createContainer(t, cli, cfg)
	startContainer(t, cli, id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitC, errC := cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-waitC:
		if res.Error != nil {
			t.Fatalf("waiting for %s: %s", ref, res.Error.Message)
		}
		return containerLogs(t, cli, id), int(res.StatusCode)
	case err := <-errC:
		t.Fatalf("waiting for %s: %v\n%s", ref, err, containerLogs(t, cli, id))
	}
	return "", -1
}

func createContainer(t *testing.T, cli *client.Client, cfg *container.Config) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating a container of %s: %v", cfg.Image, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// RemoveVolumes: the anonymous volume VOLUME /data made.
		err := cli.ContainerRemove(ctx, res.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing container %s: %v", res.ID, err)
		}
	})
	return res.ID
}

// startContainer starts a container. An engine that cannot run containers
// at all (no runtime, no cgroups, …) fails the test in CI and skips it,
// saying why, elsewhere; a start that fails because of the image fails.
func startContainer(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cli.ContainerStart(ctx, id, container.StartOptions{})
	if err == nil {
		return
	}
	if strings.Contains(err.Error(), "/tagwatch") || strings.Contains(err.Error(), "65532") {
		t.Fatalf("the image does not start: %v", err)
	}
	msg := fmt.Sprintf("the Docker engine at %s cannot run containers: %v. The image test needs an engine "+
		"that can (dockerd with runc; .ci/run starts one with vfs storage and no bridge)", os.Getenv(dockertest.HostEnv), err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func containerLogs(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return fmt.Sprintf("%s(reading the logs: %v)", out.String(), err)
	}
	return out.String()
}
