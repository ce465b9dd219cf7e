package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
	ctrdsource "github.com/tagwatch/tagwatch/watcher/containerd"
	kubesource "github.com/tagwatch/tagwatch/watcher/kubernetes"
)

// TestWatchSourcesByKind: each watcher's kind builds its source, with the
// settings the file gives it and the defaults it doesn't.
func TestWatchSourcesByKind(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yml")
	body := `watchers:
  local: {}
  k3s: {kind: kubernetes, kubeconfig: /etc/tagwatch/kubeconfig, context: home, namespaces: [media], cron: "0 * * * *"}
  node: {kind: containerd, address: unix:///run/k3s/containerd/containerd.sock, watchbydefault: false, watchstopped: true}
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := watchSources(cfg, nil, v1.Platform{OS: "linux", Architecture: "amd64"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]watcher.Scheduled{}
	for _, s := range srcs {
		byName[s.Source.Name()] = s
	}
	if _, ok := byName["local"].Source.(*watcher.DockerSource); !ok {
		t.Errorf("local: %T", byName["local"].Source)
	}
	k, ok := byName["k3s"].Source.(*kubesource.Source)
	if !ok || k.Kubeconfig != "/etc/tagwatch/kubeconfig" || k.Context != "home" || !slices.Equal(k.Namespaces, []string{"media"}) ||
		!k.WatchByDefault || byName["k3s"].Cron != "0 * * * *" {
		t.Errorf("k3s: %#v", byName["k3s"])
	}
	c, ok := byName["node"].Source.(*ctrdsource.Source)
	if !ok || c.Address != "unix:///run/k3s/containerd/containerd.sock" || c.WatchByDefault || !c.WatchStopped {
		t.Errorf("node: %#v", byName["node"].Source)
	}
}
