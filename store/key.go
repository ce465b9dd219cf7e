package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KeySize is the length of a secret key in bytes (AES-256).
const KeySize = 32

// KeyEnv and KeyFileEnv name the environment variables cmd/tagwatch reads
// the key from; they are named here because the store's messages tell the
// admin to set them.
const (
	KeyEnv     = "TAGWATCH_SECRET_KEY"
	KeyFileEnv = "TAGWATCH_SECRET_KEY_FILE"
)

// Key seals the secrets of a store file. It never prints its bytes: %v and
// %#v show its id only, so a key passed to a logger by mistake leaks nothing.
type Key struct{ b [KeySize]byte }

// NewKey returns a random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k.b[:]); err != nil {
		return Key{}, fmt.Errorf("new secret key: %w", err)
	}
	return k, nil
}

// keyFormat says what a key looks like, for errors that never quote the value given.
const keyFormat = "a key is 32 random bytes written as base64 (44 characters, as `openssl rand -base64 32` prints) or as 64 hex digits"

// ParseKey reads a key written as base64 (standard or URL alphabet, with or
// without padding) or as 64 hex digits. Surrounding white space (a key
// file's newline) is ignored. The error never quotes the value.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, errors.New("is empty; " + keyFormat)
	}
	var raw []byte
	if b, err := hex.DecodeString(s); err == nil && len(s) == 2*KeySize {
		raw = b
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				raw = b
				break
			}
		}
	}
	if len(raw) != KeySize {
		return Key{}, fmt.Errorf("is not a key (%d characters); %s", len(s), keyFormat)
	}
	var k Key
	copy(k.b[:], raw)
	return k, nil
}

// Encode is the key as ParseKey reads it and key files hold it (base64):
// the only way to get at its bytes. Key has no String method on purpose,
// and Format never prints them.
func (k Key) Encode() string { return base64.StdEncoding.EncodeToString(k.b[:]) }

// Format keeps the key out of %v, %s, %+v and %#v: they print its id.
func (k Key) Format(f fmt.State, verb rune) { fmt.Fprintf(f, "store.Key(id %s)", k.ID()) }

// ID names a key without revealing it: the first 8 bytes of an HMAC of a
// fixed label under the key, in hex. Every sealed secret carries the id of
// its key, so that a store opened with another key can say so.
func (k Key) ID() string { return hex.EncodeToString(k.id()) }

func (k Key) id() []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write([]byte("tagwatch secret key id"))
	return m.Sum(nil)[:keyIDSize]
}

// KeyFile is where the store at storePath keeps its key when the
// environment gives none: beside it, FILE.key.
func KeyFile(storePath string) string { return storePath + ".key" }

// pendingKeyFile holds the new key while RotateKey runs.
func pendingKeyFile(storePath string) string { return KeyFile(storePath) + ".new" }

// maxKeyFile bounds what ReadKeyFile reads: a key is 44 characters; a big
// file named by mistake is not read into memory.
const maxKeyFile = 4 << 10

// ReadKeyFile reads a key file (ParseKey's format). Errors name the file,
// never its content.
func ReadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("secret key file %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return Key{}, fmt.Errorf("secret key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return Key{}, fmt.Errorf("secret key file %s: larger than %d bytes: not a key file", path, maxKeyFile)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to path with mode 0600, atomically: a temporary file
// in the same directory is written and synced, then renamed over path, and
// the directory synced. A crash leaves the old file or the new one, whole.
func WriteKeyFile(path string, k Key) error {
	tmp, err := writeTemp(path, k)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("secret key file %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes k to a new private file beside path and returns its name.
func writeTemp(path string, k Key) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("secret key file %s: %w", path, err)
	}
	name := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		err = writeKey(f, k)
	} else {
		f.Close()
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("secret key file %s: %w", path, err)
	}
	return name, nil
}

// writeKey writes k to the new file f as key files hold it, syncs and
// closes f: a key file is either whole on disk or an error.
func writeKey(f *os.File, k Key) error {
	_, err := f.WriteString(k.Encode() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadOrCreateKeyFile reads the key file at path, or creates it with a new
// key when there is none. Creation is atomic and never replaces a file: the
// key is written to a temporary file, which is then hard-linked to path (a
// link fails if path exists, unlike a rename); if another process won the
// race, its key is read.
func loadOrCreateKeyFile(path string) (k Key, created bool, err error) {
	k, err = ReadKeyFile(path)
	if err == nil {
		return k, false, makePrivate(path, "secret key file")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, false, err
	}
	if k, err = NewKey(); err != nil {
		return Key{}, false, err
	}
	tmp, err := writeTemp(path, k)
	if err != nil {
		return Key{}, false, err
	}
	defer os.Remove(tmp)
	switch err := os.Link(tmp, path); {
	case errors.Is(err, fs.ErrExist):
		k, err := ReadKeyFile(path)
		return k, false, err
	case err != nil:
		// A file system without hard links: O_EXCL still never replaces a
		// key, though a crash mid-write could leave a short file (which
		// ReadKeyFile then refuses, before any secret was sealed with it).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			k, err := ReadKeyFile(path)
			return k, false, err
		}
		if err != nil {
			return Key{}, false, fmt.Errorf("secret key file %s: %w", path, err)
		}
		if err := writeKey(f, k); err != nil {
			os.Remove(path)
			return Key{}, false, fmt.Errorf("secret key file %s: %w", path, err)
		}
	}
	return k, true, syncDir(filepath.Dir(path))
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
