package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Secrets (registry secret variables, notifier urls) are stored sealed:
// AES-256-GCM with a random nonce, the record's identity (kind, name and
// variable) as associated data so that a sealed value copied into another
// record or field does not open, and the id of the key in front so that a
// value sealed with another key is told apart from a damaged one.
//
//	sealed = base64(version 1 | key id (8 bytes) | nonce (12) | ciphertext | tag (16))

const (
	sealVersion = 1
	keyIDSize   = 8
)

// ErrOtherKey marks a secret sealed with a key the store was not given: a
// store copied without its key, or opened with another one.
var ErrOtherKey = errors.New("encrypted with another key")

// ErrSecretDamaged marks a secret whose key id is this store's but that
// does not open: changed on disk, or moved from another record. (ErrDamaged
// is the file's pages, errors.go.)
var ErrSecretDamaged = errors.New("damaged, or moved from another record")

// sealer is one key, ready to seal and open.
type sealer struct {
	id   []byte
	aead cipher.AEAD
}

func newSealer(k Key) (sealer, error) {
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return sealer{}, err
	}
	return sealer{id: k.id(), aead: aead}, nil
}

// keyring is a store's keys: the one that seals, and every key that opens
// (the sealing key first; during a key rotation, the other one too).
type keyring struct {
	seal sealer
	open []sealer
	from string // where the sealing key came from, for messages
}

func newKeyring(k Key, from string, extra ...Key) (*keyring, error) {
	s, err := newSealer(k)
	if err != nil {
		return nil, err
	}
	r := &keyring{seal: s, open: []sealer{s}, from: from}
	for _, e := range extra {
		es, err := newSealer(e)
		if err != nil {
			return nil, err
		}
		r.open = append(r.open, es)
	}
	return r, nil
}

func (r *keyring) id() string { return hex.EncodeToString(r.seal.id) }

// secretAD is the associated data of a secret: what it belongs to, each
// part length-prefixed so that no two identities encode alike.
func secretAD(parts ...string) []byte {
	ad := []byte("tagwatch secret v1")
	for _, p := range parts {
		ad = binary.AppendUvarint(ad, uint64(len(p)))
		ad = append(ad, p...)
	}
	return ad
}

func registryAD(kind, name, variable string) []byte {
	return secretAD("registry", kind, name, variable)
}

func notifierAD(name, setting string) []byte { return secretAD("notifier", name, setting) }

func (r *keyring) sealValue(ad []byte, plain string) string {
	out := append([]byte{sealVersion}, r.seal.id...)
	out = r.seal.aead.Seal(out, nil, []byte(plain), ad)
	return base64.RawStdEncoding.EncodeToString(out)
}

// keyError is a secret that does not open, with the id of its key.
type keyError struct {
	keyID string
	err   error // ErrOtherKey or ErrSecretDamaged
}

func (e *keyError) Error() string {
	if errors.Is(e.err, ErrOtherKey) {
		return fmt.Sprintf("%v (key id %s)", e.err, e.keyID)
	}
	return e.err.Error()
}

func (e *keyError) Unwrap() error { return e.err }

func (r *keyring) openValue(ad []byte, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < 1+keyIDSize || raw[0] != sealVersion {
		return "", &keyError{err: ErrSecretDamaged}
	}
	id := raw[1 : 1+keyIDSize]
	for _, s := range r.open {
		if !bytes.Equal(s.id, id) {
			continue
		}
		plain, err := s.aead.Open(nil, nil, raw[1+keyIDSize:], ad)
		if err != nil {
			return "", &keyError{keyID: hex.EncodeToString(id), err: ErrSecretDamaged}
		}
		return string(plain), nil
	}
	return "", &keyError{keyID: hex.EncodeToString(id), err: ErrOtherKey}
}

// sealAll seals a record's secrets; ad gives each one's associated data.
func (r *keyring) sealAll(secrets map[string]string, ad func(name string) []byte) map[string]string {
	if len(secrets) == 0 {
		return nil
	}
	out := make(map[string]string, len(secrets))
	for name, v := range secrets {
		out[name] = r.sealValue(ad(name), v)
	}
	return out
}

// openAll opens a record's sealed secrets. Those that do not open are left
// out and named in unreadable, with why in errs (by name).
func (r *keyring) openAll(sealed map[string]string, ad func(name string) []byte) (secrets map[string]string, unreadable []string, errs map[string]error) {
	for name, v := range sealed {
		plain, err := r.openValue(ad(name), v)
		if err != nil {
			unreadable = append(unreadable, name)
			if errs == nil {
				errs = map[string]error{}
			}
			errs[name] = err
			continue
		}
		if secrets == nil {
			secrets = map[string]string{}
		}
		secrets[name] = plain
	}
	sort.Strings(unreadable)
	return secrets, unreadable, errs
}

// UnreadableError is CheckSecrets' answer when some saved secrets do not
// open with the store's key. The daemon runs on without them: the records
// that hold them are shown as needing their secrets again.
type UnreadableError struct {
	Path    string   // the store file
	KeyFrom string   // where the store's key came from
	KeyID   string   // the store's key
	Secrets []string // what does not open: "registry custom.vendor: password"
	// OtherKeys are the ids of the keys they were sealed with, when those
	// are not the store's key.
	OtherKeys []string
	Damaged   int // secrets under the store's key that do not open
}

func (e *UnreadableError) Error() string {
	var b strings.Builder
	if len(e.OtherKeys) > 0 {
		fmt.Fprintf(&b, "the secrets in %s were encrypted with another key (id %s), not with the key from %s (id %s): "+
			"set %s to the key they were saved with or restore %s, and restart; until then ",
			e.Path, strings.Join(e.OtherKeys, ", "), e.KeyFrom, e.KeyID, KeyEnv, KeyFile(e.Path))
	} else {
		fmt.Fprintf(&b, "store %s: ", e.Path)
	}
	if e.Damaged > 0 {
		fmt.Fprintf(&b, "%d secrets are damaged (changed in the file, or moved between records) and ", e.Damaged)
	}
	fmt.Fprintf(&b, "%d saved secrets cannot be read and are left out; enter them again in Settings: %s",
		len(e.Secrets), strings.Join(e.Secrets, "; "))
	return b.String()
}
