package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/store"
)

// The store command group: one case per subcommand, so that groups of
// subcommands added side by side merge as lines of the switch.
const storeUsage = `Usage: tagwatch store COMMAND [flags]

Commands:
  backup FILE  write a consistent copy of the data file to FILE (- for standard
               output), also while tagwatch serve runs on it
  check        verify every page and record of the data file (exit 0 when it
               is sound, 1 when it is damaged)
  rotate-key   encrypt every saved secret with a new key (tagwatch stopped)

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
	case "rotate-key":
		return runStoreRotateKey(args[1:], environ, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, storeUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tagwatch store: unknown command %q\n\n%s", args[0], storeUsage)
	return exitUsage
}

// secretKey reads the store's key from TAGWATCH_SECRET_KEY or
// TAGWATCH_SECRET_KEY_FILE (a compose secret, a systemd credential), read
// as config reads every NAME/NAME_FILE pair (it refuses both). With
// neither, opts is empty and the store uses (and on first start makes) the
// key file beside it.
func secretKey(environ []string) (opts []store.Option, err error) {
	env := config.ReadEnv(environ)
	if err := env.Err("SECRET_KEY"); err != nil {
		return nil, err
	}
	val, origin, ok := env.Lookup("SECRET_KEY")
	if !ok {
		return nil, nil
	}
	k, err := store.ParseKey(val)
	if err != nil {
		return nil, &config.Error{Origin: origin, Field: "secret_key", Msg: err.Error()}
	}
	if origin.Env == store.KeyFileEnv {
		return []store.Option{store.WithKey(k, envOr(environ, store.KeyFileEnv, "")+" ("+store.KeyFileEnv+")")}, nil
	}
	return []store.Option{store.WithKey(k, "environment "+store.KeyEnv)}, nil
}

func runStoreRotateKey(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store rotate-key", flag.ContinueOnError)
	dataPath := fs.String("data", config.ReadEnv(environ).Get("DATA", "tagwatch.db"), "the bbolt `file` whose secrets to encrypt again; env TAGWATCH_DATA")
	newKeyFile := fs.String("new-key-file", "", "`file` holding the new key (32 random bytes in base64, e.g. from: openssl rand -base64 32); "+
		"default: a new random key. Required when the current key comes from "+store.KeyEnv+" or "+store.KeyFileEnv)
	fs.Usage = usageFunc(fs, `Usage: tagwatch store rotate-key [--data FILE] [--new-key-file FILE]

Encrypts every secret saved in the data file (registry credentials and
notifier urls saved in the UI) again, with a new key, in one transaction,
then rewrites the file so that nothing encrypted with the old key stays in
it. Stop tagwatch first: the running daemon holds the file's lock, and the
command then says so and changes nothing.

The current key is TAGWATCH_SECRET_KEY (or the file TAGWATCH_SECRET_KEY_FILE
names) when set, else the key file beside the data file (FILE.key).

- With the key file beside the data file, the new key (--new-key-file's, or
  a random one) replaces it: it is written to FILE.key.new first, then the
  secrets are encrypted again, then FILE.key.new replaces FILE.key. If that
  is interrupted, tagwatch still starts, and running the command again
  finishes the rotation.
- With a key from the environment, give the new key with --new-key-file;
  after the rotation, point TAGWATCH_SECRET_KEY_FILE at that file (or set
  TAGWATCH_SECRET_KEY to its content) before starting tagwatch.

Backups made before the rotation still need the old key.

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	opts, err := secretKey(environ)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	var next *store.Key
	if *newKeyFile != "" {
		k, err := store.ReadKeyFile(*newKeyFile)
		if err != nil {
			fmt.Fprintf(stderr, "tagwatch store rotate-key: --new-key-file: %v\n", err)
			return exitUsage
		}
		next = &k
	} else if len(opts) > 0 {
		fmt.Fprintf(stderr, "tagwatch store rotate-key: the current key comes from the environment (%s or %s): "+
			"make a new key (openssl rand -base64 32 > new.key), pass it with --new-key-file new.key, and give it to tagwatch the same way afterwards\n",
			store.KeyEnv, store.KeyFileEnv)
		return exitUsage
	}
	rot, err := store.RotateKey(*dataPath, next, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch store rotate-key: %v\n", err)
		if errors.Is(err, store.ErrLocked) {
			fmt.Fprintln(stderr, "tagwatch store rotate-key: stop tagwatch first (the running daemon holds the file), then run this again")
		}
		return exitFailed
	}
	fmt.Fprintf(stdout, "rotated: %d secrets in %s encrypted again, key %s replaced by key %s\n", rot.Secrets, *dataPath, rot.OldID, rot.NewID)
	if rot.KeyFile != "" {
		fmt.Fprintf(stdout, "the new key is in %s: back it up (separately from the data file); backups made before now need the old key\n", rot.KeyFile)
	} else {
		fmt.Fprintf(stdout, "start tagwatch with the new key: %s=%s (or %s set to its content); backups made before now need the old key\n",
			store.KeyFileEnv, *newKeyFile, store.KeyEnv)
	}
	return exitOK
}
