package watcher_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/dockertest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// instanceUsers are the accounts of the registry the instances share: one
// per instance, each allowed (with token auth) only its own repositories.
var instanceUsers = map[string]string{"alpha": "alpha-pw", "beta": "beta-pw", "gamma": "gamma-pw"}

// instanceGrants is what each account may pull under token auth: alpha
// team-a's repositories at any depth, beta team-b's first level, gamma all.
func instanceGrants(user string, a regtest.Access) []string {
	switch {
	case user == "gamma", user == regtest.Admin,
		user == "alpha" && strings.HasPrefix(a.Name, "team-a/"),
		user == "beta" && strings.HasPrefix(a.Name, "team-b/") && strings.Count(a.Name, "/") == 1:
		return a.Actions
	}
	return nil
}

// instanceConfigs are three instances of one registry (url) with the
// credentials of the three accounts: two limited to repositories, one not.
func instanceConfigs(url string) []registries.Config {
	c := func(name, user, repos string) registries.Config {
		v := registries.Values{"url": url, "login": user, "password": instanceUsers[user]}
		if repos != "" {
			v["repositories"] = repos
		}
		return registries.Config{Kind: "custom", Name: name, Source: registries.SourceFile, Values: v}
	}
	return []registries.Config{c("alpha", "alpha", "team-a/**"), c("beta", "beta", "team-b/*"), c("gamma", "gamma", "")}
}

// TestInstancesShareARegistry: three instances of one registry host, each
// with other credentials, two limited to repositories, read their own
// images: the registry sees each repository fetched with the credentials
// of the instance that serves it (a Front in front of the real registry
// reads the Basic user or the bearer token's subject of every request).
// With token auth each account may pull only its own repositories, so a
// wrong pick fails; and each instance still asks for one token per cycle,
// carrying the pull scopes of all of its repositories.
func TestInstancesShareARegistry(t *testing.T) {
	for _, token := range []bool{false, true} {
		t.Run(map[bool]string{false: "htpasswd", true: "token"}[token], func(t *testing.T) {
			reg := regtest.Start(t, regtest.Options{Users: instanceUsers, Token: token})
			if token {
				reg.Issuer.Grant = instanceGrants
			}
			for i, repoTag := range []string{"team-a/app:1.0.0", "team-a/app:1.1.0", "team-a/sub/tool:2.0.0",
				"team-b/app:1.0.0", "team-b/app:1.0.1", "team-b/web:3.0.0", "other/app:1.0.0"} {
				reg.Push(t, repoTag, regtest.Image(t, fmt.Sprintf("instances-%d", i)))
			}
			front := reg.Front(t, regtest.FrontOptions{})
			set, err := registries.NewSet(registries.DefaultCatalog(), instanceConfigs(front.URL), registries.Options{})
			if err != nil {
				t.Fatal(err)
			}
			target := func(repoTag, named string) watcher.Target {
				img, err := registries.ParseImage(front.Host + "/" + repoTag)
				if err != nil {
					t.Fatal(err)
				}
				return watcher.Target{Image: img, Platform: regtest.Platform("linux/amd64"), Options: watcher.TagOptions{Registry: named}}
			}
			targets := []watcher.Target{
				target("team-a/app:1.0.0", ""),
				target("team-a/sub/tool:2.0.0", ""),
				target("team-b/app:1.0.0", ""),
				target("team-b/web:3.0.0", ""),
				target("other/app:1.0.0", ""),
				target("team-a/app:1.0.0", "custom.gamma"), // named: beats the patterns
				target("team-b/app:1.0.0", "custom.alpha"), // named, outside its patterns: an error
			}
			want := []struct{ registry, update, latest string }{
				{"custom.alpha", "minor", "1.1.0"},
				{"custom.alpha", "none", "2.0.0"},
				{"custom.beta", "patch", "1.0.1"},
				{"custom.beta", "none", "3.0.0"},
				{"custom.gamma", "none", "1.0.0"},
				{"custom.gamma", "minor", "1.1.0"},
				{"custom.alpha", "unknown", ""},
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			checker := &watcher.Checker{Registries: func() *registries.Set { return set }}
			results := checker.Run(ctx, targets)
			for i, r := range results {
				w := want[i]
				if r.Registry != w.registry || string(r.Update) != w.update || r.LatestTag != w.latest {
					t.Errorf("%s (named %q): %s %s %s, error %q; want %s %s %s", r.Reference, targets[i].Options.Registry,
						r.Registry, r.Update, r.LatestTag, r.Error, w.registry, w.update, w.latest)
				}
				if w.update != "unknown" && r.Error != "" {
					t.Errorf("%s: %s", r.Reference, r.Error)
				}
			}
			wantErr := front.Host + "/team-b/app:1.0.0 names the registry custom.alpha, which serves only team-a/** on " + front.Host +
				". Add team-b/app to its repositories, or name another instance."
			if got := results[6].Error; got != wantErr {
				t.Errorf("named outside its patterns: %q\nwant %q", got, wantErr)
			}

			// Who read which repository, as the registry saw it.
			readers := map[string]map[string]bool{}
			for _, q := range front.Log() {
				repo, _, ok := strings.Cut(strings.TrimPrefix(q.Path, "/v2/"), "/tags/list")
				if !ok {
					repo, _, ok = strings.Cut(strings.TrimPrefix(q.Path, "/v2/"), "/manifests/")
				}
				if !ok || q.User == regtest.Admin {
					continue
				}
				if q.Status >= 300 {
					t.Errorf("%s %s by %q: %d", q.Method, q.Path, q.User, q.Status)
				}
				if readers[repo] == nil {
					readers[repo] = map[string]bool{}
				}
				readers[repo][q.User] = true
			}
			wantReaders := map[string][]string{
				"team-a/app":      {"alpha", "gamma"},
				"team-a/sub/tool": {"alpha"},
				"team-b/app":      {"beta"},
				"team-b/web":      {"beta"},
				"other/app":       {"gamma"},
			}
			for repo, users := range wantReaders {
				if got := slices.Sorted(maps.Keys(readers[repo])); !slices.Equal(got, users) {
					t.Errorf("%s was read by %q; want %q", repo, got, users)
				}
			}
			if len(readers) != len(wantReaders) {
				t.Errorf("repositories read: %v", slices.Sorted(maps.Keys(readers)))
			}

			if !token {
				return
			}
			// One token per instance for the cycle, with the pull scopes of
			// all of its repositories.
			var tokens []string
			for _, q := range reg.Issuer.Log() {
				if q.User == regtest.Admin {
					continue
				}
				scopes := slices.Clone(q.Scopes)
				sort.Strings(scopes)
				tokens = append(tokens, q.User+" "+strings.Join(scopes, " "))
			}
			sort.Strings(tokens)
			wantTokens := []string{
				"alpha repository:team-a/app:pull repository:team-a/sub/tool:pull",
				"beta repository:team-b/app:pull repository:team-b/web:pull",
				"gamma repository:other/app:pull repository:team-a/app:pull",
			}
			if !slices.Equal(tokens, wantTokens) {
				t.Errorf("token requests:\n%s\nwant:\n%s", strings.Join(tokens, "\n"), strings.Join(wantTokens, "\n"))
			}
		})
	}
}

// TestLabelNamesRegistry: containers of a real Docker engine pick their
// registry instance with the tagwatch.registry label. Three containers run
// one image: without the label it goes to the instance whose repositories
// match; labelled custom.beta it goes to beta; labelled with an instance
// that does not exist it is stored with an error naming the image and the
// instance. A malformed label leaves its container out, named, and the
// others go on.
func TestLabelNamesRegistry(t *testing.T) {
	host := dockertest.Host(t)
	reg := regtest.Start(t, regtest.Options{Users: instanceUsers, Token: true})
	reg.Issuer.Grant = func(user string, a regtest.Access) []string {
		if user == "alpha" || user == "beta" || user == regtest.Admin {
			return a.Actions
		}
		return nil
	}
	// The engine pulls anonymously; tagwatch reads with the accounts.
	reg.Issuer.Anonymous = func(a regtest.Access) []string { return []string{"pull"} }
	prefix := fmt.Sprintf("tw-label-registry-%d", time.Now().UnixNano())
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, prefix+"-1.0.0"))
	front := reg.Front(t, regtest.FrontOptions{})
	ref := front.Host + "/team/app:1.0.0"
	dockertest.Pull(t, host, ref)
	dockertest.Create(t, host, prefix+"-plain", ref, nil)
	dockertest.Create(t, host, prefix+"-beta", ref, map[string]string{watcher.LabelRegistry: "custom.beta"})
	dockertest.Create(t, host, prefix+"-nope", ref, map[string]string{watcher.LabelRegistry: "custom.nope"})
	dockertest.Create(t, host, prefix+"-bad", ref, map[string]string{watcher.LabelRegistry: "beta"})
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, prefix+"-1.1.0"))

	configs := instanceConfigs(front.URL)[:2]
	configs[0].Values["repositories"] = "team/*"
	delete(configs[1].Values, "repositories")
	set, err := registries.NewSet(registries.DefaultCatalog(), configs, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t)
	src := &watcher.DockerSource{Watcher: "local", Host: host, WatchByDefault: true, WatchStopped: true}
	t.Cleanup(func() { src.Close() })
	d := watchtest.DaemonOn(st, set, watchtest.OnlyHost{Source: src, Host: front.Host})
	rep := d.RunCycle(context.Background(), d.Sources)
	wantBad := prefix + `-bad: label tagwatch.registry: "beta" is not a registry instance: write kind.name, e.g. hub.work`
	if !strings.Contains(rep.Sources["local"], wantBad) {
		t.Errorf("the malformed label is not reported as %q: %q", wantBad, rep.Sources["local"])
	}
	imgs, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	byRegistry := map[string]string{} // registry → container, update, error
	for _, img := range imgs {
		if img.Reference != ref {
			continue
		}
		var where []string
		for _, l := range img.Where {
			where = append(where, l.Container)
		}
		byRegistry[img.Registry] = strings.Join(where, ",") + " " + img.Update + " " + img.LatestTag + " " + img.Error
	}
	want := map[string]string{
		"custom.alpha": prefix + "-plain minor 1.1.0 ",
		"custom.beta":  prefix + "-beta minor 1.1.0 ",
		"custom.nope":  prefix + "-nope unknown  " + ref + " names the registry custom.nope, which does not exist. Add it (Settings → Registries, or the config file) or name another.",
	}
	if !maps.Equal(byRegistry, want) {
		t.Errorf("records of %s:\n%q\nwant\n%q", ref, byRegistry, want)
	}
	var users []string
	for _, q := range front.Log() {
		if strings.HasSuffix(q.Path, "/tags/list") {
			users = append(users, q.User)
		}
	}
	sort.Strings(users)
	if !slices.Equal(users, []string{"alpha", "beta"}) {
		t.Errorf("the tags of team/app were listed by %q; want alpha and beta once each", users)
	}
}
