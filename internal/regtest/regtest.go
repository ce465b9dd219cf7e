// Package regtest starts real CNCF distribution registries (the
// docker-registry binary) for tests: anonymous, htpasswd, or token auth
// backed by an in-test token server, over HTTP or HTTPS, and pushes images
// into them.
//
// The binary is required, not optional: a test that cannot find it fails
// and says how to install it (apt-get install docker-registry), so that a
// CI run without it does not go green by testing nothing. Set
// REGTEST_REGISTRY_BIN to use a binary outside PATH.
package regtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// BinaryEnv names the environment variable that overrides the registry binary.
const BinaryEnv = "REGTEST_REGISTRY_BIN"

// binaries are the names the distribution registry is installed under:
// Debian's docker-registry package, and upstream's release archives.
var binaries = []string{"docker-registry", "registry"}

// Admin is the login the helpers push with. It is added to every
// authenticated registry (htpasswd file or token issuer) besides
// Options.Users, with a password only this package knows, so that tests
// may configure users (and Issuer.Check) however they like and still push.
const Admin = "regtest-admin"

// Options choose how a registry authenticates.
type Options struct {
	// Users maps login to password. With Token false and Users set, the
	// registry uses htpasswd basic auth (bcrypt). Empty and Token false:
	// anonymous.
	Users map[string]string
	// Token makes the registry delegate auth to an in-test Issuer (realm
	// Issuer.URL+"/token"), which checks Users unless its Check is replaced.
	Token bool
	// Service is the token service (the JWT audience) the registry accepts;
	// "container_registry" (GitLab's) when empty.
	Service string
	// RealmIP names the token server by its address, 127.0.0.1:PORT, in
	// the registry's challenge, as a LAN registry with its token server on
	// another port does (self-hosted GitLab: registry :5050, auth :443).
	RealmIP bool
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost signed
	// by a CA of the test's own; Registry.CAFile holds that CA.
	TLS bool
	// DNSNames are more names the TLS certificate is good for, so that a
	// client may reach the registry (through a Proxy or a Front) as
	// registry.digitalocean.com, fra.ocir.io… and verify it as such.
	DNSNames []string
}

// Registry is one running registry.
type Registry struct {
	Host   string  // "127.0.0.1:PORT"
	URL    string  // "http://127.0.0.1:PORT", or https with TLS
	Issuer *Issuer // non-nil with Token
	Dir    string  // storage root
	CAFile string  // PEM of the CA that signed the HTTPS certificate; "" without TLS
	Log    string  // the registry's log file

	admin   authn.Authenticator
	tr      *http.Transport // trusts CAFile
	secure  bool
	realmIP bool
	cert    *tls.Certificate // the HTTPS certificate, for Fronts; nil without TLS
	roots   *x509.CertPool   // the CA of CAFile
}

// Start runs a registry on a free port of 127.0.0.1 with fresh storage under
// t.TempDir(), waits until /v2/ answers and stops it when the test ends. Its
// log is printed only if the test failed.
func Start(t testing.TB, o Options) *Registry {
	t.Helper()
	bin := binary(t)
	tmp := t.TempDir()
	r := &Registry{
		Dir:     filepath.Join(tmp, "storage"),
		Log:     filepath.Join(tmp, "registry.log"),
		secure:  o.TLS,
		realmIP: o.RealmIP,
		tr:      http.DefaultTransport.(*http.Transport).Clone(),
	}
	r.tr.Proxy = nil // 127.0.0.1 never goes through a proxy
	adminPassword := randomString(t)
	r.admin = authn.FromConfig(authn.AuthConfig{Username: Admin, Password: adminPassword})

	// With TLS the token server serves HTTPS too, with the same
	// certificate: go-containerregistry refuses an http realm for an https
	// registry.
	var (
		tlsConf   string
		serverTLS *tls.Certificate
	)
	if o.TLS {
		ca, cert, key := serverCert(t, o.DNSNames...)
		r.CAFile = filepath.Join(tmp, "ca.pem")
		writeFile(t, r.CAFile, ca)
		writeFile(t, filepath.Join(tmp, "server.pem"), cert)
		writeFile(t, filepath.Join(tmp, "server.key"), key)
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n",
			quote(filepath.Join(tmp, "server.pem")), quote(filepath.Join(tmp, "server.key")))
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		r.tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatalf("regtest: %v", err)
		}
		serverTLS = &pair
		r.cert, r.roots = &pair, pool
	}

	var auth string
	switch {
	case o.Token:
		service := o.Service
		if service == "" {
			service = "container_registry"
		}
		r.Issuer = newIssuer(t, o.Users, service, adminPassword, serverTLS)
		bundle := filepath.Join(tmp, "token-root.pem")
		writeFile(t, bundle, r.Issuer.certPEM)
		realm := r.Issuer.URL + "/token"
		if o.RealmIP {
			realm = strings.Replace(realm, "://localhost:", "://127.0.0.1:", 1)
		}
		auth = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			quote(realm), quote(service), quote(r.Issuer.Name), quote(bundle))
	case len(o.Users) > 0:
		file := filepath.Join(tmp, "htpasswd")
		writeFile(t, file, htpasswd(t, o.Users, adminPassword))
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: regtest\n    path: %s\n", quote(file))
	default:
		r.admin = authn.Anonymous
	}

	// A port picked by the kernel may be taken again before the registry
	// binds it; try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		r.Host = "127.0.0.1:" + strconv.Itoa(port)
		r.URL = "http://" + r.Host
		if o.TLS {
			r.URL = "https://" + r.Host
		}
		config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: regtest-not-a-secret
%s%shealth:
  storagedriver:
    enabled: false
`, quote(r.Dir), r.Host, tlsConf, auth)
		cfgFile := filepath.Join(tmp, "config.yml")
		writeFile(t, cfgFile, []byte(config))
		if lastErr = r.run(t, bin, cfgFile); lastErr == nil {
			return r
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("regtest: starting %s: %v", bin, lastErr)
	return nil
}

// binary finds the registry binary or fails the test saying how to get it.
func binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv(BinaryEnv); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("regtest: %s=%s: %v", BinaryEnv, b, err)
		}
		return b
	}
	for _, n := range binaries {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("regtest: the distribution registry binary is not installed (looked for %s in PATH). "+
		"These tests run a real registry: install it with `apt-get install docker-registry` (CI does), "+
		"or point %s at a `registry` binary from github.com/distribution/distribution releases.",
		strings.Join(binaries, ", "), BinaryEnv)
	return ""
}

// run starts the process and waits until it answers on /v2/. On failure the
// process is gone and the error quotes the end of its log.
func (r *Registry) run(t testing.TB, bin, cfg string) error {
	t.Helper()
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = environ()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logf.Close()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}

	client := &http.Client{Transport: r.tr, Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get(r.URL + "/v2/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusUnauthorized {
				break
			}
			err = fmt.Errorf("GET /v2/: %s", res.Status)
		}
		select {
		case <-done:
			return fmt.Errorf("registry exited (%v): %s", waitErr, tail(r.Log, 20))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("registry did not answer on %s within 20s (last: %v): %s", r.URL, err, tail(r.Log, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		r.tr.CloseIdleConnections()
		if t.Failed() {
			t.Logf("regtest: log of the registry on %s (%s):\n%s", r.URL, r.Log, tail(r.Log, 200))
		}
	})
	return nil
}

// environ is the test's environment without REGISTRY_* variables, which the
// registry would read as overrides of its configuration.
func environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			out = append(out, kv)
		}
	}
	return out
}

func tail(file string, lines int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("[… %d lines before]", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("regtest: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// quote writes a YAML double-quoted scalar.
func quote(s string) string { return strconv.Quote(s) }

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("regtest: %v", err)
	}
}

func randomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return fmt.Sprintf("%x", b)
}

// htpasswd writes the users and the admin in bcrypt form, at the lowest cost:
// the registry checks the password on every request.
func htpasswd(t testing.TB, users map[string]string, adminPassword string) []byte {
	t.Helper()
	all := map[string]string{Admin: adminPassword}
	for u, p := range users {
		if strings.Contains(u, ":") {
			t.Fatalf("regtest: htpasswd login %q has a colon", u)
		}
		all[u] = p
	}
	logins := make([]string, 0, len(all))
	for u := range all {
		logins = append(logins, u)
	}
	sort.Strings(logins)
	var b bytes.Buffer
	for _, u := range logins {
		h, err := bcrypt.GenerateFromPassword([]byte(all[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("regtest: bcrypt: %v", err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	return b.Bytes()
}

// serverCert makes a CA and a certificate for 127.0.0.1, localhost and
// names it signed, all PEM.
func serverCert(t testing.TB, names ...string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "regtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     append([]string{"localhost"}, names...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// AdminAuth is the credentials Push uses: the package's Admin user on an
// authenticated registry, anonymous otherwise.
func (r *Registry) AdminAuth() authn.Authenticator { return r.admin }

// RootCAs holds the CA that signed the registry's certificate (nil without
// TLS), for a client that must trust it without a cafile.
func (r *Registry) RootCAs() *x509.CertPool { return r.roots }

// Transport reaches the registry (it trusts CAFile); without credentials.
func (r *Registry) Transport() http.RoundTripper {
	if r.realmIP {
		return localhostRealm{r.tr}
	}
	return r.tr
}

// localhostRealm lets the helpers push to a RealmIP registry: they name the
// token server "localhost" again, which go-containerregistry accepts.
type localhostRealm struct{ next http.RoundTripper }

func (l localhostRealm) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := l.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	vals := res.Header.Values("Www-Authenticate")
	res.Header.Del("Www-Authenticate")
	for _, v := range vals {
		res.Header.Add("Www-Authenticate", strings.Replace(v, "://127.0.0.1:", "://localhost:", 1))
	}
	return res, nil
}

func (r *Registry) nameOptions() []name.Option {
	if r.secure {
		return []name.Option{name.StrictValidation}
	}
	return []name.Option{name.StrictValidation, name.Insecure}
}

func (r *Registry) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithAuth(r.admin), remote.WithTransport(r.Transport()), remote.WithContext(ctx)}
}

// Ref names repoTag ("team/app:1.0.0") on this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

func (r *Registry) tag(t testing.TB, repoTag string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(r.Ref(repoTag), r.nameOptions()...)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return tag
}

// Push uploads img as repoTag ("team/app:1.0.0") with the admin's
// credentials and returns its manifest digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	tag := r.tag(t, repoTag)
	// A safety net, not a target: the container image test pushes the
	// real image (13 MB compressed, gzipped while it uploads), which a
	// busy 2-core machine took more than 30 s for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(tag, img, r.remoteOptions(ctx)...); err != nil {
		t.Fatalf("regtest: push %s: %v", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return d
}

// PushIndex uploads a multi-platform index and its images as repoTag and
// returns the index digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	tag := r.tag(t, repoTag)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := remote.WriteIndex(tag, idx, r.remoteOptions(ctx)...); err != nil {
		t.Fatalf("regtest: push %s: %v", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return d
}

// Tag points more tags of repo ("team/app") at a manifest already pushed
// there. It reuses one authenticated connection and keeps several PUTs in
// flight: a thousand tags take about a second.
func (r *Registry) Tag(t testing.TB, repo string, digest v1.Hash, tags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := name.NewRepository(r.Host+"/"+repo, r.nameOptions()...)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	desc, err := remote.Get(rep.Digest(digest.String()), r.remoteOptions(ctx)...)
	if err != nil {
		t.Fatalf("regtest: read %s@%s: %v", rep, digest, err)
	}
	rt, err := transport.NewWithContext(ctx, rep.Registry, r.admin, r.Transport(), []string{rep.Scope(transport.PushScope)})
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	client := &http.Client{Transport: rt}
	scheme := "http"
	if r.secure {
		scheme = "https"
	}

	err = parallel(tags, func(tag string) error {
		return putManifest(ctx, client, fmt.Sprintf("%s://%s/v2/%s/manifests/%s", scheme, r.Host, repo, tag), string(desc.MediaType), desc.Manifest)
	})
	if err != nil {
		t.Fatalf("regtest: tag %s@%s: %v", rep, digest, err)
	}
}

// parallel runs do for every item (tags, or FillStorage's repositories),
// several at a time, and returns the first error, naming its item.
func parallel(items []string, do func(item string) error) error {
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				if err := do(item); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", item, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
	return first
}

// TagInStorage does what Tag does by writing the tag links straight into
// the registry's storage (distribution's filesystem layout), for tests that
// need thousands of tags: 1,200 take milliseconds instead of seconds. It
// then lists the repository through the API to make sure the registry sees
// them, so a change of layout fails loudly rather than silently.
func (r *Registry) TagInStorage(t testing.TB, repo string, digest v1.Hash, tags ...string) {
	t.Helper()
	base := filepath.Join(r.Dir, "docker", "registry", "v2", "repositories", filepath.FromSlash(repo), "_manifests")
	if _, err := os.Stat(filepath.Join(base, "revisions", digest.Algorithm, digest.Hex, "link")); err != nil {
		t.Fatalf("regtest: %s@%s is not in storage (push it first): %v", repo, digest, err)
	}
	// Only what reading needs: the tag's directory (tags/list lists them)
	// and its current link (what HEAD and GET by tag resolve). The
	// index/<digest> link a push also writes serves deleting the manifest
	// by digest, which then leaves these tags behind; every entry costs
	// time on a slow disk, to write and to clean up.
	link := []byte(digest.String())
	write := func(tag string) error {
		dir := filepath.Join(base, "tags", tag, "current")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "link"), link, 0o644)
	}
	if err := parallel(tags, write); err != nil {
		t.Fatalf("regtest: %v", err)
	}
	rep, err := name.NewRepository(r.Host+"/"+repo, r.nameOptions()...)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := remote.List(rep, r.remoteOptions(ctx)...)
	if err != nil {
		t.Fatalf("regtest: list %s: %v", rep, err)
	}
	seen := make(map[string]bool, len(listed))
	for _, tag := range listed {
		seen[tag] = true
	}
	for _, tag := range tags {
		if !seen[tag] {
			t.Fatalf("regtest: tag %s written in storage but not listed by the registry: has distribution's storage layout changed?", tag)
		}
	}
}

// FillStorage makes each of repos hold tags, all pointing at a manifest
// already pushed to this registry (under any repository), by writing
// distribution's links straight into its storage as TagInStorage does:
// a thousand repositories take a second or two, not the minutes pushing
// them would. It then reads the first and the last repository through the
// API, so that a change of layout fails loudly.
func (r *Registry) FillStorage(t testing.TB, digest v1.Hash, repos []string, tags ...string) {
	t.Helper()
	v2 := filepath.Join(r.Dir, "docker", "registry", "v2")
	blob := func(h v1.Hash) string {
		return filepath.Join(v2, "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
	}
	raw, err := os.ReadFile(blob(digest))
	if err != nil {
		t.Fatalf("regtest: manifest %s is not in storage (push it first): %v", digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("regtest: %s: %v", digest, err)
	}
	links := map[string]string{} // path under the repository → content
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		links[filepath.Join("_layers", b.Digest.Algorithm, b.Digest.Hex, "link")] = b.Digest.String()
	}
	links[filepath.Join("_manifests", "revisions", digest.Algorithm, digest.Hex, "link")] = digest.String()
	for _, tag := range tags {
		links[filepath.Join("_manifests", "tags", tag, "current", "link")] = digest.String()
		links[filepath.Join("_manifests", "tags", tag, "index", digest.Algorithm, digest.Hex, "link")] = digest.String()
	}
	err = parallel(repos, func(repo string) error {
		base := filepath.Join(v2, "repositories", filepath.FromSlash(repo))
		for p, content := range links {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(base, p)), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(base, p), []byte(content), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, repo := range []string{repos[0], repos[len(repos)-1]} {
		rep, err := name.NewRepository(r.Host+"/"+repo, r.nameOptions()...)
		if err != nil {
			t.Fatalf("regtest: %v", err)
		}
		listed, err := remote.List(rep, r.remoteOptions(ctx)...)
		if err != nil || len(listed) != len(tags) {
			t.Fatalf("regtest: %s written in storage, listed by the registry as %v (%v): has distribution's storage layout changed?", repo, listed, err)
		}
		d, err := remote.Head(rep.Tag(tags[len(tags)-1]), r.remoteOptions(ctx)...)
		if err != nil || d.Digest != digest {
			t.Fatalf("regtest: %s:%s written in storage, read by the registry as %v (%v)", repo, tags[len(tags)-1], d, err)
		}
	}
}

func putManifest(ctx context.Context, c *http.Client, url, mediaType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return transport.CheckError(res, http.StatusCreated)
}

// seedSource turns a seed string into a random source, so that the same seed
// always gives the same image.
func seedSource(seed string) mrand.Source {
	h := fnv.New64a()
	h.Write([]byte(seed))
	return mrand.NewSource(int64(h.Sum64()))
}

// Image is a small image (one layer of random bytes) that is the same for
// the same seed and differs between seeds. Its config says linux/amd64.
func Image(t testing.TB, seed string) v1.Image {
	t.Helper()
	return platformImage(t, seed, v1.Platform{OS: "linux", Architecture: "amd64"})
}

func platformImage(t testing.TB, seed string, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1, random.WithSource(seedSource(seed+"/"+p.String())))
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Config.Labels = map[string]string{"regtest.seed": seed}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return img
}

// Index is a multi-platform index (a Docker manifest list) holding one image
// per platform, each platform named in its index entry and in its config.
func Index(t testing.TB, seed string, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	seeds := make([]string, len(platforms))
	for i := range seeds {
		seeds[i] = seed
	}
	return IndexOf(t, platforms, seeds)
}

// IndexOf is Index with a seed per platform (seeds[i] for platforms[i]): an
// index rebuilt with only some seeds changed changes only those platforms'
// images.
func IndexOf(t testing.TB, platforms []v1.Platform, seeds []string) v1.ImageIndex {
	t.Helper()
	if len(platforms) == 0 || len(seeds) != len(platforms) {
		t.Fatalf("regtest: IndexOf needs at least one platform, and one seed per platform")
	}
	adds := make([]mutate.IndexAddendum, 0, len(platforms))
	for i, p := range platforms {
		img := platformImage(t, seeds[i], p)
		p := p
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.DockerManifestSchema2,
				Platform:  &p,
			},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList), adds...)
}

// Platform parses "linux/arm64" or "linux/arm/v7".
func Platform(s string) v1.Platform {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		panic(err)
	}
	return *p
}
