//go:build unix

package store

import (
	"os"
	"syscall"
	"testing"
)

// TestRotateKeyKeepsOwner: an admin runs the rotation as root on a daemon
// user's files (systemd's DynamicUser, the image's 65532); the rewritten
// data file and the new key file stay the daemon user's.
func TestRotateKeyKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the files to another user")
	}
	const uid, gid = 65532, 65532
	s := openTemp(t)
	putSecrets(t, s)
	path := s.Path()
	s.Close()
	for _, p := range []string{path, KeyFile(path)} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(path)
	if _, err := RotateKey(path, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Fatal("the data file was not rewritten: the test proves nothing")
	}
	for _, p := range []string{path, KeyFile(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s is owned by %d:%d after the rotation, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
	}
}
