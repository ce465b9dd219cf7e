package readme_test

import (
	"os"
	"testing"

	"github.com/tagwatch/tagwatch/internal/readme"
	"github.com/tagwatch/tagwatch/registries"
)

// TestReadmeReferenceIsCurrent fails when a provider's declaration changed
// and README.md was not regenerated.
func TestReadmeReferenceIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readme.Section(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if want := registries.Reference(registries.DefaultCatalog()); got != want {
		t.Fatalf("README.md's registry reference is stale: run `go generate ./...`")
	}
}
