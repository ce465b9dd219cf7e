package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// The update kinds the store needs to know by name: accepting a digest
// clears a "digest" update and leaves "none".
const (
	updateDigest = "digest"
	updateNone   = "none"
)

// Acceptable reports whether the admin can accept img's update: a digest
// update of an image tracked by baseline (listed in the config without a
// pinned digest). A newer tag is not accepted (the config names the tag), nor
// a container's new digest (the engine's digest in use says when it is
// current: pull and recreate).
func (img Image) Acceptable() bool {
	return img.Baseline != "" && img.Update == updateDigest && img.LatestDigest != ""
}

// AcceptDigests makes the digest the last check found behind each image's
// tag its new baseline, as of at: the update is cleared, and the next check
// compares with that digest. keys nil means every image; images whose update
// cannot be accepted (Acceptable) are left as they are. It returns the
// records it changed, in key order, in one transaction.
//
// What is accepted is what the admin saw (LatestDigest), not whatever the
// tag names by now: an image pushed again since is reported again.
func (s *Store) AcceptDigests(keys []string, at time.Time) ([]Image, error) {
	out := []Image{}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketImages)
		if err != nil {
			return err
		}
		b.FillPercent = 0.9
		accept := func(k, v []byte) error {
			var img Image
			if err := decode(v, &img, bucketImages, k); err != nil {
				return err
			}
			if !img.Acceptable() {
				return nil
			}
			img.Baseline, img.Digest, img.AcceptedAt = img.LatestDigest, img.LatestDigest, at
			img.LatestTag, img.Update = img.Tag, updateNone
			out = append(out, img)
			return nil
		}
		if keys == nil {
			if err := b.ForEach(accept); err != nil {
				return err
			}
		} else {
			for _, k := range keys {
				if v := b.Get([]byte(k)); v != nil {
					if err := accept([]byte(k), v); err != nil {
						return err
					}
				}
			}
		}
		// Written after the walk: bbolt forbids changing a bucket while
		// ForEach runs over it.
		for _, img := range out {
			if err := put(b, bucketImages, []byte(img.Key), img); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "accept digests")
	}
	return out, nil
}

// keepAccepted keeps a baseline accepted while img was being checked. A check
// compares the tag's digest with the baseline it read at its start; when the
// stored record holds a baseline accepted after that (acceptedAt later than
// the one img carries), the admin's accept wins: the baseline stays, and a
// digest update of exactly the accepted digest is no update any more. A
// different digest stays an update, now against the accepted baseline.
func keepAccepted(img *Image, baseline string, acceptedAt time.Time) {
	if baseline == "" || !acceptedAt.After(img.AcceptedAt) {
		return
	}
	img.Baseline, img.AcceptedAt, img.Digest = baseline, acceptedAt, baseline
	if img.Update == updateDigest && img.LatestDigest == baseline {
		img.Update = updateNone
	}
}
