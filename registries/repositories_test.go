package registries_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/registries"
)

func TestRepositoriesMatch(t *testing.T) {
	tests := []struct {
		patterns string
		repo     string
		want     int // length of the longest matching pattern; -1: no match
	}{
		// No patterns: every repository, at length 0.
		{"", "acme/app", 0},
		{"", "library/nginx", 0},
		// * stays within one segment.
		{"acme/*", "acme/app", 6},
		{"acme/*", "acme/team/app", -1},
		{"acme/*", "acme", -1},
		{"acme/*", "acmecorp/app", -1},
		{"acme/*", "other/app", -1},
		// ** is any number of segments, none included.
		{"acme/**", "acme/app", 7},
		{"acme/**", "acme/team/app", 7},
		{"acme/**", "acme", 7},
		{"acme/**", "acmecorp/app", -1},
		{"**", "anything/at/all", 2},
		{"acme/**/app", "acme/app", 11},
		{"acme/**/app", "acme/a/b/app", 11},
		{"acme/**/app", "acme/a/b/web", -1},
		{"**/app", "x/y/app", 6},
		// path.Match within a segment: ?, classes, a literal.
		{"acme/app-?", "acme/app-1", 10},
		{"acme/app-[0-9]", "acme/app-x", -1},
		{"acme/app", "acme/app", 8},
		{"acme/app", "acme/app2", -1},
		// Docker Hub's official images are library/…
		{"library/*", "library/nginx", 9},
		// The longest matching pattern counts, not the first.
		{"acme/*, acme/app", "acme/app", 8},
		{"acme/app, acme/*", "acme/app", 8},
		{"acme/app, acme/*", "acme/web", 6},
		// A registry-wide lookup (no repository) matches no pattern.
		{"**", "", -1},
		{"", "", 0},
	}
	for _, tc := range tests {
		r, err := registries.ParseRepositories(tc.patterns)
		if err != nil {
			t.Fatalf("ParseRepositories(%q): %v", tc.patterns, err)
		}
		n, ok := r.Match(tc.repo)
		if !ok {
			n = -1
		}
		if n != tc.want {
			t.Errorf("%q.Match(%q) = %d, want %d", tc.patterns, tc.repo, n, tc.want)
		}
	}
}

func TestParseRepositories(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"acme/*", []string{"acme/*"}},
		{" acme/* , acme/team/** ,", []string{"acme/*", "acme/team/**"}},
		{",,", nil},
		{"library/postgres,library/redis", []string{"library/postgres", "library/redis"}},
	}
	for _, tc := range good {
		got, err := registries.ParseRepositories(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseRepositories(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"Acme/*", `"Acme/*" has capitals; repository paths are lower-case`},
		{"/acme/*", `"/acme/*" must be a repository path such as acme/* (no leading, trailing or doubled /)`},
		{"acme/", "no leading, trailing or doubled /"},
		{"acme//app", "no leading, trailing or doubled /"},
		{"acme/app:1.0", "names a tag or digest"},
		{"acme/app@sha256:00", "names a tag or digest"},
		{"acme/app**", `uses ** inside "app**"; ** stands for whole segments: acme/**`},
		{"acme/[a-", "is not a valid pattern: syntax error in pattern"},
		{`acme\/app`, `holds a \`},
		{"acme/* acme/**", "holds a space; separate patterns with commas"},
	}
	for _, tc := range bad {
		_, err := registries.ParseRepositories(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRepositories(%q) = %v; want an error with %q", tc.in, err, tc.want)
		}
	}
	// Every bad pattern at once.
	_, err := registries.ParseRepositories("Acme/*, ok/*, x**")
	if err == nil || !strings.Contains(err.Error(), "Acme/*") || !strings.Contains(err.Error(), "x**") || strings.Contains(err.Error(), "ok/*") {
		t.Errorf("two bad patterns: %v", err)
	}
}

// TestRepositoriesVariable: every kind takes repositories, validates it as
// a setting of its own, and an error names the instance and the pattern.
func TestRepositoriesVariable(t *testing.T) {
	cat := registries.DefaultCatalog()
	for _, kind := range cat.Kinds() {
		spec := cat[kind].Spec()
		v, ok := spec.Variable("repositories")
		if !ok || v.Secret || v.Required || v.Endpoint {
			t.Errorf("%s: repositories is %+v (declared %v); want an optional, plain variable", kind, v, ok)
		}
		vals := registries.Values{}
		for k, val := range spec.Example {
			vals[k] = val
		}
		vals["repositories"] = "acme/*, Acme/**"
		_, err := spec.Validate(kind+".x", vals)
		want := "registry " + kind + `.x: repositories "Acme/**" has capitals; repository paths are lower-case`
		if err == nil || err.Error() != want {
			t.Errorf("%s: Validate = %v; want %s", kind, err, want)
		}
		vals["repositories"] = "acme/*, acme/**"
		if _, err := spec.Validate(kind+".x", vals); err != nil {
			t.Errorf("%s: good patterns refused: %v", kind, err)
		}
	}
}

// TestRefusedAdviceNamesCredentials: when a real registry refuses an
// instance limited to repositories (and with a proxy setting of its own),
// the advice names the credentials to check, not those settings.
func TestRefusedAdviceNamesCredentials(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "right"}})
	in := openInstance(t, "custom", "team", registries.Values{
		"url": reg.URL, "login": "alice", "password": "wrong", "proxy": "none", "repositories": "team/*",
	})
	_, err := in.Tags(ctx(t), image(t, reg.Host+"/team/app"))
	want := reg.Host + " refused the credentials of custom.team (401). Check login and password."
	if p := registries.Explain(err); !strings.HasPrefix(p.Reason, want) {
		t.Errorf("reason %q, want it to start with %q", p.Reason, want)
	}
}

// TestOutsideEveryPatternAdvice: a repository that the host's only
// instance leaves out of its repositories is read anonymously; when the
// real registry refuses that, the advice is to widen the instance's
// patterns, not to configure the host anew.
func TestOutsideEveryPatternAdvice(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "right"}})
	reg.Push(t, "other/app:1.0.0", regtest.Image(t, "other"))
	set, err := registries.NewSet(registries.DefaultCatalog(), []registries.Config{{
		Kind: "custom", Name: "team", Source: registries.SourceFile,
		Values: registries.Values{"url": reg.URL, "login": "alice", "password": "right", "repositories": "team/*"},
	}}, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := image(t, reg.Host+"/other/app:1.0.0")
	in, err := set.Resolve(img)
	if err != nil {
		t.Fatal(err)
	}
	if in.Source != registries.SourceImplicit {
		t.Fatalf("other/app resolved to %s; want the host's anonymous instance", in.ID())
	}
	_, err = in.Tags(ctx(t), img)
	want := reg.Host + " requires credentials (401), and custom.team serves only other repositories. Add other/app to the repositories of the one that may pull it."
	if p := registries.Explain(err); p.Reason != want {
		t.Errorf("reason %q\nwant   %q", p.Reason, want)
	}
}
