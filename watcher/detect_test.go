package watcher

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// corpusCase is one entry of testdata/corpus.yaml.
type corpusCase struct {
	Repo    string   `yaml:"repo"` // testdata/tags/<repo>.txt
	Tags    []string `yaml:"tags"` // inline instead of a repo file
	Current string   `yaml:"current"`

	Include   string `yaml:"include"`
	Exclude   string `yaml:"exclude"`
	Transform string `yaml:"transform"`
	Digest    string `yaml:"digest"`
	Policy    string `yaml:"policy"`

	Want  string `yaml:"want"`
	Kind  string `yaml:"kind"`
	Watch *bool  `yaml:"watch"` // nil: not asserted
	Why   string `yaml:"why"`
}

func (c corpusCase) name() string {
	name := c.Repo
	if name == "" {
		name = "inline"
	}
	name += "/" + c.Current
	for _, opt := range []struct{ key, value string }{
		{"include", c.Include}, {"exclude", c.Exclude}, {"transform", c.Transform},
		{"digest", c.Digest}, {"policy", c.Policy},
	} {
		if opt.value != "" {
			name += "/" + opt.key + "=" + opt.value
		}
	}
	return name
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	if err := yaml.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func loadTags(t testing.TB, repo string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "tags", repo+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tags []string
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if tag := strings.TrimSpace(lines.Text()); tag != "" {
			tags = append(tags, tag)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return tags
}

// allCorpusTags returns every tag of every repository file, for seeding the
// fuzzer and for benchmarks.
func allCorpusTags(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "tags", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, file := range files {
		tags = append(tags, loadTags(t, strings.TrimSuffix(filepath.Base(file), ".txt"))...)
	}
	return tags
}

const minCorpusCases = 170

func TestDecideCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < minCorpusCases {
		t.Errorf("corpus has %d cases, want at least %d", len(cases), minCorpusCases)
	}
	repos := map[string][]string{}
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			tags := c.Tags
			if c.Repo != "" {
				if _, ok := repos[c.Repo]; !ok {
					repos[c.Repo] = loadTags(t, c.Repo)
				}
				tags = repos[c.Repo]
			}
			// Guard the corpus itself against typos: both tags must be real.
			if !slices.Contains(tags, c.Current) {
				t.Fatalf("current %q is not among the repository's tags", c.Current)
			}
			if !slices.Contains(tags, c.Want) {
				t.Fatalf("want %q is not among the repository's tags", c.Want)
			}
			opt, err := ParseTagOptions(c.Include, c.Exclude, c.Transform, c.Digest, c.Policy)
			if err != nil {
				t.Fatal(err)
			}
			got := Decide(c.Current, tags, opt)
			if got.Tag != c.Want || string(got.Kind) != c.Kind {
				t.Errorf("Decide(%q) = %s (%s), want %s (%s) %s", c.Current, got.Tag, got.Kind, c.Want, c.Kind, c.Why)
			}
			if c.Watch != nil && got.WatchDigest != *c.Watch {
				t.Errorf("Decide(%q).WatchDigest = %v, want %v %s", c.Current, got.WatchDigest, *c.Watch, c.Why)
			}
		})
	}
}

func TestDecideNeverOffersOlderOrEqual(t *testing.T) {
	// Every tag of every repository as current: whatever is offered must be
	// strictly newer and of the same shape, and "nothing" must be current.
	for _, file := range []string{"nginx", "postgres", "python", "linuxserver-plex", "home-assistant", "traefik", "ghcr-sha"} {
		tags := loadTags(t, file)
		for _, current := range tags {
			got := Decide(current, tags, TagOptions{})
			if got.Kind == UpdateNone {
				if got.Tag != current {
					t.Errorf("%s: Decide(%q) = %q with kind none", file, current, got.Tag)
				}
				continue
			}
			from, _ := ParseTag(current)
			to, ok := ParseTag(got.Tag)
			if !ok || !from.Comparable(to) || from.Compare(to) >= 0 {
				t.Errorf("%s: Decide(%q) offered %q (%s), not newer of the same shape", file, current, got.Tag, got.Kind)
			}
		}
	}
}

func TestDecideIgnoresTagOrder(t *testing.T) {
	tags := loadTags(t, "python")
	reversed := slices.Clone(tags)
	slices.Reverse(reversed)
	for _, current := range []string{"3.8.0b1-alpine", "3.12.1-slim", "3.13-rc", "3.12"} {
		if a, b := Decide(current, tags, TagOptions{}), Decide(current, reversed, TagOptions{}); a != b {
			t.Errorf("Decide(%q) depends on order: %+v vs %+v", current, a, b)
		}
	}
	// Same version spelled two ways: the choice must not depend on order either.
	spellings := []string{"1.0.0", "1.0.1-rc.1", "1.0.1-rc1"}
	forward := Decide("1.0.1-rc0", spellings, TagOptions{})
	slices.Reverse(spellings)
	if backward := Decide("1.0.1-rc0", spellings, TagOptions{}); forward != backward {
		t.Errorf("tie broken by order: %+v vs %+v", forward, backward)
	}
}

func TestDecideEmptyAndOddInput(t *testing.T) {
	tests := []struct {
		name    string
		current string
		tags    []string
		want    Decision
	}{
		{"no tags", "1.2.3", nil, Decision{Tag: "1.2.3", Kind: UpdateNone}},
		{"empty current", "", []string{"1.0.0"}, Decision{Tag: "", Kind: UpdateNone, WatchDigest: true}},
		{"current missing from list", "1.2.3", []string{"1.2.4", "1.3.0"}, Decision{Tag: "1.3.0", Kind: UpdateMinor}},
		{"only older tags", "2.0.0", []string{"1.0.0", "1.9.9"}, Decision{Tag: "2.0.0", Kind: UpdateNone}},
		{"sha never offered", "1.0.0", []string{"1.0.0", "0a1b2c3d", "sha-9f8e7d6", "1234567"}, Decision{Tag: "1.0.0", Kind: UpdateNone}},
		{"date never offered to a version", "17", []string{"17", "20240125"}, Decision{Tag: "17", Kind: UpdateNone}},
		{"five parts fit no shape", "1.2.3.4.5", []string{"1.2.3.4.6"}, Decision{Tag: "1.2.3.4.5", Kind: UpdateNone, WatchDigest: true}},
		{"zero padding is the same version", "18.04", []string{"18.4", "18.04"}, Decision{Tag: "18.04", Kind: UpdateNone}},
		{"rc10 after rc9", "2.0.0-rc9", []string{"2.0.0-rc10", "2.0.0-rc2"}, Decision{Tag: "2.0.0-rc10", Kind: UpdatePrerelease}},
		{"alpha beta rc order", "2.0.0-alpha.3", []string{"2.0.0-beta.1", "2.0.0-rc.1", "2.0.0-alpha.4"}, Decision{Tag: "2.0.0-rc.1", Kind: UpdatePrerelease}},
		{"SNAPSHOT is a pre-release", "1.0.0", []string{"1.0.1-SNAPSHOT", "1.0.0"}, Decision{Tag: "1.0.0", Kind: UpdateNone}},
		{"preview is a pre-release", "8.0.1", []string{"9.0.0-preview.7"}, Decision{Tag: "8.0.1", Kind: UpdateNone}},
		{"Debian revision orders", "2.4.1-1", []string{"2.4.1-2", "2.4.1-3"}, Decision{Tag: "2.4.1-3", Kind: UpdateBuild}},
		{"Alpine revision orders", "1.36.1-r0", []string{"1.36.1-r2", "1.36.1-r15"}, Decision{Tag: "1.36.1-r15", Kind: UpdateBuild}},
		{"LinuxServer counter across versions", "4.0.2.1-ls230", []string{"4.0.2.1-ls231", "4.0.3.0-ls232"}, Decision{Tag: "4.0.3.0-ls232", Kind: UpdatePatch}},
		{"4th part is patch", "4.0.2.1", []string{"4.0.2.2"}, Decision{Tag: "4.0.2.2", Kind: UpdatePatch}},
		{"calendar minor", "2024.10.1", []string{"2024.11.0"}, Decision{Tag: "2024.11.0", Kind: UpdateMinor}},
		{"calendar major", "2024.10.1", []string{"2025.1.0"}, Decision{Tag: "2025.1.0", Kind: UpdateMajor}},
		{"two-part major", "18.04", []string{"20.04"}, Decision{Tag: "20.04", Kind: UpdateMajor}},
		{"one-part major", "16", []string{"17"}, Decision{Tag: "17", Kind: UpdateMajor}},
		{"version- prefix stays", "version-1.2.3", []string{"1.2.4", "version-1.2.4"}, Decision{Tag: "version-1.2.4", Kind: UpdatePatch}},
		{"bitnami debian-12 is a name, r13 a counter", "16.4.0-debian-12-r13", []string{"16.4.0-debian-12-r14", "16.4.0-debian-11-r20"}, Decision{Tag: "16.4.0-debian-12-r14", Kind: UpdateBuild}},
		{"floating over pre-release", "3.13", []string{"3.13.0rc2"}, Decision{Tag: "3.13", Kind: UpdateNone, WatchDigest: true}},
		{"not floating over another line", "7.2-alpine", []string{"7.2.5-bookworm", "7.3.1-alpine"}, Decision{Tag: "7.2-alpine", Kind: UpdateNone}},
		{"bare -dev is republished", "1.23-dev", nil, Decision{Tag: "1.23-dev", Kind: UpdateNone, WatchDigest: true}},
		{"prerelease of another version from prerelease", "3.13.0rc2", []string{"3.14.0a1"}, Decision{Tag: "3.13.0rc2", Kind: UpdateNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.current, tt.tags, TagOptions{}); got != tt.want {
				t.Errorf("Decide(%q, %q) = %+v, want %+v", tt.current, tt.tags, got, tt.want)
			}
		})
	}
}

func TestDecidePolicyCaps(t *testing.T) {
	tags := []string{"1.2.3", "1.2.4", "1.2.5-rc1", "1.3.0", "1.3.1", "2.0.0", "1.2.3-r1"}
	tests := []struct {
		policy  UpdateKind
		current string
		want    Decision
	}{
		{"", "1.2.3", Decision{Tag: "2.0.0", Kind: UpdateMajor}},
		{UpdateMajor, "1.2.3", Decision{Tag: "2.0.0", Kind: UpdateMajor}},
		{UpdateMinor, "1.2.3", Decision{Tag: "1.3.1", Kind: UpdateMinor}},
		{UpdatePatch, "1.2.3", Decision{Tag: "1.2.4", Kind: UpdatePatch}},
		{UpdatePatch, "1.3.1", Decision{Tag: "1.3.1", Kind: UpdateNone}},
		{UpdatePatch, "1.2.3-r0", Decision{Tag: "1.2.3-r1", Kind: UpdateBuild}},
		{UpdatePatch, "1.2.5-rc0", Decision{Tag: "1.2.5-rc1", Kind: UpdatePrerelease}},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy)+"/"+tt.current, func(t *testing.T) {
			if got := Decide(tt.current, tags, TagOptions{Policy: tt.policy}); got != tt.want {
				t.Errorf("Decide(%q, policy %q) = %+v, want %+v", tt.current, tt.policy, got, tt.want)
			}
		})
	}
}

func TestDecideDigestOption(t *testing.T) {
	yes, no := true, false
	tags := []string{"16", "16.4", "17", "17.0"}
	tests := []struct {
		current string
		digest  *bool
		want    bool
	}{
		{"16", nil, true},
		{"16", &no, false},
		{"16.4", nil, false},
		{"16.4", &yes, true},
		{"latest", nil, true},
		{"latest", &no, false},
	}
	for _, tt := range tests {
		got := Decide(tt.current, tags, TagOptions{Digest: tt.digest})
		if got.WatchDigest != tt.want {
			t.Errorf("Decide(%q, digest %v).WatchDigest = %v, want %v", tt.current, tt.digest, got.WatchDigest, tt.want)
		}
	}
}

func TestParseTagShapes(t *testing.T) {
	tests := []struct {
		tag        string
		ok         bool
		sameShape  []string // tags that must be comparable with tag
		otherShape []string // tags that must not be
	}{
		{"v1.2.3", true, []string{"v1.2.4", "v2.0.0-rc1"}, []string{"1.2.3", "v1.2", "v1.2.3.4"}},
		{"1.25.3-alpine", true, []string{"1.26.0-alpine", "1.26.0rc1-alpine"}, []string{"1.25.3", "1.25.3-bookworm", "1.25.3-alpine-slim", "1.25-alpine"}},
		{"3.12.1-slim-bookworm", true, []string{"3.13.0-slim-bookworm"}, []string{"3.12.1-slim", "3.12.1-bookworm-slim"}},
		{"16.4-alpine3.20", true, []string{"17.0-alpine3.20"}, []string{"16.4-alpine3.19", "16.4-alpine"}},
		{"4.0.2.1-ls230", true, []string{"4.0.2.1-ls231", "4.0.3.0-ls1"}, []string{"4.0.2.1", "4.0.2-ls230"}},
		{"11.2.0-security-01", true, []string{"11.2.2-security-02"}, []string{"11.2.0", "11.2.0-security-01-ubuntu"}},
		{"jammy-20240125", true, []string{"jammy-20240214", "jammy-20240125.1"}, []string{"noble-20240605", "20240125"}},
		{"2024-01-25", true, []string{"2024-02-08", "2024-02-08.1"}, []string{"20240125", "2024-01-25T10-00-00Z", "2024-01-25-alpine", "2024.01.25"}},
		{"RELEASE.2024-09-22T00-33-43Z", true, []string{"RELEASE.2024-10-01T01-02-03Z"}, []string{"RELEASE.2024-09-22T00-33Z", "RELEASE.2024-09-22T003343Z", "2024-09-22T00-33-43Z"}},
		{"2024-09-22_0033", true, []string{"2024-09-23_1200"}, []string{"2024-09-22", "2024-09-22_003300", "2024-09-22-0033"}},
		{"20240922-003343", true, []string{"20240923-120000"}, []string{"20240922", "20240922-0033", "2024-09-22-003343"}},
		{"1.1.1w", true, []string{"1.1.1", "1.1.1a", "3.0.14"}, []string{"1.1.1w-alpine", "1.1"}},
		{"8u412-b08", true, []string{"8u422-b05", "8u20-b26"}, []string{"8", "8.0.412-b08", "8u412-b08-jre", "11.0.23_9"}},
		{"1.2.3-alpine-rc1", true, []string{"1.2.3-alpine", "1.2.4-alpine-beta.2"}, []string{"1.2.3-rc1", "1.2.3-alpine-rc1-slim"}},
		{"1.22-nightly", true, []string{"1.23-nightly"}, []string{"1.22", "1.22-dev", "1.22-nightly-rootless"}},
		{"1.0.0-nightly.20240101", true, []string{"1.0.0"}, nil},
		{"pr-42", false, nil, nil},
		{"pull_42", false, nil, nil},
		{"1234567", false, nil, nil},
		{"123456789", false, nil, nil},
		{"20241340", false, nil, nil},
		{"1727000000", true, []string{"1727086400"}, nil},
		{"123456", true, []string{"123457"}, nil},
		{"17beta1", true, []string{"17rc1", "17"}, []string{"17.0", "17beta1-alpine"}},
		{"1.40.2.8395-c67dce28e-ls214", true, []string{"1.41.1.9057-af5eaea7a-ls240"}, []string{"1.40.2.8395-ls214"}},
		{"amd64-4.0.9.2244-ls254", true, []string{"amd64-4.0.10.1-ls255"}, []string{"arm64v8-4.0.9.2244-ls254", "4.0.9.2244-ls254"}},
		{"16", true, []string{"17"}, []string{"20240125", "16.4"}},
		{"latest", false, nil, nil},
		{"main", false, nil, nil},
		{"sha-0a1b2c3", false, nil, nil},
		{"git-1234567", false, nil, nil},
		{"0a1b2c3d", false, nil, nil},
		{"main-0a1b2c3", false, nil, nil},
		{"alpine3.20", false, nil, nil},
		{"iron-alpine3.19", false, nil, nil},
		{"amd64-latest", false, nil, nil},
		{"1.2.3.4.5", false, nil, nil},
		{"99999999999999999999", false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			a, ok := ParseTag(tt.tag)
			if ok != tt.ok {
				t.Fatalf("ParseTag(%q) ok = %v, want %v", tt.tag, ok, tt.ok)
			}
			if a.String() != tt.tag && ok {
				t.Errorf("String() = %q, want the original %q", a.String(), tt.tag)
			}
			for _, other := range tt.sameShape {
				if b, ok := ParseTag(other); !ok || !a.Comparable(b) {
					t.Errorf("%q and %q should be comparable (parsed %v)", tt.tag, other, ok)
				}
			}
			for _, other := range tt.otherShape {
				if b, ok := ParseTag(other); ok && a.Comparable(b) {
					t.Errorf("%q and %q should not be comparable", tt.tag, other)
				}
			}
		})
	}
}

func TestTagCompareOrder(t *testing.T) {
	// Each list is in ascending order within one shape.
	ascending := [][]string{
		{"3.8.0a4", "3.8.0b1", "3.8.0b2", "3.8.0rc1", "3.8.0", "3.8.1"},
		{"17beta1", "17beta3", "17rc1", "17", "18beta1"},
		{"2.0.0-SNAPSHOT", "2.0.0-alpha", "2.0.0-alpha.1", "2.0.0-beta.2", "2.0.0-preview.1", "2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-rc.10", "2.0.0"},
		{"4.0.2.1-ls230", "4.0.2.1-ls231", "4.0.3.0-ls232", "4.0.10.0-ls1"},
		{"2024.9.3", "2024.10.0.dev20240907", "2024.10.0b0", "2024.10.0b3", "2024.10.0", "2024.10.1", "2025.1.0"},
		{"1.2.3-r1", "1.2.3-r2", "1.2.3-r10", "1.2.4-r0"},
		{"18.04", "18.10", "20.04", "22.04"},
		{"jammy-20231004", "jammy-20240125", "jammy-20240911"},
		{"noble-20240801", "noble-20240827", "noble-20240827.1", "noble-20240827.2", "noble-20240904"},
		{"2023-12-31", "2024-01-25", "2024-01-25.1", "2024-02-01", "2024-10-01"},
		{"RELEASE.2024-09-21T23-59-59Z", "RELEASE.2024-09-22T00-33-43Z", "RELEASE.2024-09-22T09-00-00Z", "RELEASE.2024-10-01T00-00-00Z"},
		{"20240921-235959", "20240922-003343", "20240922-120000"},
		{"1.1.0l", "1.1.1-pre9", "1.1.1", "1.1.1a", "1.1.1k", "1.1.1w", "3.0.0"},
		{"8u20-b26", "8u402-b06", "8u412-b07", "8u412-b08", "8u422-b05"},
		{"1.2.3-alpine-rc1", "1.2.3-alpine-rc2", "1.2.3-alpine", "1.2.4-alpine-beta.1", "1.2.4-alpine"},
		{"1.21-nightly", "1.22-nightly", "2.0-nightly"},
	}
	for _, list := range ascending {
		tags := make([]Tag, len(list))
		for i, s := range list {
			var ok bool
			if tags[i], ok = ParseTag(s); !ok {
				t.Fatalf("ParseTag(%q) failed", s)
			}
		}
		for i := range tags {
			for j := range tags {
				want := 0
				if i < j {
					want = -1
				} else if i > j {
					want = 1
				}
				if !tags[i].Comparable(tags[j]) {
					t.Errorf("%s and %s should be comparable", list[i], list[j])
				}
				if got := tags[i].Compare(tags[j]); got != want {
					t.Errorf("Compare(%s, %s) = %d, want %d", list[i], list[j], got, want)
				}
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	// 1,000 tags in the mix a big repository has: several variants per
	// version, floating tags, pre-releases and words.
	tags := make([]string, 0, 1000)
	variants := []string{"", "-alpine", "-bookworm", "-bookworm-slim", "-alpine3.20"}
	for major := 1; len(tags) < 990; major++ {
		for minor := 0; minor < 10 && len(tags) < 990; minor++ {
			for patch := 0; patch < 4 && len(tags) < 990; patch++ {
				for _, v := range variants {
					tags = append(tags, strconv.Itoa(major)+"."+strconv.Itoa(minor)+"."+strconv.Itoa(patch)+v)
				}
			}
			tags = append(tags, strconv.Itoa(major)+"."+strconv.Itoa(minor)+"-alpine", strconv.Itoa(major)+"."+strconv.Itoa(minor)+".0-rc1")
		}
	}
	tags = append(tags, "latest", "alpine", "bookworm", "slim", "sha-0a1b2c3", "0a1b2c3d", "main", "edge", "nightly", "stable")
	for _, bench := range []struct {
		name    string
		current string
		opt     TagOptions
	}{
		{"pinned", "2.3.1-alpine", TagOptions{}},
		{"floating", "2.3-alpine", TagOptions{}},
		{"filtered", "2.3.1-alpine", mustOptions(b, `-alpine$`, `rc`, "", "", "minor")},
		{"transform", "2.3.1-alpine", mustOptions(b, "", "", `^(\d+\.\d+)\.(\d+)-alpine$ => $1.$2`, "", "")},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Decide(bench.current, tags, bench.opt)
			}
		})
	}
}

func mustOptions(t testing.TB, include, exclude, transform, digest, policy string) TagOptions {
	t.Helper()
	opt, err := ParseTagOptions(include, exclude, transform, digest, policy)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}
