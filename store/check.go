package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// knownBucket reports whether name is one of tagwatch's top-level buckets.
func knownBucket(name []byte) bool {
	return slices.ContainsFunc(allBuckets, func(b []byte) bool { return bytes.Equal(b, name) })
}

// walk reads every key and value of every bucket, nested ones too. bbolt
// checks each page it reaches (its id and type) and panics on one that is
// not a page; run it under guard. visit, when not nil, gets each value
// with the top-level bucket it is in; an error from it is a finding, not
// the end of the walk: walk returns them all joined.
func walk(tx *bolt.Tx, visit func(bucket, k, v []byte) error) error {
	var errs []error
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		walkBucket(b, func(k, v []byte) {
			if visit == nil {
				return
			}
			if err := visit(name, k, v); err != nil {
				errs = append(errs, err)
			}
		})
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func walkBucket(b *bolt.Bucket, fn func(k, v []byte)) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				walkBucket(child, fn)
			}
			continue
		}
		// Touch both ends of the value: a value spanning overflow pages
		// past the end of the file faults here, inside guard. KeepAlive
		// keeps the compiler from dropping the reads.
		if len(v) > 0 {
			runtime.KeepAlive(v[0] ^ v[len(v)-1])
		}
		fn(k, v)
	}
}

// CheckReport is what Check found.
type CheckReport struct {
	Path     string
	Size     int64 // bytes, as of the check's transaction
	PageSize int   // bytes
	Schema   int   // the file's schema version
	// Newer is set for a file of a newer schema than this build's: its
	// pages were checked, its records not decoded.
	Newer   bool
	Records map[string]int // top-level bucket → values in it (nested ones counted in)
	// Problems are the damage found, one per line; none means every page
	// and every tagwatch record read back.
	Problems []string
}

// maxProblems bounds a report: a badly damaged file has a problem per page.
const maxProblems = 100

// Check verifies the whole file: every page of every bucket is read (a
// damaged page is reported with its bucket), every tagwatch record is
// decoded, and then, when no page was damaged, bbolt's own consistency
// check runs over every page: reachability, double frees, key order. It
// runs in read transactions, beside the daemon's writes.
func (s *Store) Check() (CheckReport, error) {
	rep := CheckReport{Path: s.path, PageSize: s.db.Info().PageSize, Records: map[string]int{}}
	add := func(format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		} else if len(rep.Problems) == maxProblems {
			rep.Problems = append(rep.Problems, "… more problems not listed")
		}
	}
	var names [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		rep.Size = tx.Size()
		v, err := readVersion(tx)
		if err != nil {
			add("schema version: %v", err)
		}
		rep.Schema = v
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, slices.Clone(name))
			return nil
		})
	})
	if err != nil {
		add("%s", damageDetail(err))
		return rep, nil
	}
	newer := rep.Schema > len(migrations)
	rep.Newer = newer
	pagesOK := true
	// One transaction per bucket: a damaged page ends its bucket's walk,
	// not the check.
	for _, name := range names {
		n := 0
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			walkBucket(b, func(k, v []byte) {
				n++
				if newer {
					return
				}
				if err := decodeRecord(name, k, v); err != nil {
					add("bucket %s: %v", name, err)
				}
			})
			return nil
		})
		rep.Records[string(name)] = n
		if err != nil {
			pagesOK = false
			add("bucket %s: %s", name, damageDetail(err))
		}
	}
	if !newer {
		for _, want := range allBuckets {
			if _, ok := rep.Records[string(want)]; !ok && rep.Schema > 0 && bucketSince(want) <= rep.Schema {
				add("bucket %s is missing", want)
			}
		}
	}
	if !pagesOK {
		// bbolt's check follows page ids without bounds checks, in a
		// goroutine of its own that no guard covers: only on sound pages.
		return rep, nil
	}
	err = s.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			add("%s", oneLine(err.Error()))
		}
		return nil
	})
	if err != nil {
		add("%s", damageDetail(err))
	}
	return rep, nil
}

// damageDetail is what a guarded transaction's error says about the page.
func damageDetail(err error) string {
	var oe *OpenError
	if errors.As(err, &oe) && oe.Detail != "" {
		return oe.Detail
	}
	return oneLine(err.Error())
}

// decodeRecord decodes one value of a tagwatch bucket as the store would.
func decodeRecord(bucket, k, v []byte) error {
	var dst any
	switch string(bucket) {
	case string(bucketMeta):
		if !bytes.Equal(k, keySchemaVersion) {
			return nil
		}
		dst = new(int)
	case string(bucketImages):
		dst = new(Image)
	case string(bucketHistory):
		if len(k) != 8 {
			return fmt.Errorf("key %q is not a sequence number", k)
		}
		dst = new(HistoryEntry)
	case string(bucketRegistries):
		dst = new(registryRecord)
	case string(bucketRegistryTests):
		dst = new(RegistryTest)
	case string(bucketSent):
		dst = new(sentRecord)
	case string(bucketNotifiers):
		dst = new(notifierRecord)
	case string(bucketWatchers):
		dst = new(WatcherState)
	case string(bucketOutbox):
		dst = new(OutboxMessage)
	default:
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("record %q does not decode: %v", printable(k), err)
	}
	// Sealed secrets cannot be opened without the key (Check needs none),
	// but each must still be an envelope of this format.
	var sealed map[string]string
	switch r := dst.(type) {
	case *registryRecord:
		sealed = r.Sealed
	case *notifierRecord:
		sealed = r.Sealed
	}
	for _, name := range slices.Sorted(maps.Keys(sealed)) {
		if !sealedShape(sealed[name]) {
			return fmt.Errorf("record %q: the encrypted secret %s is not one tagwatch wrote", printable(k), name)
		}
	}
	return nil
}

// sealedShape reports whether s has the form of a sealed secret
// (secrets.go): base64 of the version, a key id, a nonce and a tag.
func sealedShape(s string) bool {
	raw, err := base64.RawStdEncoding.DecodeString(s)
	return err == nil && len(raw) >= 1+keyIDSize+12+16 && raw[0] == sealVersion
}

// printable shows a key as text when it is, else as hex.
func printable(k []byte) string {
	for _, c := range k {
		if c < 0x20 && c != 0 || c > 0x7e {
			return fmt.Sprintf("%x", k)
		}
	}
	return string(bytes.ReplaceAll(k, []byte{0}, []byte(" ")))
}
