// Package podmantest gives tests a real Podman service: Debian's podman,
// on storage of its own (vfs, its own --root and --runroot), serving its
// Docker-compatible and libpod API on a private socket, and the podman CLI
// on the same storage to pull, create and run containers and pods.
package podmantest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// catatonit is Debian's static init, which podman itself needs for pods'
// infra containers; the tests' images run it as their whole program.
const catatonit = "/usr/bin/catatonit"

// containersConf lifts podman's default rlimits: in some sandboxes (this
// project's CI among them) runc may not raise RLIMIT_NOFILE/NPROC to
// podman's defaults, and every `podman run` fails with "error setting
// rlimits"; --ulimit host does not help, an empty default_ulimits does.
const containersConf = "[containers]\ndefault_ulimits = []\n"

// Podman is a running podman service for one test.
type Podman struct {
	// Host is the service's socket: unix:///tmp/…/podman.sock.
	Host string
	dir  string
	bin  string
}

// Start runs `podman system service` on a fresh root until the test ends.
// Under CI=true a missing podman (or catatonit) fails the test; elsewhere
// the test is skipped.
func Start(t testing.TB) *Podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err == nil {
		_, err = os.Stat(catatonit)
	}
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatalf("podmantest: %v: CI must install podman and catatonit (.ci/run does)", err)
	case err != nil:
		t.Skipf("podmantest: %v: install podman and catatonit", err)
	case os.Geteuid() != 0 && os.Getenv("CI") == "true":
		t.Fatalf("podmantest: running podman on a private root needs root")
	case os.Geteuid() != 0:
		t.Skipf("podmantest: running podman on a private root needs root")
	}
	// Short: a unix socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "twpodman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Podman{Host: "unix://" + filepath.Join(dir, "podman.sock"), dir: dir, bin: bin}
	if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(containersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := p.command("system", "service", "--time", "0", p.Host)
	logFile, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Containers first: their conmon processes outlive the service.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, args := range [][]string{{"pod", "rm", "--all", "--force", "--time", "0"}, {"rm", "--all", "--force", "--time", "0"}} {
			if out, err := p.commandContext(ctx, args...).CombinedOutput(); err != nil {
				t.Logf("podmantest: podman %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("podmantest: service log:\n%s", tail(string(b), 30))
		}
		_ = os.RemoveAll(dir)
	})

	deadline := time.Now().Add(time.Minute)
	for {
		if err := p.ping(); err == nil {
			return p
		} else if time.Now().After(deadline) {
			t.Fatalf("podmantest: the service did not answer in a minute: %v", err)
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("podmantest: the service exited:\n%s", tail(string(b), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *Podman) command(args ...string) *exec.Cmd {
	return p.commandContext(context.Background(), args...)
}

func (p *Podman) commandContext(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"--storage-driver", "vfs",
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		// No systemd here: cgroups and events without it.
		"--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	cmd := exec.CommandContext(ctx, p.bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.dir, "containers.conf"))
	return cmd
}

func (p *Podman) ping() error {
	sock := strings.TrimPrefix(p.Host, "unix://")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	res, err := c.Get("http://podman/_ping")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("_ping: %s", res.Status)
	}
	return nil
}

// Podman runs the podman CLI on the service's storage and returns its
// output, trimmed; a failure fails the test.
func (p *Podman) Podman(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := p.commandContext(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("podmantest: podman %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// Pull pulls ref from a loopback registry (plain HTTP).
func (p *Podman) Pull(t testing.TB, ref string) {
	t.Helper()
	p.Podman(t, "pull", "--quiet", "--tls-verify=false", ref)
}

// RunnableImage is an image that runs for real: seed's random layer (so
// that seeds give different digests) and catatonit as its program, which
// waits until it is stopped.
func RunnableImage(t testing.TB, base v1.Image) v1.Image {
	t.Helper()
	bin, err := os.ReadFile(catatonit)
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "catatonit", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil })
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = []string{"/catatonit", "-P"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	return img
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
