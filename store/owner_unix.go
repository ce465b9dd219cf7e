//go:build unix

package store

import (
	"fmt"
	"os"
	"syscall"
)

// sameOwner gives path the owner and group of like: a file rewritten by
// root (tagwatch store rotate-key run by the admin) must stay the daemon
// user's, or the daemon could no longer open it.
func sameOwner(path string, like os.FileInfo) error {
	want, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if have, ok := fi.Sys().(*syscall.Stat_t); ok && have.Uid == want.Uid && have.Gid == want.Gid {
		return nil
	}
	if err := os.Chown(path, int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("keeping the owner of %s (uid %d, gid %d): %w", like.Name(), want.Uid, want.Gid, err)
	}
	return nil
}
