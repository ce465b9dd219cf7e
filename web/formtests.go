package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// formTests remembers the connection tests run on settings not saved yet
// (the form's Test connection, POST /registries/test), so that saving the
// very same settings puts the result on the tile instead of "Not tested
// yet". A test is found again by a keyed hash of everything it tested: kind,
// name and every value, secrets included. The key is random and lives only
// in this process, and the record is made by the server when it runs the
// test: nothing the browser sends can claim that a test passed.
type formTests struct {
	mu   sync.Mutex
	key  []byte
	byFP map[string]formTest
}

type formTest struct {
	tv      testView
	expires time.Time
}

const (
	// formTestTTL is how long a form's test stays good for a save.
	formTestTTL = 15 * time.Minute
	// maxFormTests bounds the memory: the oldest test goes first.
	maxFormTests = 64
)

// fingerprint is the keyed hash of an instance's kind, name and validated
// values.
func (f *formTests) fingerprint(inst *registries.Instance) string {
	if f.key == nil {
		f.key = make([]byte, 32)
		_, _ = rand.Read(f.key) // never fails (crypto/rand)
	}
	m := hmac.New(sha256.New, f.key)
	field := func(s string) {
		// Length-prefixed, so that no two different settings write the same bytes.
		m.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
		m.Write([]byte(s))
	}
	field(inst.Kind)
	field(inst.Name)
	for _, k := range slices.Sorted(maps.Keys(inst.Values)) {
		field(k)
		field(inst.Values[k])
	}
	return hex.EncodeToString(m.Sum(nil))
}

// remember records the outcome of a test of inst's settings.
func (f *formTests) remember(inst *registries.Instance, tv testView, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byFP == nil {
		f.byFP = map[string]formTest{}
	}
	for fp, t := range f.byFP {
		if now.After(t.expires) {
			delete(f.byFP, fp)
		}
	}
	for len(f.byFP) >= maxFormTests {
		oldest := ""
		for fp, t := range f.byFP {
			if oldest == "" || t.expires.Before(f.byFP[oldest].expires) {
				oldest = fp
			}
		}
		delete(f.byFP, oldest)
	}
	f.byFP[f.fingerprint(inst)] = formTest{tv: tv, expires: now.Add(formTestTTL)}
}

// find returns the test of exactly inst's settings, if one ran lately.
func (f *formTests) find(inst *registries.Instance, now time.Time) (testView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.byFP[f.fingerprint(inst)]
	if !ok || now.After(t.expires) {
		return testView{}, false
	}
	return t.tv, true
}
