package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tagwatch/tagwatch/store"
)

func runStoreCheck(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store check", flag.ContinueOnError)
	f := addStoreFlags(fs, environ)
	fs.Usage = usageFunc(fs, `Usage: tagwatch store check [flags]

Verifies the data file (--data): every page of every bucket is read, every
record decoded, then bbolt's own check runs over every page (reachability,
free pages, key order). It prints the records it counted and every problem,
and exits 0 when the file is sound, 1 when it is damaged or cannot be read.
While tagwatch serve runs on the file, it checks a consistent copy taken
from its API (as 'tagwatch store backup' does), then deletes the copy.

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()

	path, what := *f.data, *f.data
	st, err := store.Open(path, store.ReadOnly(), store.WithoutVerify(), store.WithLockTimeout(lockWait))
	if errors.Is(err, store.ErrLocked) {
		tmp, terr := os.CreateTemp("", "tagwatch-check-*.db")
		if terr != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", terr)
			return exitFailed
		}
		defer os.Remove(tmp.Name())
		how, _, ferr := fetchBackup(ctx, f, environ, tmp)
		if cerr := tmp.Close(); ferr == nil {
			ferr = cerr
		}
		if ferr != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", ferr)
			return exitFailed
		}
		what = fmt.Sprintf("%s (a copy %s)", path, how)
		st, err = store.Open(tmp.Name(), store.ReadOnly(), store.WithoutVerify())
	}
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	rep, err := st.Check()
	st.Close()
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "store %s: schema %d, %s in pages of %d bytes\n", what, rep.Schema, humanSize(rep.Size), rep.PageSize)
	fmt.Fprintf(stdout, "  %s\n", records(rep))
	if rep.Newer {
		fmt.Fprintf(stdout, "note: schema %d was written by a newer tagwatch: its pages were checked, its records not decoded\n", rep.Schema)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintln(stdout, "ok: every page and record reads back")
		return exitOK
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "damaged: %s\n", p)
	}
	fmt.Fprintf(stderr, "tagwatch: %v\n", &store.OpenError{Path: path, Err: store.ErrDamaged,
		Detail: plural(len(rep.Problems), "problem", "problems") + ", listed above"})
	return exitFailed
}
