package web

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"

	"github.com/tagwatch/tagwatch/registries"
)

// TestKindMarks: every kind of the catalog has a tile mark of its own, a
// monogram on its colour, and the API's description of a kind path names
// every kind.
func TestKindMarks(t *testing.T) {
	css, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	kinds := registries.DefaultCatalog().Kinds()
	seen := map[string]string{}
	for _, kind := range kinds {
		m, ok := monograms[kind]
		if !ok || m == "" || len(m) > 3 {
			t.Errorf("%s: monogram %q; want one of 1 to 3 letters", kind, m)
		}
		if other, dup := seen[m]; dup {
			t.Errorf("%s and %s share the monogram %q", kind, other, m)
		}
		seen[m] = kind
		if !regexp.MustCompile(`(?m)^\.k-` + regexp.QuoteMeta(kind) + ` \{ background: #[0-9a-f]{6}; \}`).Match(css) {
			t.Errorf("app.css gives .k-%s no colour", kind)
		}
	}
	for kind := range monograms {
		if !slices.Contains(kinds, kind) {
			t.Errorf("a monogram for %s, which is no kind", kind)
		}
	}

	var doc struct {
		Components struct {
			Parameters map[string]struct {
				Schema struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Components.Parameters["kind"].Schema.Enum; !slices.Equal(got, kinds) {
		t.Errorf("openapi.json's kind enum = %v; want the catalog's %v", got, kinds)
	}
}
