package main

import (
	"context"
	"fmt"
	"io"
)

const storeUsage = `Usage: tagwatch store COMMAND [flags]

Commands:
  backup FILE  write a consistent copy of the data file to FILE (- for standard
               output), also while tagwatch serve runs on it
  check        verify every page and record of the data file (exit 0 when it
               is sound, 1 when it is damaged)

Run 'tagwatch store COMMAND --help' for a command's flags.
`

// runStore dispatches the commands on the data file.
func runStore(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, storeUsage)
		return exitUsage
	}
	switch args[0] {
	case "backup":
		return runStoreBackup(ctx, args[1:], environ, stdout, stderr)
	case "check":
		return runStoreCheck(ctx, args[1:], environ, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, storeUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tagwatch store: unknown command %q\n\n%s", args[0], storeUsage)
	return exitUsage
}
