package config_test

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

// TestEnvCoversEveryLimit sets each of Limits' YAML keys through
// TAGWATCH_LIMITS_<KEY> and through the file: a new field without an
// environment variable, or one the file cannot set, fails here.
func TestEnvCoversEveryLimit(t *testing.T) {
	values := map[reflect.Kind]string{reflect.Int64: "3MiB", reflect.Int: "7"}
	typ := reflect.TypeFor[config.Limits]()
	var tags []string
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			t.Fatalf("Limits.%s has no yaml name", f.Name)
		}
		tags = append(tags, tag)
		value, ok := values[f.Type.Kind()]
		if f.Type == reflect.TypeFor[time.Duration]() {
			// Long enough for every deadline to nest: a request 40m
			// would be refused under a 30m cycle.
			value, ok = map[string]string{"request": "5s", "image": "10m", "cycle": "3h"}[tag]
		}
		if !ok {
			t.Fatalf("Limits.%s: no test value for its type %v", f.Name, f.Type)
		}
		def := reflect.ValueOf(config.DefaultLimits()).FieldByName(f.Name).Interface()
		env := []string{"TAGWATCH_LIMITS_" + strings.ToUpper(tag) + "=" + value}
		fromEnv, err := config.Load("", env, registries.DefaultCatalog())
		if err != nil {
			t.Errorf("%s: %v", env, err)
			continue
		}
		fromFile, err := config.Load(write(t, "limits:\n  "+tag+": "+value+"\n"), nil, registries.DefaultCatalog())
		if err != nil {
			t.Errorf("limits.%s in the file: %v", tag, err)
			continue
		}
		for what, c := range map[string]*config.Config{"environment": fromEnv, "file": fromFile} {
			if got := reflect.ValueOf(c.Limits).FieldByName(f.Name).Interface(); got == def {
				t.Errorf("%s: %s=%s left Limits.%s at its default %v", what, tag, value, f.Name, def)
			}
		}
	}
	sort.Strings(tags)
	if got := config.LimitKeys(); !slices.Equal(got, tags) {
		t.Errorf("LimitKeys() = %v, Limits' YAML keys are %v", got, tags)
	}
}

func TestLimits(t *testing.T) {
	c, err := config.Load("", nil, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != config.DefaultLimits() {
		t.Errorf("no configuration: limits %+v, want the defaults %+v", c.Limits, config.DefaultLimits())
	}
	want := config.Limits{Request: 3 * time.Second, Image: 20 * time.Second, Cycle: 90 * time.Second, TagPages: 50, TagList: 512 << 10}
	c, err = config.Load(write(t, "limits:\n  request: 3s\n  image: 20s\n  cycle: 10m\n  tagpages: 50\n  taglist: 512 KiB\n"),
		[]string{"TAGWATCH_LIMITS_CYCLE=1m30s"}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != want {
		t.Errorf("limits %+v, want %+v (the environment's cycle over the file's)", c.Limits, want)
	}
	if r := c.Limits.Registries(); r.Request != 3*time.Second || r.TagPages != 50 || r.TagListBytes != 512<<10 {
		t.Errorf("registry limits %+v", r)
	}

	tests := []struct {
		name string
		body string
		env  []string
		want string
	}{
		{"not a duration", "limits:\n  request: 30\n", nil, `:2: limits.request: "30" is not a duration such as 30s, 2m or 1h30m`},
		{"negative", "limits:\n  image: -1m\n", nil, `:2: limits.image: "-1m" is not a duration`},
		{"decimal unit", "limits:\n  taglist: 16MB\n", nil, `:2: limits.taglist: "16MB" is not a size such as 16MiB, 512KiB or 1GiB`},
		{"zero pages", "limits:\n  tagpages: 0\n", nil, `:2: limits.tagpages: "0" is not a whole number of 1 or more`},
		// The file's limits: section goes through the decoder every
		// section does, which words these two.
		{"unknown setting", "limits:\n  pages: 5\n", nil, ":2: limits.pages: is not a setting here (known: cycle, image, request, taglist, tagpages)"},
		{"not a map", "limits: 30s\n", nil, ":1: limits: must be a map of settings (cycle, image, request, taglist, tagpages)"},
		{"a list where a value goes", "limits:\n  cycle: [1m]\n", nil, ":2: limits.cycle: must be a single value"},
		{"image under request", "limits:\n  request: 1m\n  image: 30s\n", nil, ":3: limits.image: 30s is shorter than limits.request (1m)"},
		{"cycle under image, from the environment", "", []string{"TAGWATCH_LIMITS_CYCLE=1m"},
			"environment TAGWATCH_LIMITS_CYCLE: limits.cycle: 1m is shorter than limits.image (2m)"},
		{"bad value from the environment", "", []string{"TAGWATCH_LIMITS_TAGLIST=lots"},
			`environment TAGWATCH_LIMITS_TAGLIST: limits.taglist: "lots" is not a size`},
		{"unknown from the environment", "", []string{"TAGWATCH_LIMITS_BODY=1MiB"},
			"environment TAGWATCH_LIMITS_BODY: limits.body: is not a limits setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			mentions(t, err, p, tt.want)
		})
	}
}

// TestBadLimitAloneIsReported: a limit that does not parse keeps its
// default, so the admin reads one error about it, not a second one about a
// 0s deadline nobody wrote.
func TestBadLimitAloneIsReported(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		env  []string
	}{
		{"image in the file", "limits:\n  image: soon\n", nil},
		{"cycle in the file", "limits:\n  cycle: -3m\n", nil},
		{"image from the environment", "", []string{"TAGWATCH_LIMITS_IMAGE=soon"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadError(t, tt.body, tt.env)
			if errs := config.Errors(err); len(errs) != 1 {
				t.Errorf("%d errors, want the one about the value written:\n%v", len(errs), err)
			}
			if strings.Contains(err.Error(), "shorter than") {
				t.Errorf("a deadline that did not parse was compared as 0s:\n%v", err)
			}
		})
	}
}
