// Package containerdtest gives tests a real containerd: Debian's, on a
// private socket with its own root and state directories, and ctr to pull
// images from a loopback registry and create containers in it (with the
// native snapshotter: no kernel overlay needed; no task is started).
//
// One containerd serves every test of a test binary; tests keep apart by
// namespace. Under CI=true a missing containerd fails the test; else the
// test is skipped with what to install.
package containerdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Containerd is a running containerd.
type Containerd struct {
	Address string // the socket's path
	Dir     string
	ctr     string
}

var (
	once    sync.Once
	shared  *Containerd
	failure error
	skip    string
)

// Start returns the test binary's containerd, starting it on first use; it
// stops when the test binary exits. It needs root (containerd's
// directories and mounts).
func Start(t testing.TB) *Containerd {
	t.Helper()
	once.Do(func() { shared, skip, failure = start() })
	if skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("containerdtest: %s (CI must provide it: .ci/run installs containerd)", skip)
		}
		t.Skipf("containerdtest: %s", skip)
	}
	if failure != nil {
		t.Fatalf("containerdtest: %v", failure)
	}
	return shared
}

func start() (*Containerd, string, error) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, "containerd is not installed: apt-get install containerd", nil
	}
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		return nil, "ctr is not installed: apt-get install containerd", nil
	}
	if os.Geteuid() != 0 {
		return nil, "containerd needs root", nil
	}
	// Short: a unix socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "twctrd-")
	if err != nil {
		return nil, "", err
	}
	c := &Containerd{Address: filepath.Join(dir, "containerd.sock"), Dir: dir, ctr: ctr}
	// No CRI plugin: it wants CNI and would log errors about it forever.
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		return nil, "", err
	}
	const supervisor = `"$@" >"$DIR/containerd.log" 2>&1 &
pid=$!
cat >/dev/null
kill $pid 2>/dev/null; wait $pid; rm -rf "$DIR"`
	cmd := exec.Command("sh", "-c", supervisor, "sh", bin, "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = append(os.Environ(), "DIR="+dir)
	// The supervisor's stdin is its lifeline (as in internal/dockertest).
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, "", err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := c.run(context.Background(), "", "version"); err == nil {
			return c, "", nil
		} else if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("containerd not ready in a minute: %v\n%s", err, c.Log())
		}
		select {
		case <-exited:
			return nil, "", fmt.Errorf("containerd exited:\n%s", c.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Log is the end of containerd's log.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (c *Containerd) run(ctx context.Context, ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := []string{"--address", c.Address}
	if ns != "" {
		full = append(full, "--namespace", ns)
	}
	out, err := exec.CommandContext(ctx, c.ctr, append(full, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Ctr runs ctr in namespace ns ("" for ctr's default) and fails the test
// if it fails.
func (c *Containerd) Ctr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := c.run(context.Background(), ns, args...)
	if err != nil {
		t.Fatalf("containerdtest: %v", err)
	}
	return out
}

// Pull pulls ref from a loopback registry over plain HTTP into namespace
// ns and unpacks it for the native snapshotter.
func (c *Containerd) Pull(t testing.TB, ns, ref string) {
	t.Helper()
	c.Ctr(t, ns, "images", "pull", "--plain-http", "--snapshotter", "native", ref)
}

// Create creates (without starting) container id from the pulled image
// ref, with labels, and removes it when the test ends.
func (c *Containerd) Create(t testing.TB, ns, ref, id string, labels map[string]string) {
	t.Helper()
	args := []string{"containers", "create", "--snapshotter", "native"}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+labels[k])
	}
	c.Ctr(t, ns, append(args, ref, id)...)
	t.Cleanup(func() { _, _ = c.run(context.Background(), ns, "containers", "rm", id) })
}

// Remove deletes container id now.
func (c *Containerd) Remove(t testing.TB, ns, id string) {
	t.Helper()
	c.Ctr(t, ns, "containers", "rm", id)
}

// Unreachable is the address of a socket nothing serves: a stale path
// left by a stopped containerd.
func Unreachable(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gone.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	return p
}
