// Package dockertest gives tests a real Docker engine: the one CI starts, or
// one it starts itself on a developer's machine, and helpers to pull images
// and create containers on it that are removed when the test ends.
package dockertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// HostEnv names the engine tests use (unix:///path/docker.sock). .ci/run
// starts a dockerd and sets it.
const HostEnv = "TAGWATCH_TEST_DOCKER_HOST"

const timeout = 2 * time.Minute

var (
	startOnce sync.Once
	started   string
	startErr  error
)

// Host returns the DOCKER_HOST of an engine for the test: $TAGWATCH_TEST_DOCKER_HOST;
// else, outside CI, a dockerd it starts once for the test binary when
// running as root with dockerd installed; else it skips the test.
func Host(t testing.TB) string {
	t.Helper()
	if h := os.Getenv(HostEnv); h != "" {
		if err := ping(h); err != nil {
			t.Fatalf("dockertest: %s=%s: %v", HostEnv, h, err)
		}
		return h
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("dockertest: %s is not set; CI must provide a Docker engine (.ci/run starts one)", HostEnv)
	}
	if os.Geteuid() != 0 {
		t.Skipf("dockertest: no Docker engine: set %s=unix:///path/docker.sock, or run as root with dockerd installed", HostEnv)
	}
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skipf("dockertest: no Docker engine: set %s=unix:///path/docker.sock, or install dockerd", HostEnv)
	}
	startOnce.Do(func() { started, startErr = start(bin) })
	if startErr != nil {
		t.Fatalf("dockertest: starting %s (or set %s): %v", bin, HostEnv, startErr)
	}
	return started
}

// start runs dockerd the way .ci/run does, in a fresh directory, and waits
// until it answers. The engine outlives any one test (tests share it);
// a shell supervisor stops it when this process ends.
func start(bin string) (string, error) {
	// Short: a unix socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "twdockerd-")
	if err != nil {
		return "", err
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		return "", err
	}
	// A Swarm manager leaves its network namespaces bind-mounted under
	// exec/netns: unmounted, or the directory cannot be removed.
	const supervisor = `"$@" >"$DIR/dockerd.log" 2>&1 &
pid=$!
cat >/dev/null
kill $pid; wait $pid
for ns in "$DIR"/exec/netns/*; do [ -e "$ns" ] && umount "$ns" 2>/dev/null; done
rm -rf "$DIR"`
	cmd := exec.Command("sh", "-c", supervisor, "sh", bin,
		"--host", host,
		"--config-file", config, // not /etc/docker/daemon.json: it may set hosts too
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none")
	cmd.Env = append(os.Environ(), "DIR="+dir)
	// The supervisor's stdin is its lifeline: this process holds the other
	// end, which closes when it exits, however it exits; the supervisor
	// then stops dockerd and removes its files. Nothing closes it before:
	// the goroutine waiting on cmd keeps it reachable.
	if _, err := cmd.StdinPipe(); err != nil {
		return "", err
	}
	// Its own process group: a ^C to `go test` must not kill the
	// supervisor before it cleans up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(time.Minute)
	for {
		err := ping(host)
		if err == nil {
			return host, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("dockerd exited:\n%s", tail(filepath.Join(dir, "dockerd.log")))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no answer in a minute: %v\n%s", err, tail(filepath.Join(dir, "dockerd.log")))
		}
	}
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func newClient(host string) (*client.Client, error) {
	return client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
}

func ping(host string) error {
	cli, err := newClient(host)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx)
	return err
}

// Client is a client of host, closed when the test ends.
func Client(t testing.TB, host string) *client.Client {
	t.Helper()
	cli, err := newClient(host)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Pull pulls ref (a loopback registry needs no TLS: dockerd treats
// 127.0.0.0/8 as insecure) and returns the image ID. The names it pulled
// are removed when the test ends; the image goes with its last name.
func Pull(t testing.TB, host, ref string) string {
	t.Helper()
	cli := Client(t, host)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		t.Fatalf("dockertest: pull %s: %v", ref, err)
	}
	defer rc.Close()
	// A failed pull is an error message in the progress stream, not an
	// HTTP status.
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("dockertest: pull %s: %v", ref, err)
		}
		if msg.Error != "" {
			t.Fatalf("dockertest: pull %s: %s", ref, msg.Error)
		}
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("dockertest: pull %s: %v", ref, err)
	}
	// By name, not ID: another test may hold the same image (same
	// content, another registry) under its own names.
	names := []string{ref}
	repo, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, d := range img.RepoDigests {
		if strings.HasPrefix(d, repo+"@") {
			names = append(names, d)
		}
	}
	t.Cleanup(func() {
		for _, n := range names {
			RemoveImage(t, host, n)
		}
	})
	return img.ID
}

// RemoveImage removes one name of an image (the image goes with its last
// name); a name already gone is fine.
func RemoveImage(t testing.TB, host, ref string) {
	t.Helper()
	cli, err := newClient(host)
	if err != nil {
		t.Errorf("dockertest: %v", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("dockertest: removing image %s: %v", ref, err)
	}
}

// Create creates (does not start) a container named name from ref, a name
// or an image ID, with labels, and removes it when the test ends. The
// engine is shared: callers make names unique.
func Create(t testing.TB, host, name, ref string, labels map[string]string) string {
	t.Helper()
	cli := Client(t, host)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := cli.ContainerCreate(ctx,
		// Test images have no command; created is all a test needs.
		&container.Config{Image: ref, Labels: labels, Cmd: []string{"/none"}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		t.Fatalf("dockertest: create %s from %s: %v", name, ref, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("dockertest: removing container %s: %v", name, err)
		}
	})
	return resp.ID
}

// Proxy forwards an engine's API from a loopback TCP port and records the
// requests: a test can point a client at Host and see what it asked for.
type Proxy struct {
	Host string // "tcp://127.0.0.1:PORT"
	// CAFile, CertFile and KeyFile are a client's TLS files for a
	// TLSProxy, which accepts only clients with that certificate.
	CAFile, CertFile, KeyFile string

	mu       sync.Mutex
	requests []string
	down     bool
}

// SetDown makes the proxy drop every connection it is sent (down), as an
// engine that went away does, or forward them again.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Requests returns the requests forwarded so far, as "GET /v1.41/containers/json".
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// NewProxy serves the engine at host on plain TCP until the test ends.
func NewProxy(t testing.TB, host string) *Proxy {
	t.Helper()
	p := &Proxy{}
	srv := httptest.NewServer(p.handler(t, host))
	t.Cleanup(srv.Close)
	p.Host = "tcp://" + srv.Listener.Addr().String()
	return p
}

// NewTLSProxy serves the engine at host over TLS with client certificates,
// as a remote engine on port 2376 is set up, until the test ends.
func NewTLSProxy(t testing.TB, host string) *Proxy {
	t.Helper()
	p := &Proxy{}
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, x509.ExtKeyUsageAny)
	server, serverKey := newCert(t, ca, caKey, x509.ExtKeyUsageServerAuth)
	cl, clKey := newCert(t, ca, caKey, x509.ExtKeyUsageClientAuth)
	p.CAFile = writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	p.CertFile = writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", cl.Raw)
	p.KeyFile = writeKey(t, filepath.Join(dir, "key.pem"), clKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(p.handler(t, host))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	// Tests try clients without a certificate; the refused handshakes are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.Host = "tcp://" + srv.Listener.Addr().String()
	return p
}

func (p *Proxy) handler(t testing.TB, host string) http.Handler {
	t.Helper()
	u, err := url.Parse(host)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	network, addr := "tcp", u.Host
	if u.Scheme == "unix" {
		network, addr = "unix", u.Path
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: tr,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		down := p.down
		if !down {
			p.requests = append(p.requests, r.Method+" "+r.URL.Path)
		}
		p.mu.Unlock()
		if down {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// newCert makes a certificate for 127.0.0.1 signed by parent, or a CA
// when parent is nil.
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "dockertest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage, tmpl.IPAddresses = nil, nil
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return cert, key
}

func writeKey(t testing.TB, path string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return writePEM(t, path, "PRIVATE KEY", der)
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return path
}

var (
	swarmOnce sync.Once
	swarmHost string
	swarmErr  error
)

// Swarm returns the DOCKER_HOST of an engine of its own (never the shared
// one: its other tests expect a plain engine) that is a Swarm manager,
// started once for the test binary. Under CI=true a missing dockerd fails
// the test; elsewhere it skips, as Host does.
func Swarm(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatalf("dockertest: no dockerd for a Swarm manager; CI must install docker.io (.ci/run does)")
	case err != nil:
		t.Skipf("dockertest: no dockerd to start a Swarm manager: install docker.io")
	case os.Geteuid() != 0 && os.Getenv("CI") == "true":
		t.Fatalf("dockertest: starting a Swarm manager needs root")
	case os.Geteuid() != 0:
		t.Skipf("dockertest: starting a Swarm manager needs root")
	}
	swarmOnce.Do(func() {
		if swarmHost, swarmErr = start(bin); swarmErr == nil {
			swarmErr = swarmInit(swarmHost)
		}
	})
	if swarmErr != nil {
		t.Fatalf("dockertest: starting a Swarm manager: %v", swarmErr)
	}
	return swarmHost
}

// swarmInit makes the engine a single-node Swarm on loopback, on free
// ports so that it collides with no other swarm on the machine.
func swarmInit(host string) error {
	cli, err := newClient(host)
	if err != nil {
		return err
	}
	defer cli.Close()
	port, err := freeTCPPort()
	if err != nil {
		return err
	}
	dataPort, err := freeTCPPort()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = cli.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr:    fmt.Sprintf("127.0.0.1:%d", port),
		AdvertiseAddr: fmt.Sprintf("127.0.0.1:%d", port),
		DataPathPort:  uint32(dataPort),
	})
	if err != nil {
		return fmt.Errorf("swarm init: %w", err)
	}
	return nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CreateService creates a Swarm service named name from ref with labels
// and replicas, as `docker service create` does: the tag is resolved at
// the registry and its digest pinned in the spec. Its tasks use the host's
// network (the test engines have no bridge) and are not restarted: a task
// of an image with nothing to run fails once and stays failed. The service
// is removed when the test ends.
func CreateService(t testing.TB, host, name, ref string, replicas uint64, labels map[string]string) string {
	t.Helper()
	cli := Client(t, host)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	never := swarm.RestartPolicyConditionNone
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: ref, Command: []string{"/none"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: never},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	resp, err := cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: true})
	if err != nil {
		t.Fatalf("dockertest: create service %s from %s: %v", name, ref, err)
	}
	t.Cleanup(func() { RemoveService(t, host, resp.ID) })
	return resp.ID
}

// RemoveService removes a service; one already gone is fine.
func RemoveService(t testing.TB, host, id string) {
	t.Helper()
	cli, err := newClient(host)
	if err != nil {
		t.Errorf("dockertest: %v", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cli.ServiceRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("dockertest: removing service %s: %v", id, err)
	}
}
