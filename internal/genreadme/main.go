// Command genreadme rewrites the registry reference in README.md from the
// providers' own declarations. Run it with `go generate ./...`.
package main

import (
	"fmt"
	"os"

	"github.com/tagwatch/tagwatch/internal/readme"
	"github.com/tagwatch/tagwatch/registries"
)

func main() {
	path := "README.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	old, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genreadme:", err)
		os.Exit(1)
	}
	out, err := readme.Splice(string(old), registries.Reference(registries.DefaultCatalog()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "genreadme:", path+":", err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genreadme:", err)
		os.Exit(1)
	}
}
