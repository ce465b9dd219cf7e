// Command tagwatch watches the container images you run and tells you when
// their registries have a newer version or a new digest.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

const usage = `tagwatch watches the container images you run and tells you when their
registries have a newer version or a new digest.

Usage:
  tagwatch serve [--config FILE] [--data FILE] [--listen ADDR] [--log-format text|json] [--log-level LEVEL]
  tagwatch check [--config FILE] [--json] [--platform OS/ARCH] [--timeout DURATION] [--state FILE [--accept]] [IMAGE...]
  tagwatch config validate [--config FILE]
  tagwatch config example
  tagwatch config hash-password [--cost N]
  tagwatch config token
  tagwatch store backup [--data FILE] [--config FILE] [--url URL] [--timeout DURATION] FILE
  tagwatch store check [--data FILE] [--config FILE] [--url URL] [--timeout DURATION]
  tagwatch store rotate-key [--data FILE] [--new-key-file FILE]
  tagwatch version
  tagwatch healthcheck [--url URL] [--timeout DURATION]

Every setting can also come from the environment: TAGWATCH_CONFIG,
TAGWATCH_DATA, TAGWATCH_SECRET_KEY, TAGWATCH_REGISTRY_<KIND>_<NAME>_<VARIABLE>,
TAGWATCH_WATCHER_<NAME>_<SETTING>, TAGWATCH_IMAGES, TAGWATCH_WEB_LISTEN,
TAGWATCH_LIMITS_<SETTING>, …
(add _FILE to read a value from a file); see README.md.

Run 'tagwatch COMMAND --help' (or 'tagwatch help COMMAND') for a command's flags.
`

// exit codes
const (
	exitOK      = 0
	exitFailed  = 1 // some image could not be checked
	exitUsage   = 2 // bad flags or configuration
	exitUpdates = 3 // check --state: every image was checked, and some have an update
	exitAborted = 130
)

func main() {
	ctx, stop := signalNotify(context.Background())
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalNotify ends ctx on SIGINT or SIGTERM: the daemon then stops cleanly.
func signalNotify(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], environ, stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], environ, stdout, stderr)
	case "config":
		return runConfig(args[1:], environ, os.Stdin, stdout, stderr)
	case "store":
		return runStore(ctx, args[1:], environ, stdout, stderr)
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case "--version":
		fmt.Fprint(stdout, versionText())
		return exitOK
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], environ, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" { // tagwatch help serve
			return run(ctx, append(args[1:], "--help"), environ, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tagwatch: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func runCheck(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cfgPath := fs.String("config", config.ReadEnv(environ).Get("CONFIG", ""), "configuration `file` (YAML); env TAGWATCH_CONFIG")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per image")
	platform := fs.String("platform", "", "platform to resolve multi-arch images to (default from config, else linux/amd64)")
	timeout := fs.Duration("timeout", 0, "stop after this `duration`, print what was checked, and exit 1 if anything was not (default limits.cycle from config, else 30m)")
	statePath := fs.String("state", "", "keep the digests seen behind each tag in this bbolt `file` (created if missing), so that a later run reports a new image behind the same tag as a digest update")
	accept := fs.Bool("accept", false, "with --state: mark the digest the last run reported for each IMAGE (every image in the file when none is named) as current, without asking a registry")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tagwatch check [flags] [IMAGE...]

Checks each IMAGE (or, with none, the config file's images:) once and prints
one result per image: the newest tag of the same shape, the digests, and the
kind of update. Exit status 0 when every image was checked, 1 when any failed
or was cut short by the deadline (--timeout, else limits.cycle).

With --state FILE, the first digest seen behind each tag is kept in FILE as
its baseline, and a later run that finds another image behind the tag
reports a digest update, run after run, until --accept marks it as current.
The updates a run finds first are added to the file's history. Exit status 3
then says that every image was checked and at least one has an update.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *accept && *statePath == "" {
		fmt.Fprintln(stderr, "tagwatch: --accept needs --state FILE: the file that keeps the digests to accept")
		return exitUsage
	}

	cat := registries.CatalogFromEnv(func(k string) string { return envOr(environ, k, "") })
	cfg, err := config.Load(*cfgPath, environ, cat)
	if err != nil {
		printErrs(stderr, err)
		return exitUsage
	}
	if *platform == "" {
		*platform = cfg.Platform
	}
	plat, err := v1.ParsePlatform(*platform)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: --platform %q: %v\n", *platform, err)
		return exitUsage
	}
	if *timeout < 0 {
		fmt.Fprintf(stderr, "tagwatch: --timeout %v: must be positive\n", *timeout)
		return exitUsage
	}
	if *timeout == 0 {
		*timeout = cfg.Limits.Cycle
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set, err := registries.NewSet(cat, cfg.Registries, registries.Options{
		Transport: registries.NewTransportFromEnv(func(k string) string { return envOr(environ, k, "") }),
		Platform:  *plat,
		Warn:      func(id, msg string) { log.Warn(msg, "registry", id) },
		Limits:    cfg.Limits.Registries(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}

	if *accept {
		return acceptDigests(*statePath, fs.Args(), cfg, *plat, environ, *asJSON, stdout, stderr)
	}
	targets, err := checkTargets(fs.Args(), cfg, *plat)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "tagwatch: nothing to check: name images, or list them under images: in --config")
		return exitUsage
	}

	checker := &watcher.Checker{
		Registries:   func() *registries.Set { return set },
		ImageTimeout: cfg.Limits.Image,
		CycleTimeout: *timeout,
	}
	start := time.Now()
	var results []watcher.Result
	if *statePath != "" {
		st, code := openState(*statePath, environ, stderr)
		if st == nil {
			return code
		}
		d := &watcher.Daemon{Checker: checker, Store: st, Log: log, Platform: *plat}
		results, _, err = d.CheckOnce(ctx, targets)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "tagwatch: --state %s: %v\n", *statePath, err)
			return exitFailed
		}
	} else {
		results = checker.Run(ctx, targets)
	}
	if ctx.Err() != nil {
		return exitAborted
	}
	if time.Since(start) >= *timeout {
		fmt.Fprintf(stderr, "tagwatch: the %s deadline passed; the images not finished say what they were waiting for\n", registries.Duration(*timeout))
	}

	code := exitOK
	for _, r := range results {
		if r.Error != "" {
			code = exitFailed
		}
	}
	if code == exitOK && *statePath != "" && slices.ContainsFunc(results, func(r watcher.Result) bool { return r.Update.Available() }) {
		code = exitUpdates
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", err)
			return exitFailed
		}
		return code
	}
	for _, r := range results {
		fmt.Fprintln(stdout, r)
	}
	return code
}

// checkTargets turns the arguments, or the config's images, into targets.
// An argument that is also listed in the config gets that entry's options.
func checkTargets(args []string, cfg *config.Config, plat v1.Platform) ([]watcher.Target, error) {
	listed := map[string]config.Image{}
	for _, img := range cfg.Images {
		listed[img.Image] = img
	}
	if len(args) == 0 {
		for _, img := range cfg.Images {
			args = append(args, img.Image)
		}
	}
	var out []watcher.Target
	for _, a := range args {
		img, err := registries.ParseImage(a)
		if err != nil {
			return nil, err
		}
		t := watcher.Target{Image: img, Digest: img.Digest, Pinned: img.Digest != "", Platform: plat, Track: img.Digest == ""}
		if entry, ok := listed[a]; ok {
			t.Options = entry.Options
			if entry.Platform != "" {
				p, err := v1.ParsePlatform(entry.Platform)
				if err != nil {
					return nil, fmt.Errorf("image %s: platform: %w", a, err)
				}
				t.Platform = *p
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// envOr reads a variable of another program's (DOCKER_HOST, AWS_…); tagwatch's
// own are read with config.ReadEnv, which knows the _FILE rule.
func envOr(environ []string, key, def string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return def
}

// openState opens check's --state file, a store like serve's data file (so
// its secret key options apply, and a key file is made beside it on first
// use, as for any store). On failure it has printed why, and returns the
// exit code.
func openState(path string, environ []string, stderr io.Writer) (*store.Store, int) {
	keyOpts, err := secretKey(environ)
	if err != nil {
		printErrs(stderr, err)
		return nil, exitUsage
	}
	st, err := store.Open(path, keyOpts...)
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(stderr, "tagwatch: --state %s is locked by another tagwatch (a running serve, or another check): give check a file of its own\n", path)
		return nil, exitFailed
	}
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: --state: %v\n", err)
		return nil, exitFailed
	}
	return st, exitOK
}

// acceptDigests is check --state FILE --accept [IMAGE...]: the digest the
// last run found behind each IMAGE's tag (each image's in the file, with no
// IMAGE) becomes its baseline. No registry is asked: what is accepted is
// what was reported.
func acceptDigests(path string, args []string, cfg *config.Config, plat v1.Platform, environ []string, asJSON bool, stdout, stderr io.Writer) int {
	var keys []string // nil: every image
	if len(args) > 0 {
		targets, err := checkTargets(args, cfg, plat)
		if err != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", err)
			return exitUsage
		}
		keys = []string{}
		for _, t := range targets {
			keys = append(keys, watcher.RecordKey(t))
		}
	}
	st, code := openState(path, environ, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	var missing []string
	for i, k := range keys {
		if _, ok, err := st.Image(k); err != nil {
			fmt.Fprintf(stderr, "tagwatch: --state %s: %v\n", path, err)
			return exitFailed
		} else if !ok {
			missing = append(missing, args[i])
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "tagwatch: --state %s has no result for %s: check it with --state first\n", path, strings.Join(missing, ", "))
		return exitFailed
	}
	accepted, err := st.AcceptDigests(keys, time.Now().UTC())
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: --state %s: %v\n", path, err)
		return exitFailed
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(accepted); err != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	for _, img := range accepted {
		fmt.Fprintf(stdout, "%s\t%s\taccepted %s as current\n", img.Image, img.Registry, img.Baseline)
	}
	if len(accepted) == 0 {
		fmt.Fprintln(stdout, "nothing to accept: no digest update is waiting")
	}
	return exitOK
}
