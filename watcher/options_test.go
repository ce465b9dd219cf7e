package watcher

import (
	"strings"
	"testing"
)

func TestParseTransformApply(t *testing.T) {
	tests := []struct {
		transform string
		tag       string
		want      string
	}{
		{`^(\d+\.\d+\.\d+)-(\d+)-.*$ => $1.$2`, "1.2.3-45-gabc1234", "1.2.3.45"},
		{`^(\d+\.\d+\.\d+)-(\d+)-.*$ => $1.$2`, "1.2.3", "1.2.3"}, // no match: unchanged
		{`^(\d+\.\d+\.\d+)-(\d+)-.*$ => $1.$2`, "latest", "latest"},
		{`^release_(\d+)_(\d+)$=>$1.$2`, "release_2024_10", "2024.10"}, // spaces optional
		{`  ^r(\d+)$   =>   ${1}.0  `, "r42", "42.0"},                  // trimmed
		{`-stable$ => -final`, "3.1.0-stable", "3.1.0-final"},          // unanchored: replaces the match only
		{`^(?P<v>\d+\.\d+)-(?P<n>\d+)$ => ${v}.${n}`, "7.2-5", "7.2.5"},
	}
	for _, tt := range tests {
		tr, err := ParseTransform(tt.transform)
		if err != nil {
			t.Fatalf("ParseTransform(%q): %v", tt.transform, err)
		}
		if got := tr.Apply(tt.tag); got != tt.want {
			t.Errorf("%q.Apply(%q) = %q, want %q", tt.transform, tt.tag, got, tt.want)
		}
	}
}

func TestTransformNilAndString(t *testing.T) {
	var none *Transform
	if got := none.Apply("1.2.3"); got != "1.2.3" {
		t.Errorf("nil Transform changed the tag: %q", got)
	}
	tr, err := ParseTransform(`^v(.*)$=>$1`)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseTransform(tr.String())
	if err != nil {
		t.Fatalf("String() %q does not parse back: %v", tr.String(), err)
	}
	if again.Apply("v1.2.3") != "1.2.3" {
		t.Errorf("round-tripped transform %q lost its meaning", tr.String())
	}
}

func TestParseTransformErrors(t *testing.T) {
	tests := []struct {
		transform string
		wantIn    string
	}{
		{`^(\d+)$`, "REGEX => REPLACEMENT"},
		{` => $1`, "missing regex"},
		{`^(\d+)$ => `, "missing replacement"},
		{`^(\d+$ => $1`, "missing closing )"},
	}
	for _, tt := range tests {
		_, err := ParseTransform(tt.transform)
		if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("ParseTransform(%q) error = %v, want one mentioning %q", tt.transform, err, tt.wantIn)
		}
	}
}

func TestParseTagOptions(t *testing.T) {
	opt, err := ParseTagOptions(`^\d+\.\d+\.\d+-alpine$`, `rc|beta`, `^(\d+\.\d+\.\d+)-(\d+)-.*$ => $1.$2`, "true", "Minor")
	if err != nil {
		t.Fatal(err)
	}
	if !opt.Include.MatchString("1.2.3-alpine") || opt.Include.MatchString("1.2.3") {
		t.Errorf("include %q matches the wrong tags", opt.Include)
	}
	if !opt.Exclude.MatchString("1.2.3-rc1") {
		t.Errorf("exclude %q does not match a pre-release", opt.Exclude)
	}
	if got := opt.Transform.Apply("1.2.3-4-gabcdef0"); got != "1.2.3.4" {
		t.Errorf("transform gave %q", got)
	}
	if opt.Digest == nil || !*opt.Digest {
		t.Errorf("digest = %v, want explicit true", opt.Digest)
	}
	if opt.Policy != UpdateMinor {
		t.Errorf("policy = %q, want minor", opt.Policy)
	}

	empty, err := ParseTagOptions("", "", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if empty.Include != nil || empty.Exclude != nil || empty.Transform != nil || empty.Digest != nil || empty.Policy != "" {
		t.Errorf("empty strings should leave every option unset, got %+v", empty)
	}
}

func TestParseTagOptionsDigestSpellings(t *testing.T) {
	for text, want := range map[string]bool{
		"true": true, "True": true, "1": true, "yes": true, "on": true,
		"false": false, "FALSE": false, "0": false, "no": false, "off": false,
	} {
		opt, err := ParseTagOptions("", "", "", text, "")
		if err != nil {
			t.Errorf("digest %q: %v", text, err)
			continue
		}
		if opt.Digest == nil || *opt.Digest != want {
			t.Errorf("digest %q = %v, want %v", text, opt.Digest, want)
		}
	}
}

func TestParseTagOptionsErrorsNameTheOption(t *testing.T) {
	tests := []struct {
		name                                        string
		include, exclude, transform, digest, policy string
		wantIn                                      []string
	}{
		{name: "include", include: `^(1\.2`, wantIn: []string{"include: error parsing regexp: missing closing ): "}},
		{name: "exclude", exclude: `[rc`, wantIn: []string{"exclude: error parsing regexp: missing closing ]"}},
		{name: "transform regex", transform: `^(\d+ => $1`, wantIn: []string{"transform: error parsing regexp"}},
		{name: "transform arrow", transform: `^(\d+)$`, wantIn: []string{"transform: ", "REGEX => REPLACEMENT"}},
		{name: "digest", digest: "maybe", wantIn: []string{`digest: want true or false, got "maybe"`}},
		{name: "policy", policy: "build", wantIn: []string{`policy: want major, minor or patch, got "build"`}},
		{name: "policy typo", policy: "minro", wantIn: []string{"policy: "}},
		{name: "all at once", include: `(`, policy: "x", wantIn: []string{"include: ", "policy: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, err := ParseTagOptions(tt.include, tt.exclude, tt.transform, tt.digest, tt.policy)
			if err == nil {
				t.Fatalf("no error, got options %+v", opt)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestParseTagOptionsPolicies(t *testing.T) {
	for _, policy := range []UpdateKind{UpdateMajor, UpdateMinor, UpdatePatch} {
		opt, err := ParseTagOptions("", "", "", "", " "+strings.ToUpper(string(policy))+" ")
		if err != nil {
			t.Errorf("policy %q: %v", policy, err)
			continue
		}
		if opt.Policy != policy {
			t.Errorf("policy %q parsed as %q", policy, opt.Policy)
		}
	}
}
