// Package storetest opens real bbolt stores for tests.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/tagwatch/tagwatch/store"
)

// Open opens a fresh store file in the test's temporary directory and
// closes it when the test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "tagwatch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
