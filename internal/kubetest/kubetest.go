// Package kubetest gives tests a real Kubernetes API: Debian's etcd and a
// kube-apiserver built from the Go module proxy (build-apiserver.sh beside
// this file), on loopback, with token authentication and RBAC. There is no
// kubelet, controller-manager or scheduler: a test creates pods and writes
// their status as a kubelet would (SetContainerStatuses).
//
// One apiserver serves every test of a test binary; tests keep apart by
// namespace. Under CI=true a missing etcd or apiserver fails the test; else
// the test is skipped with what to install.
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Environment variables: the apiserver and etcd binaries, when not found
// by the default means. .ci/run sets APIServerEnv after building it.
const (
	APIServerEnv = "TAGWATCH_TEST_KUBE_APISERVER"
	EtcdEnv      = "TAGWATCH_TEST_ETCD"
)

// AdminUser is the token user in system:masters the helpers act as.
const AdminUser = "kubetest-admin"

// Cluster is a running apiserver.
type Cluster struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string // PEM of the CA that signed its serving certificate
	CAData []byte
	Dir    string // its files (tokens, certificates, logs)
	// Tokens are the bearer tokens of the token users, by user name:
	// AdminUser, and the users Start was asked for.
	Tokens map[string]string
}

var (
	once    sync.Once
	shared  *Cluster
	failure error
	skip    string
)

// Users are the token users every cluster knows besides AdminUser, with no
// group and so no rights until a test binds a role to them.
var Users = []string{"tagwatch-reader", "tagwatch-nobody", "tagwatch-ns-reader"}

// Start returns the test binary's apiserver, starting it (with its etcd) on
// first use; it stops when the test binary exits.
func Start(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, skip, failure = start() })
	if skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubetest: %s (CI must provide it: .ci/run installs etcd-server and builds the apiserver)", skip)
		}
		t.Skipf("kubetest: %s", skip)
	}
	if failure != nil {
		t.Fatalf("kubetest: %v", failure)
	}
	return shared
}

// APIServerBinary finds kube-apiserver: $TAGWATCH_TEST_KUBE_APISERVER, else
// the cache build-apiserver.sh fills. It returns "" when there is none.
func APIServerBinary() string {
	if b := os.Getenv(APIServerEnv); b != "" {
		return b
	}
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return ""
	}
	dir := os.Getenv("TAGWATCH_KUBE_CACHE")
	if dir == "" {
		dir = filepath.Join(strings.TrimSpace(string(out)), "..", "tagwatch-kube")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "kube-apiserver-v*"))
	for i := len(matches) - 1; i >= 0; i-- {
		if !strings.HasSuffix(matches[i], ".tmp") {
			return matches[i]
		}
	}
	return ""
}

func start() (c *Cluster, skip string, err error) {
	etcd := os.Getenv(EtcdEnv)
	if etcd == "" {
		if etcd, err = exec.LookPath("etcd"); err != nil {
			return nil, "etcd is not installed: apt-get install etcd-server (or set " + EtcdEnv + ")", nil
		}
	}
	apiserver := APIServerBinary()
	if apiserver == "" {
		return nil, "no kube-apiserver: run internal/kubetest/build-apiserver.sh (some 15 CPU-minutes), or set " + APIServerEnv, nil
	}
	if _, err := os.Stat(apiserver); err != nil {
		return nil, "", fmt.Errorf("%s: %w", APIServerEnv, err)
	}
	dir, err := os.MkdirTemp("", "twkube-")
	if err != nil {
		return nil, "", err
	}
	c = &Cluster{Dir: dir, Tokens: map[string]string{}}
	if err := c.writeFiles(); err != nil {
		return nil, "", err
	}

	etcdPort, peerPort, apiPort := freePort(), freePort(), freePort()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcdExited, err := supervise(dir, "etcd.log", true, etcd,
		"--name", "kubetest", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, "", err
	}
	if err := waitFor(etcdExited, filepath.Join(dir, "etcd.log"), time.Minute, func() error {
		resp, err := http.Get(etcdURL + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}); err != nil {
		return nil, "", fmt.Errorf("etcd: %w", err)
	}

	c.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	apiExited, err := supervise(dir, "apiserver.log", false, apiserver,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		// The endpoint reconciler refuses a loopback address, and no pod
		// here talks to the kubernetes Service anyway.
		"--endpoint-reconciler-type", "none",
		"--secure-port", fmt.Sprint(apiPort),
		"--tls-cert-file", filepath.Join(dir, "serving.crt"), "--tls-private-key-file", filepath.Join(dir, "serving.key"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--authorization-mode", "RBAC",
		"--anonymous-auth=false",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--cert-dir", filepath.Join(dir, "certs"),
		"--profiling=false",
		"--v", "0")
	if err != nil {
		return nil, "", err
	}
	cs, err := kubernetes.NewForConfig(c.Config(AdminUser))
	if err != nil {
		return nil, "", err
	}
	if err := waitFor(apiExited, filepath.Join(dir, "apiserver.log"), 3*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("kube-apiserver: %w", err)
	}
	return c, "", nil
}

// writeFiles makes the CA, the serving certificate for 127.0.0.1, the
// service-account signing key and the token file.
func (c *Cluster) writeFiles() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost", "kubernetes.default.svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	c.CAData = pemBlock("CERTIFICATE", caDER)
	c.CAFile = filepath.Join(c.Dir, "ca.crt")
	keyDER, _ := x509.MarshalECPrivateKey(key)
	saDER, _ := x509.MarshalECPrivateKey(saKey)
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	var tokens strings.Builder
	for i, u := range append([]string{AdminUser}, Users...) {
		tok := randomHex()
		c.Tokens[u] = tok
		group := ""
		if u == AdminUser {
			group = "system:masters"
		}
		fmt.Fprintf(&tokens, "%s,%s,%d,%q\n", tok, u, 1000+i, group)
	}
	for name, b := range map[string][]byte{
		"ca.crt":      c.CAData,
		"serving.crt": pemBlock("CERTIFICATE", der),
		"serving.key": pemBlock("EC PRIVATE KEY", keyDER),
		"sa.key":      pemBlock("EC PRIVATE KEY", saDER),
		"sa.pub":      pemBlock("PUBLIC KEY", saPub),
		"tokens.csv":  []byte(tokens.String()),
	} {
		if err := os.WriteFile(filepath.Join(c.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Config is a client configuration for a token user of the cluster.
func (c *Cluster) Config(user string) *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: c.Tokens[user], TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}, Timeout: 30 * time.Second}
}

// Client is a clientset acting as AdminUser.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config(AdminUser))
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return cs
}

// Kubeconfig writes a kubeconfig file with one context per user given
// (named after the user), the first one current, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, users ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: kubetest\n  cluster:\n    server: %s\n    certificate-authority: %s\n", c.URL, c.CAFile)
	b.WriteString("users:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "- name: %s\n  user:\n    token: %s\n", u, c.Tokens[u])
	}
	b.WriteString("contexts:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "- name: %s\n  context:\n    cluster: kubetest\n    user: %s\n", u, u)
	}
	if len(users) > 0 {
		fmt.Fprintf(&b, "current-context: %s\n", users[0])
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Namespace creates a namespace with its default ServiceAccount (which the
// ServiceAccount admission plugin wants before any pod, and which no
// controller-manager makes here), deleted when the test ends.
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	cs := c.Client(t)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	_, err := cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: creating the default ServiceAccount of %s: %v", name, err)
	}
}

// Pod creates a pod with the given owner (nil: none) and writes its status
// as the kubelet would once its containers run: phase, and for each
// container (init containers first) the image ID the runtime reports,
// imageIDs[container name].
func (c *Cluster) Pod(t testing.TB, pod *corev1.Pod, phase corev1.PodPhase, imageIDs map[string]string) *corev1.Pod {
	t.Helper()
	cs := c.Client(t)
	ctx := context.Background()
	created, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	status := func(cs []corev1.Container, running bool) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for _, ct := range cs {
			st := corev1.ContainerStatus{Name: ct.Name, Image: ct.Image, ImageID: imageIDs[ct.Name], Ready: running}
			if running {
				st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
			} else {
				st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}
			}
			out = append(out, st)
		}
		return out
	}
	created.Status.Phase = phase
	created.Status.InitContainerStatuses = status(created.Spec.InitContainers, false)
	created.Status.ContainerStatuses = status(created.Spec.Containers, phase == corev1.PodRunning)
	updated, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("kubetest: writing the status of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return updated
}

// supervise starts bin under a shell that stops it when this process ends,
// however it ends: its stdin is the lifeline (as in internal/dockertest).
// With clean, dir is removed once bin has stopped (etcd's supervisor: the
// last to go). The channel closes when bin exits, by itself or not.
func supervise(dir, logName string, clean bool, bin string, args ...string) (<-chan struct{}, error) {
	// A background list reads /dev/null, not the shell's stdin: the
	// watcher reads the lifeline through a copy of it, fd 3. It signals
	// only while this shell still waits for bin ($$ alive), so never a
	// process that took a dead bin's PID; and kills after 5 s, since an
	// apiserver whose etcd went first never finishes a graceful shutdown.
	const supervisor = `exec 3<&0
"$@" >"$DIR/$LOG" 2>&1 &
pid=$!
(cat <&3 >/dev/null
 kill -0 $$ 2>/dev/null && kill $pid 2>/dev/null && sleep 5 && kill -0 $$ 2>/dev/null && kill -9 $pid 2>/dev/null) &
wait $pid
[ -z "$CLEAN" ] || rm -rf "$DIR"`
	cmd := exec.Command("sh", append([]string{"-c", supervisor, "sh", bin}, args...)...)
	cmd.Env = append(os.Environ(), "DIR="+dir, "LOG="+logName)
	if clean {
		cmd.Env = append(cmd.Env, "CLEAN=1")
	}
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return exited, nil
}

func waitFor(exited <-chan struct{}, logFile string, limit time.Duration, ready func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited:\n%s", tail(logFile))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready in %s: %v\n%s", limit, err, tail(logFile))
		}
	}
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
