package store

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func digestOf(c string) string { return "sha256:" + strings.Repeat(c, 64) }

// listed is a listed image's record: tracked by its baseline a, with the
// update the last check found.
func listed(key, update, latestTag, latest string) Image {
	return Image{
		Key: key, Image: "registry.lan/team/" + key + ":latest", Reference: "registry.lan/team/" + key + ":latest",
		Registry: "custom.lan", Platform: "linux/amd64", Where: []Location{{Watcher: "config", Kind: "config"}},
		Tag: "latest", Digest: digestOf("a"), Baseline: digestOf("a"),
		LatestTag: latestTag, LatestDigest: latest, Update: update, LastChecked: t0,
	}
}

// TestAcceptDigests: only a listed image's digest update is accepted; the
// baseline becomes the digest that was reported, the update is cleared, and
// everything else is left as it was, on disk.
func TestAcceptDigests(t *testing.T) {
	container := testImage("container", 1) // a digest update of a container: no baseline
	container.Update, container.LatestTag, container.LatestDigest = "digest", container.Tag, digestOf("c")
	imgs := []Image{
		listed("moved", "digest", "latest", digestOf("b")),
		listed("moved2", "digest", "latest", digestOf("d")),
		listed("newtag", "minor", "1.1.0", digestOf("e")), // a newer tag: the config names the tag
		listed("same", "none", "latest", digestOf("a")),
		listed("failed", "unknown", "latest", digestOf("a")),
		container,
	}
	tests := []struct {
		name string
		keys []string
		want []string // keys accepted
	}{
		{"one", []string{"moved"}, []string{"moved"}},
		{"not acceptable or unknown keys are left alone", []string{"newtag", "same", "failed", "container", "nope"}, nil},
		{"every image", nil, []string{"moved", "moved2"}},
		{"an empty list is no image", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := s.PutImages(imgs); err != nil {
				t.Fatal(err)
			}
			at := t0.Add(time.Hour)
			got, err := s.AcceptDigests(tt.keys, at)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, img := range got {
				keys = append(keys, img.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Fatalf("accepted %v, want %v", keys, tt.want)
			}
			s = reopen(t, s)
			for _, before := range imgs {
				after, ok, err := s.Image(before.Key)
				if err != nil || !ok {
					t.Fatalf("%s: %v %v", before.Key, ok, err)
				}
				if !slices.Contains(tt.want, before.Key) {
					if after.Update != before.Update || after.Baseline != before.Baseline || !after.AcceptedAt.IsZero() {
						t.Errorf("%s changed: %+v", before.Key, after)
					}
					continue
				}
				if after.Update != "none" || after.Baseline != before.LatestDigest || after.Digest != before.LatestDigest ||
					after.LatestDigest != before.LatestDigest || after.LatestTag != "latest" || !after.AcceptedAt.Equal(at) {
					t.Errorf("%s after accept: update=%q baseline=%q digest=%q acceptedAt=%v; want none, %s, accepted at %v",
						before.Key, after.Update, after.Baseline, after.Digest, after.AcceptedAt, before.LatestDigest, at)
				}
			}
		})
	}
}

// TestPutImagesKeepsAccepted: a check's result that was computed against
// the baseline before an accept does not undo the accept; a result that
// knew of it (or a later accept) is stored as it is.
func TestPutImagesKeepsAccepted(t *testing.T) {
	accepted := t0.Add(time.Hour)
	tests := []struct {
		name         string
		result       Image
		wantUpdate   string
		wantBaseline string
	}{
		{"the accepted digest found again is no update", listed("x", "digest", "latest", digestOf("b")), "none", digestOf("b")},
		{"another digest is still an update, against the accepted one", listed("x", "digest", "latest", digestOf("c")), "digest", digestOf("b")},
		{"a result that knew of the accept is stored as it is", func() Image {
			img := listed("x", "digest", "latest", digestOf("c"))
			img.Baseline, img.Digest, img.AcceptedAt = digestOf("b"), digestOf("b"), accepted
			return img
		}(), "digest", digestOf("b")},
		{"a newer tag stays", listed("x", "minor", "1.1.0", digestOf("e")), "minor", digestOf("b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := s.PutImages([]Image{listed("x", "digest", "latest", digestOf("b"))}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.AcceptDigests([]string{"x"}, accepted); err != nil || len(got) != 1 {
				t.Fatalf("accept: %v, %v", got, err)
			}
			if _, err := s.PutResults([]Image{tt.result}, nil); err != nil {
				t.Fatal(err)
			}
			img, _, err := s.Image("x")
			if err != nil {
				t.Fatal(err)
			}
			if img.Update != tt.wantUpdate || img.Baseline != tt.wantBaseline || img.Digest != tt.wantBaseline || !img.AcceptedAt.Equal(accepted) {
				t.Errorf("stored update=%q baseline=%q digest=%q acceptedAt=%v; want %s, %s, accepted at %v",
					img.Update, img.Baseline, img.Digest, img.AcceptedAt, tt.wantUpdate, tt.wantBaseline, accepted)
			}
		})
	}
}
