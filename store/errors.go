package store

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// ErrDamaged is returned (wrapped) when the file's pages or records are not
// what tagwatch wrote: a disk or copy error, or a file edited by hand. bbolt
// panics on some damage; the store turns those panics into this error.
var ErrDamaged = errors.New("store damaged")

// ErrForeign is returned (wrapped) by Open for a file that is not a
// tagwatch store: not a bbolt file, or a bbolt file of another program.
var ErrForeign = errors.New("not a tagwatch store")

// OpenError explains why a store file cannot be used, in one line that
// says what is wrong, with which file, and what to do about it. Err is one
// of ErrLocked, ErrDamaged, ErrForeign or ErrNewerSchema.
type OpenError struct {
	Path   string
	Err    error
	Detail string // what was found, for the admin ("page 7: ...")
}

func (e *OpenError) Unwrap() error { return e.Err }

func (e *OpenError) Error() string {
	detail := ""
	if e.Detail != "" {
		detail = " (" + e.Detail + ")"
	}
	switch e.Err {
	case ErrLocked:
		return fmt.Sprintf("store %s is locked by another tagwatch%s: stop the other one, or give this one its own --data file; "+
			`"tagwatch store backup FILE" copies a store while tagwatch runs`, e.Path, detail)
	case ErrDamaged:
		return fmt.Sprintf("store %s is damaged%s: restore a backup: stop tagwatch, copy your latest backup over %s "+
			`(cp BACKUP %s) and start it again; backups come from "tagwatch store backup FILE" or Settings → Backup; `+
			`"tagwatch store check --data %s" lists the damage`, e.Path, detail, e.Path, e.Path, e.Path)
	case ErrForeign:
		return fmt.Sprintf("%s is not a tagwatch store%s: point --data (TAGWATCH_DATA) at tagwatch's data file, "+
			"or at a new file name to start an empty store", e.Path, detail)
	case ErrNewerSchema:
		return fmt.Sprintf("store %s was written by a newer tagwatch%s: run that version again, or restore a backup "+
			"made before the upgrade (stop tagwatch, copy the backup over %s)", e.Path, detail, e.Path)
	}
	return fmt.Sprintf("store %s: %v%s", e.Path, e.Err, detail)
}

// maxDetail bounds what a bbolt message adds to an error: some list every
// page id they found.
const maxDetail = 200

// oneLine makes a message from bbolt fit one line of an error.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
}

// guard runs fn, turning the panics bbolt raises on a damaged file into an
// ErrDamaged error. A damaged page can also hold an offset past the end of
// the mapped file; SetPanicOnFault makes that fault a panic of this
// goroutine, which is recovered too. A panic raised anywhere else is a bug
// and goes on up.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		r := recover()
		if r == nil {
			return
		}
		if !fromBbolt(r) {
			panic(r)
		}
		detail := oneLine(fmt.Sprint(r))
		if f, ok := r.(interface{ Addr() uintptr }); ok {
			detail = fmt.Sprintf("a page points past the end of the file: memory fault at %#x", f.Addr())
		}
		err = &OpenError{Path: path, Err: ErrDamaged, Detail: detail}
	}()
	return fn()
}

// fromBbolt reports whether the panic being recovered was raised by bbolt
// reading the file: a memory fault inside the mapping, or a panic whose
// first frame outside the runtime is in bbolt. It must be called from the
// deferred function, while the panicking frames are still on the stack.
func fromBbolt(r any) bool {
	if re, ok := r.(runtime.Error); ok {
		if _, fault := re.(interface{ Addr() uintptr }); fault {
			return true
		}
	}
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}
