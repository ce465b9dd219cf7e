package watcher

import (
	"strings"
	"testing"
)

func TestLabelEnabled(t *testing.T) {
	tests := []struct {
		labels    map[string]string
		byDefault bool
		want      bool
		err       string
	}{
		{labels: nil, byDefault: true, want: true},
		{labels: nil, byDefault: false, want: false},
		{labels: map[string]string{"other": "x"}, byDefault: true, want: true},
		{labels: map[string]string{LabelEnable: "true"}, byDefault: false, want: true},
		{labels: map[string]string{LabelEnable: "false"}, byDefault: true, want: false},
		{labels: map[string]string{LabelEnable: "yes"}, byDefault: false, want: true},
		{labels: map[string]string{LabelEnable: "0"}, byDefault: true, want: false},
		{labels: map[string]string{LabelEnable: "maybe"}, byDefault: true, err: `label tagwatch.enable: want true or false, got "maybe"`},
		// An empty value is a mistake, not "unset": say so rather than guess.
		{labels: map[string]string{LabelEnable: ""}, byDefault: true, err: "label tagwatch.enable"},
	}
	for _, tt := range tests {
		got, err := labelEnabled(tt.labels, tt.byDefault)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("labelEnabled(%v, %v) = %v, %v; want error containing %q", tt.labels, tt.byDefault, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("labelEnabled(%v, %v) = %v, %v; want %v", tt.labels, tt.byDefault, got, err, tt.want)
		}
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		check  func(t *testing.T, s labelSettings)
		errs   []string // each must appear in the error
		not    []string // none may appear in the error
	}{
		{
			name:   "none",
			labels: map[string]string{"com.docker.compose.project": "home"},
			check: func(t *testing.T, s labelSettings) {
				if s.Options.Include != nil || s.Options.Exclude != nil || s.Options.Transform != nil ||
					s.Options.Digest != nil || s.Options.Policy != "" || s.DisplayName != "" || s.LinkTemplate != "" {
					t.Errorf("got %+v, want defaults", s)
				}
			},
		},
		{
			name: "all",
			labels: map[string]string{
				LabelEnable:       "true",
				LabelInclude:      `^\d+\.\d+\.\d+$`,
				LabelExclude:      `-rc`,
				LabelTransform:    `^v(.*)$ => $1`,
				LabelPolicy:       "Minor",
				LabelDigest:       "on",
				LabelDisplayName:  "Web server",
				LabelLinkTemplate: "https://example.com/releases/{{.LatestTag}}",
			},
			check: func(t *testing.T, s labelSettings) {
				o := s.Options
				if o.Include == nil || !o.Include.MatchString("1.2.3") || o.Include.MatchString("1.2") {
					t.Errorf("include = %v", o.Include)
				}
				if o.Exclude == nil || !o.Exclude.MatchString("1.0-rc1") {
					t.Errorf("exclude = %v", o.Exclude)
				}
				if got := o.Transform.Apply("v1.2"); got != "1.2" {
					t.Errorf("transform(v1.2) = %q", got)
				}
				if o.Policy != UpdateMinor {
					t.Errorf("policy = %q", o.Policy)
				}
				if o.Digest == nil || !*o.Digest {
					t.Errorf("digest = %v", o.Digest)
				}
				if s.DisplayName != "Web server" || s.LinkTemplate != "https://example.com/releases/{{.LatestTag}}" {
					t.Errorf("display, link = %q, %q", s.DisplayName, s.LinkTemplate)
				}
			},
		},
		{
			name:   "digest off",
			labels: map[string]string{LabelDigest: "false"},
			check: func(t *testing.T, s labelSettings) {
				if s.Options.Digest == nil || *s.Options.Digest {
					t.Errorf("digest = %v, want explicit false", s.Options.Digest)
				}
			},
		},
		{
			name:   "bad include",
			labels: map[string]string{LabelInclude: "[", LabelExclude: "ok"},
			errs:   []string{`label tagwatch.tag.include="["`, "missing closing ]"},
			not:    []string{LabelExclude},
		},
		{
			name:   "bad transform",
			labels: map[string]string{LabelTransform: "^v(.*)$"},
			errs:   []string{`label tagwatch.tag.transform="^v(.*)$"`, "REGEX => REPLACEMENT"},
		},
		{
			name:   "every bad label at once",
			labels: map[string]string{LabelExclude: "(", LabelPolicy: "sideways", LabelDigest: "sometimes", LabelInclude: `^\d+$`},
			errs: []string{
				`label tagwatch.tag.exclude="("`,
				`label tagwatch.tag.policy="sideways": policy: want major, minor or patch`,
				`label tagwatch.watch.digest="sometimes"`,
			},
			not: []string{LabelInclude},
		},
		{
			name:   "bad link template",
			labels: map[string]string{LabelLinkTemplate: "https://x/{{.LatestTag"},
			errs:   []string{`label tagwatch.link.template=`},
		},
		{
			name:   "registry named",
			labels: map[string]string{LabelRegistry: "hub.work"},
			check: func(t *testing.T, s labelSettings) {
				if s.Options.Registry != "hub.work" {
					t.Errorf("registry = %q, want hub.work", s.Options.Registry)
				}
			},
		},
		{
			name:   "registry without its kind",
			labels: map[string]string{LabelRegistry: "work", LabelPolicy: "minor"},
			errs:   []string{`label tagwatch.registry: "work" is not a registry instance: write kind.name, e.g. hub.work`},
			not:    []string{LabelPolicy},
		},
		{
			name:   "registry with capitals",
			labels: map[string]string{LabelRegistry: "hub.Work"},
			errs:   []string{`label tagwatch.registry: "hub.Work" is not a registry instance: its name "Work" may hold only a-z, 0-9, - and _`},
		},
		{
			name:   "misspelt label",
			labels: map[string]string{"tagwatch.tag.inclde": `^\d+$`, "tagwatch.enabled": "true"},
			errs:   []string{"unknown label tagwatch.enabled", "unknown label tagwatch.tag.inclde"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseLabels(tt.labels)
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("parseLabels: %v", err)
				}
				tt.check(t, s)
				return
			}
			if err == nil {
				t.Fatalf("parseLabels = %+v, want an error", s)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			for _, bad := range tt.not {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("error %q names %q, which is fine", err, bad)
				}
			}
		})
	}
}
