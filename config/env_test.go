package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

func secretFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEnvCoversEveryWatcherSetting sets each of Watcher's YAML keys through
// TAGWATCH_WATCHER_<NAME>_<KEY>: a new field without an environment
// variable fails here.
func TestEnvCoversEveryWatcherSetting(t *testing.T) {
	kindOf := map[string]string{"kubeconfig": "kubernetes", "context": "kubernetes", "namespaces": "kubernetes", "address": "containerd"}
	typ := reflect.TypeFor[config.Watcher]()
	var tags []string
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			t.Fatalf("Watcher.%s has no yaml name", f.Name)
		}
		tags = append(tags, tag)
		value := "/some/" + tag
		switch {
		case tag == "cron":
			value = "*/5 * * * *"
		case tag == "kind":
			value = "podman"
		case f.Type.Kind() == reflect.Bool || f.Type.Kind() == reflect.Pointer:
			value = "true"
		}
		switch tag {
		case "kind":
			value = "kubernetes"
		case "namespaces":
			value = "media, home"
		}
		env := []string{"TAGWATCH_WATCHER_NAS_" + strings.ToUpper(tag) + "=" + value}
		if tag == "certfile" || tag == "keyfile" { // they go in pairs
			env = []string{"TAGWATCH_WATCHER_NAS_CERTFILE=/some/certfile", "TAGWATCH_WATCHER_NAS_KEYFILE=/some/keyfile"}
		}
		// A setting of another kind than docker comes with its kind.
		if kind := kindOf[tag]; kind != "" {
			env = append(env, "TAGWATCH_WATCHER_NAS_KIND="+kind)
		}
		c, err := config.Load("", env, registries.DefaultCatalog())
		if err != nil {
			t.Errorf("%s: %v", env, err)
			continue
		}
		if v := reflect.ValueOf(c.Watchers["nas"]).FieldByName(f.Name); v.IsZero() {
			t.Errorf("%s did not set Watcher.%s", env, f.Name)
		}
	}
	sort.Strings(tags)
	if got := config.WatcherKeys(); !slices.Equal(got, tags) {
		t.Errorf("WatcherKeys() = %v, Watcher's YAML keys are %v", got, tags)
	}
}

// TestEnvOverFileWatchers: the environment adds to the file's watcher of the
// same name (each setting it names wins), and may add watchers.
func TestEnvOverFileWatchers(t *testing.T) {
	p := write(t, `watchers:
  nas:
    host: tcp://old.lan:2376
    cron: "0 * * * *"
    watchbydefault: false
`)
	c, err := config.Load(p, []string{
		"TAGWATCH_WATCHER_NAS_HOST_FILE=" + secretFile(t, "tcp://nas.lan:2376\n"),
		"TAGWATCH_WATCHER_NAS_WATCHSTOPPED=true",
		"TAGWATCH_WATCHER_MY_PI_HOST=tcp://pi.lan:2375",
		"TAGWATCH_WATCHER_MY_PI_WATCHBYDEFAULT=1",
		"TAGWATCH_WATCHER_LOCAL_HOST=", // the local engine, with its defaults
	}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	nas := c.Watchers["nas"]
	if nas.Host != "tcp://nas.lan:2376" || nas.Cron != "0 * * * *" || nas.WatchByDefault == nil || *nas.WatchByDefault || !nas.WatchStopped {
		t.Errorf("nas = %+v", nas)
	}
	pi := c.Watchers["my_pi"]
	if pi.Host != "tcp://pi.lan:2375" || pi.WatchByDefault == nil || !*pi.WatchByDefault {
		t.Errorf("my_pi = %+v", pi)
	}
	if local, ok := c.Watchers["local"]; !ok || !reflect.DeepEqual(local, config.Watcher{}) {
		t.Errorf("local = %+v, %v", local, ok)
	}
	if len(c.Watchers) != 3 {
		t.Errorf("watchers: %+v", c.Watchers)
	}
}

// TestEnvOverFileTopLevel: images, cron, platform and web from the
// environment win over the file's.
func TestEnvOverFileTopLevel(t *testing.T) {
	hash := bcryptHash(t, "correct horse")
	p := write(t, `images:
  - image: postgres:16
    tag: {policy: minor}
cron: "0 3 * * *"
platform: linux/amd64
web:
  listen: 127.0.0.1:8080
  auth: {username: file, password: file-hash}
`)
	c, err := config.Load(p, []string{
		"TAGWATCH_IMAGES=nginx:1.25,redis:7 \n ghcr.io/home-assistant/home-assistant:2024.10.1,",
		"TAGWATCH_CRON=*/30 * * * *",
		"TAGWATCH_PLATFORM=linux/arm64/v8",
		"TAGWATCH_WEB_LISTEN=0.0.0.0:8080",
		"TAGWATCH_WEB_AUTH_USERNAME=admin",
		"TAGWATCH_WEB_AUTH_PASSWORD_FILE=" + secretFile(t, hash+"\n"),
		"TAGWATCH_WEB_AUTH_TOKEN_FILE=" + secretFile(t, "api-token-0123456789abcdef"),
		"TAGWATCH_WEB_ALLOWREMOTE=true",
		"TAGWATCH_WEB_HOSTS=tagwatch.example.com, nas.lan ,",
		"TAGWATCH_WEB_ALLOWLINKLOCAL=true",
	}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	var imgs []string
	for _, img := range c.Images {
		imgs = append(imgs, img.Image)
	}
	if want := []string{"nginx:1.25", "redis:7", "ghcr.io/home-assistant/home-assistant:2024.10.1"}; !slices.Equal(imgs, want) {
		t.Errorf("images = %q, want %q (TAGWATCH_IMAGES replaces the file's list)", imgs, want)
	}
	if c.ImagesCron != "*/30 * * * *" || c.Platform != "linux/arm64/v8" {
		t.Errorf("cron %q, platform %q", c.ImagesCron, c.Platform)
	}
	want := config.Web{Listen: "0.0.0.0:8080", AllowRemote: true, Auth: config.WebAuth{Username: "admin", Password: hash, Token: "api-token-0123456789abcdef"},
		Hosts: []string{"tagwatch.example.com", "nas.lan"}, AllowLinkLocal: true}
	if !reflect.DeepEqual(c.Web, want) {
		t.Errorf("web = %+v, want %+v", c.Web, want)
	}
	if o := c.Where("images[0]"); o.Env != "TAGWATCH_IMAGES" {
		t.Errorf("images[0] comes from %v", o)
	}
}

func TestEnvAndWatcherErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want string
	}{
		{"bad bool", "", []string{"TAGWATCH_WATCHER_NAS_WATCHSTOPPED=yes"},
			"environment TAGWATCH_WATCHER_NAS_WATCHSTOPPED: watchers.nas.watchstopped: must be true or false"},
		{"unknown watcher setting", "", []string{"TAGWATCH_WATCHER_NAS_HOSTNAME=x"},
			"environment TAGWATCH_WATCHER_NAS_HOSTNAME: watchers.nas.hostname: is not a watcher setting (address, cafile, certfile, context, cron, host, keyfile, kind, kubeconfig, namespaces, swarm, watchbydefault, watchstopped)"},
		{"no watcher name", "", []string{"TAGWATCH_WATCHER_HOST=x"},
			"environment TAGWATCH_WATCHER_HOST: watchers: want TAGWATCH_WATCHER_<NAME>_<SETTING>"},
		{"watcher secret file missing", "", []string{"TAGWATCH_WATCHER_NAS_KEYFILE_FILE=/nonexistent/x"},
			"environment TAGWATCH_WATCHER_NAS_KEYFILE_FILE: watchers.nas.keyfile: reading the file it names"},
		{"bad cron from the environment", "", []string{"TAGWATCH_CRON=every day"},
			`environment TAGWATCH_CRON: cron: "every day" is not a 5-field cron schedule`},
		{"bad watcher cron from the environment", "", []string{"TAGWATCH_WATCHER_NAS_CRON=* * *"},
			`environment TAGWATCH_WATCHER_NAS_CRON: watchers.nas.cron: "* * *" is not a 5-field cron schedule`},
		{"bad image from the environment", "", []string{"TAGWATCH_IMAGES=nginx,Nginx:1"},
			"environment TAGWATCH_IMAGES: images[1].image:"},
		{"bad allowremote", "", []string{"TAGWATCH_WEB_ALLOWREMOTE=maybe"},
			"environment TAGWATCH_WEB_ALLOWREMOTE: web.allowremote: must be true or false"},
		{"bad cron in the file", "watchers:\n  nas:\n    host: tcp://nas:2376\n    cron: '61 * * * *'\n", nil,
			`:4: watchers.nas.cron: "61 * * * *" is not a 5-field cron schedule`},
		{"bad images cron in the file", "images:\n  - image: nginx\ncron: '@every'\n", nil,
			`:3: cron: "@every" is not a 5-field cron schedule`},
		{"certfile without keyfile", "watchers:\n  nas:\n    host: tcp://nas:2376\n    certfile: cert.pem\n", nil,
			":2: watchers.nas.keyfile: must be defined with certfile"},
		{"unknown kind in the file", "watchers:\n  nas:\n    host: tcp://nas:2376\n    kind: dockr\n", nil,
			`:4: watchers.nas.kind: "dockr" is not a watcher kind (containerd, docker, kubernetes, podman)`},
		{"unknown kind from the environment", "", []string{"TAGWATCH_WATCHER_PODS_KIND=Podman"},
			`environment TAGWATCH_WATCHER_PODS_KIND: watchers.pods.kind: "Podman" is not a watcher kind (containerd, docker, kubernetes, podman)`},
		{"a docker setting on a podman watcher", "watchers:\n  pods:\n    kind: podman\n    swarm: true\n", nil,
			":4: watchers.pods.swarm: is a setting of docker watchers, not of podman ones"},
		{"a docker setting on a podman watcher from the environment", "watchers:\n  pods: {kind: podman}\n",
			[]string{"TAGWATCH_WATCHER_PODS_SWARM=false"},
			"environment TAGWATCH_WATCHER_PODS_SWARM: watchers.pods.swarm: is a setting of docker watchers, not of podman ones"},
		{"bad swarm", "", []string{"TAGWATCH_WATCHER_NAS_SWARM=auto"},
			"environment TAGWATCH_WATCHER_NAS_SWARM: watchers.nas.swarm: must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			mentions(t, err, p, tt.want)
		})
	}
}

// TestWatcherKinds: a watcher without a kind is a Docker engine (configs
// written before kinds keep working), swarm is left to detection unless
// set, and podman watchers take the docker settings but swarm.
func TestWatcherKinds(t *testing.T) {
	p := write(t, `watchers:
  local: {}
  swarm: {host: unix:///var/run/docker.sock, swarm: true}
  noswarm: {swarm: false}
  pods: {kind: podman, host: unix:///run/podman/podman.sock, watchstopped: true, watchbydefault: false}
`)
	c, err := config.Load(p, []string{"TAGWATCH_WATCHER_ROOTLESS_KIND=podman"}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind string
		swarm      *bool
	}{
		{"local", config.KindDocker, nil},
		{"swarm", config.KindDocker, ptr(true)},
		{"noswarm", config.KindDocker, ptr(false)},
		{"pods", config.KindPodman, nil},
		{"rootless", config.KindPodman, nil},
	}
	for _, tt := range tests {
		w, ok := c.Watchers[tt.name]
		if !ok {
			t.Errorf("no watcher %s", tt.name)
			continue
		}
		if w.KindOf() != tt.kind || (w.Swarm == nil) != (tt.swarm == nil) || (w.Swarm != nil && *w.Swarm != *tt.swarm) {
			t.Errorf("%s: kind %q swarm %v, want %q %v", tt.name, w.KindOf(), w.Swarm, tt.kind, tt.swarm)
		}
	}
	if pods := c.Watchers["pods"]; !pods.WatchStopped || pods.WatchByDefault == nil || *pods.WatchByDefault || pods.Host != "unix:///run/podman/podman.sock" {
		t.Errorf("pods = %+v", pods)
	}
	if got := config.WatcherKinds(); !slices.Contains(got, "docker") || !slices.Contains(got, "podman") || !slices.IsSorted(got) {
		t.Errorf("WatcherKinds() = %v", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestWatcherKindsClustersAndNodes: each kind takes its own settings, from the file and the
// environment; a setting of another kind, or an unknown kind, is an error
// naming the line and the field.
func TestWatcherKindsClustersAndNodes(t *testing.T) {
	p := write(t, `watchers:
  local: {}
  k3s:
    kind: kubernetes
    kubeconfig: /etc/tagwatch/kubeconfig
    context: home
    namespaces: [media, home]
  node: {kind: containerd, address: unix:///run/k3s/containerd/containerd.sock, namespaces: [k8s.io, default], watchstopped: true}
`)
	c, err := config.Load(p, []string{"TAGWATCH_WATCHER_K3S_NAMESPACES=media,tools", "TAGWATCH_WATCHER_CLUSTER_KIND=kubernetes"}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	k3s := c.Watchers["k3s"]
	if k3s.KindOf() != "kubernetes" || k3s.Kubeconfig != "/etc/tagwatch/kubeconfig" || k3s.Context != "home" ||
		!slices.Equal(k3s.Namespaces, []string{"media", "tools"}) {
		t.Errorf("k3s = %+v", k3s)
	}
	node := c.Watchers["node"]
	if node.KindOf() != "containerd" || node.Address != "unix:///run/k3s/containerd/containerd.sock" ||
		!slices.Equal(node.Namespaces, []string{"k8s.io", "default"}) || !node.WatchStopped {
		t.Errorf("node = %+v", node)
	}
	if c.Watchers["local"].KindOf() != "docker" || c.Watchers["cluster"].KindOf() != "kubernetes" {
		t.Errorf("watchers = %+v", c.Watchers)
	}

	tests := []struct {
		name, body string
		env        []string
		want       string
	}{
		{"unknown kind", "watchers:\n  x:\n    kind: nomad\n", nil,
			`:3: watchers.x.kind: "nomad" is not a watcher kind (containerd, docker, kubernetes, podman)`},
		{"docker setting on kubernetes", "watchers:\n  x:\n    kind: kubernetes\n    host: tcp://nas:2376\n", nil,
			":4: watchers.x.host: is a setting of docker and podman watchers, not of kubernetes ones"},
		{"kubernetes setting on docker", "watchers:\n  x:\n    kubeconfig: /k\n", nil,
			":3: watchers.x.kubeconfig: is a setting of kubernetes watchers, not of docker ones"},
		{"namespaces on docker", "watchers:\n  x: {namespaces: [a]}\n", nil,
			":2: watchers.x.namespaces: is a setting of containerd and kubernetes watchers, not of docker ones"},
		{"bad namespace", "watchers:\n  x:\n    kind: kubernetes\n    namespaces: [media, Home]\n", nil,
			`:4: watchers.x.namespaces[1]: namespace "Home" may hold only a-z, 0-9, - and .`},
		{"namespaces not a list", "watchers:\n  x:\n    kind: kubernetes\n    namespaces: media\n", nil,
			":4: watchers.x.namespaces: must be a list"},
		{"from the environment", "", []string{"TAGWATCH_WATCHER_X_KIND=containerd", "TAGWATCH_WATCHER_X_CONTEXT=home"},
			"environment TAGWATCH_WATCHER_X_CONTEXT: watchers.x.context: is a setting of kubernetes watchers, not of containerd ones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			mentions(t, err, p, tt.want)
		})
	}
}
