package store

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestWatcherStates: states are stored per watcher, replaced by the next,
// read back sorted, deleted by name, and survive a reopen.
func TestWatcherStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	nas := WatcherState{Name: "nas", Kind: "docker", Error: "connection refused", FailingSince: since, LastListed: since.Add(-time.Hour), LastTried: since, Images: 3}
	pods := WatcherState{Name: "pods", Kind: "podman", LastListed: since, LastTried: since, Images: 1, Problems: []string{"container x: label tagwatch.tag.policy"}}
	if err := s.PutWatchers([]WatcherState{pods, nas}); err != nil {
		t.Fatal(err)
	}
	nas.LastTried = since.Add(time.Hour) // still failing: replaced
	if err := s.PutWatchers([]WatcherState{nas}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutWatchers([]WatcherState{{Kind: "docker"}}); err == nil {
		t.Error("a state without a name was stored")
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Watchers()
	if err != nil {
		t.Fatal(err)
	}
	if want := []WatcherState{nas, pods}; !reflect.DeepEqual(got, want) {
		t.Errorf("watchers:\n%+v\nwant\n%+v", got, want)
	}
	if err := s.DeleteWatchers([]string{"nas", "gone"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Watchers(); err != nil || len(got) != 1 || got[0].Name != "pods" {
		t.Errorf("after delete: %+v, %v", got, err)
	}
}

// TestMigrateV3 opens a file at schema version 2 whose image records
// predate Location.Kind, Place and StaleSince: they read as before, and the
// watchers bucket is there.
func TestMigrateV3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	orig := migrations
	migrations = orig[:2]
	s, err := Open(path)
	if err != nil {
		migrations = orig
		t.Fatal(err)
	}
	// Written as schema 2 wrote it: no kind, place or staleSince.
	old := []byte(`{"key":"k","reference":"docker.io/library/nginx:1","where":[{"watcher":"local","container":"web","containerId":"abc"}],"firstSeen":"2024-01-01T00:00:00Z","lastChecked":"2024-01-01T00:00:00Z"}`)
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketImages).Put([]byte("k"), old) })
	s.Close()
	migrations = orig
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(); err != nil || v != len(orig) {
		t.Errorf("version %d, %v", v, err)
	}
	img, ok, err := s.Image("k")
	if err != nil || !ok {
		t.Fatalf("image: %v %v", ok, err)
	}
	if want := []Location{{Watcher: "local", Container: "web", ContainerID: "abc"}}; !reflect.DeepEqual(img.Where, want) {
		t.Errorf("where = %+v", img.Where)
	}
	if ws, err := s.Watchers(); err != nil || len(ws) != 0 {
		t.Errorf("watchers %+v, %v", ws, err)
	}
	// A fresh location encodes no stale mark.
	raw, _ := json.Marshal(Location{Watcher: "local", Kind: "docker", Place: "web"})
	if string(raw) != `{"watcher":"local","kind":"docker","place":"web"}` {
		t.Errorf("location JSON %s", raw)
	}
}

func TestLocationString(t *testing.T) {
	tests := []struct {
		loc  Location
		want string
	}{
		{Location{Watcher: "k3s", Kind: "kubernetes", Place: "media/Deployment/jellyfin/jellyfin"}, "k3s · media/Deployment/jellyfin/jellyfin"},
		{Location{Watcher: "local", Kind: "swarm", Place: "media/jellyfin", Container: "media_jellyfin"}, "local · media/jellyfin"},
		{Location{Watcher: "pods", Kind: "podman", Place: "web/nginx", Container: "nginx"}, "pods · web/nginx"},
		{Location{Watcher: "config", Kind: "config"}, "config list"},
		{Location{Watcher: "config"}, "config list"},                                     // stored before kinds
		{Location{Watcher: "local", Container: "web", ContainerID: "ab"}, "local · web"}, // stored before places
		{Location{Watcher: "nas"}, "nas"},
	}
	for _, tt := range tests {
		if got := tt.loc.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.loc, got, tt.want)
		}
	}
}
