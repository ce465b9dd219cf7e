package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeExample keeps compose.yaml true: its environment is a valid
// configuration (secrets read from files, as compose mounts them), nothing
// secret is written in it, and it publishes on loopback only, mounts the
// socket read-only, keeps /data in a volume and adds the socket's group.
func TestComposeExample(t *testing.T) {
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Secrets     []string          `yaml:"secrets"`
			GroupAdd    []string          `yaml:"group_add"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["tagwatch"]
	if !ok {
		t.Fatal("no tagwatch service")
	}
	dir := t.TempDir()
	var env []string
	for k, v := range svc.Environment {
		if name, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
			if !slices.Contains(svc.Secrets, name) || compose.Secrets[name].File == "" {
				t.Errorf("%s reads secret %s, which the service does not get", k, name)
			}
			v = filepath.Join(dir, name)
			if err := os.WriteFile(v, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		} else if strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") {
			t.Errorf("%s is written in compose.yaml: use %s_FILE and a secret", k, k)
		}
		env = append(env, k+"="+v)
	}
	out, errOut, code := tagwatch(t, env, "config", "validate")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("compose.yaml's environment does not validate: exit %d\n%s%s", code, out, errOut)
	}
	if !slices.Equal(svc.Ports, []string{"127.0.0.1:8080:8080"}) {
		t.Errorf("ports %q: publish on the host's loopback only", svc.Ports)
	}
	if !slices.Contains(svc.Volumes, "/var/run/docker.sock:/var/run/docker.sock:ro") {
		t.Errorf("volumes %q: mount the socket read-only", svc.Volumes)
	}
	if !slices.ContainsFunc(svc.Volumes, func(v string) bool {
		name, ok := strings.CutSuffix(v, ":/data")
		_, declared := compose.Volumes[name]
		return ok && declared
	}) {
		t.Errorf("volumes %q: /data in a named volume", svc.Volumes)
	}
	if len(svc.GroupAdd) == 0 || !strings.Contains(svc.GroupAdd[0], "DOCKER_GID") {
		t.Errorf("group_add %q: the socket's group", svc.GroupAdd)
	}
}

// TestSystemdUnit keeps contrib/tagwatch.service true: its ExecStart uses
// serve's flags and keeps the data in its StateDirectory; systemd-analyze
// verify, when installed, accepts it.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../contrib/tagwatch.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	keys := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	exec0 := strings.Fields(keys["ExecStart"])
	if len(exec0) < 2 || exec0[0] != "/usr/local/bin/tagwatch" || exec0[1] != "serve" {
		t.Fatalf("ExecStart=%s", keys["ExecStart"])
	}
	help, _, _ := tagwatch(t, nil, "serve", "--help")
	for i, a := range exec0[2:] {
		if strings.HasPrefix(a, "--") && !strings.Contains(help, "\n  -"+strings.TrimPrefix(a, "--")+" ") {
			t.Errorf("ExecStart's %s is not a flag of serve", a)
		}
		if a == "--data" && !strings.HasPrefix(exec0[2+i+1], "/var/lib/"+keys["StateDirectory"]+"/") {
			t.Errorf("--data %s is not in StateDirectory=%s", exec0[2+i+1], keys["StateDirectory"])
		}
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "SupplementaryGroups"} {
		if keys[k] == "" {
			t.Errorf("no %s=", k)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
		return
	}
	// verify wants ExecStart's binary to exist: use this one.
	p := filepath.Join(t.TempDir(), "tagwatch.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/local/bin/tagwatch", os.Args[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", p).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
