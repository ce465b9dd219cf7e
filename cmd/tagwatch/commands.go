package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	repo "github.com/tagwatch/tagwatch"
	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/web"
)

// parseFlags parses a command's flags. --help prints the usage on stdout
// and ends the command with status 0; a bad flag prints the error and the
// usage on stderr and ends it with status 2. ok is false when the command
// must end with code.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(buf.Bytes())
		return exitOK, false
	default:
		_, _ = stderr.Write(buf.Bytes())
		return exitUsage, false
	}
}

// usageFunc prints text and then the flags, to wherever fs writes.
func usageFunc(fs *flag.FlagSet, text string) func() {
	return func() {
		fmt.Fprint(fs.Output(), text)
		fs.PrintDefaults()
	}
}

// noArgs refuses arguments to a command that takes none.
func noArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() == 0 {
		return true
	}
	fmt.Fprintf(stderr, "tagwatch %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
	fs.Usage()
	return false
}

const configUsage = `Usage: tagwatch config COMMAND [flags]

Commands:
  validate       load the config file and the TAGWATCH_* environment, open
                 every registry instance, and report every error (exit 0 or 2)
  example        print an example configuration file
  hash-password  print the bcrypt hash of a password read on stdin (web.auth.password)
  token          print a new random API token (web.auth.token)

Run 'tagwatch config COMMAND --help' for a command's flags.
`

func runConfig(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return exitUsage
	}
	switch args[0] {
	case "validate":
		return runConfigValidate(args[1:], environ, stdout, stderr)
	case "example":
		return runConfigExample(args[1:], stdout, stderr)
	case "hash-password":
		return runHashPassword(args[1:], stdin, stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, configUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tagwatch config: unknown command %q\n\n%s", args[0], configUsage)
	return exitUsage
}

func runConfigValidate(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	cfgPath := fs.String("config", config.ReadEnv(environ).Get("CONFIG", ""), "configuration `file` (YAML); env TAGWATCH_CONFIG")
	fs.Usage = usageFunc(fs, `Usage: tagwatch config validate [--config FILE]

Loads the config file (if any) and the TAGWATCH_* environment over it, as
serve would, opens every registry instance (reading CA files), and checks the
platform, the listen address and the secret key (TAGWATCH_SECRET_KEY or
TAGWATCH_SECRET_KEY_FILE, when set). Prints "ok: N registries, M watchers, K
images" and exits 0, or prints every error with its file:line (or
environment variable) and field and exits 2. Registries saved in the UI (in
the data file) are not checked: an image whose registry: names one the
config does not define gets a note, and serve checks it when it starts.

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	cat := registries.CatalogFromEnv(func(k string) string { return envOr(environ, k, "") })
	// Whatever loaded is checked further, so that one run lists every error.
	cfg, err := config.LoadAll(*cfgPath, environ, cat)
	errs := []error{err}
	if err := web.CheckListen(cfg.Web.Listen, cfg.Web.Auth.Enabled(), cfg.Web.AllowRemote); err != nil {
		errs = append(errs, &config.Error{Origin: cfg.Where("web.listen"), Field: "web.listen", Msg: cfg.Web.Listen + ": " + err.Error()})
	}
	plat, perr := v1.ParsePlatform(cfg.Platform)
	if perr != nil { // reported by LoadAll
		plat = &v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	set, err := registries.NewSet(cat, cfg.Registries, registries.Options{
		Transport: registries.NewTransportFromEnv(func(k string) string { return envOr(environ, k, "") }),
		Platform:  *plat,
	})
	if err != nil {
		errs = append(errs, placeErrs(cfg, err))
	}
	// LoadAll has reported the variables that could not be read; secretKey
	// adds whether what they hold is a key.
	if config.ReadEnv(environ).Err("SECRET_KEY") == nil {
		if _, err := secretKey(environ); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		printErrs(stderr, err)
		return exitUsage
	}
	// An image may name an instance saved in the UI, which only serve sees.
	for i, img := range cfg.Images {
		if img.Registry == "" {
			continue
		}
		ref, err := registries.ParseImage(img.Image)
		if err != nil {
			continue
		}
		if found, _ := cat.CheckNamed(cfg.Registries, img.Registry, ref); !found {
			field := fmt.Sprintf("images[%d].registry", i)
			fmt.Fprintf(stdout, "note: %s: %s: %s is not in the config file or the environment; serve checks that it is saved in the UI and serves %s\n",
				cfg.Where(field), field, img.Registry, ref.Name())
		}
	}
	fmt.Fprintf(stdout, "ok: %s, %s, %s\n", plural(len(set.Instances()), "registry", "registries"),
		plural(len(cfg.Watchers), "watcher", "watchers"), plural(len(cfg.Images), "image", "images"))
	return exitOK
}

// printErrs prints every error of a (joined) error, one a line, in the
// order of the config file, then the environment.
func printErrs(w io.Writer, err error) {
	for _, e := range config.Errors(err) {
		for _, line := range strings.Split(e.Error(), "\n") {
			fmt.Fprintf(w, "tagwatch: %s\n", line)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func runConfigExample(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config example", flag.ContinueOnError)
	fs.Usage = usageFunc(fs, `Usage: tagwatch config example

Prints an example configuration file (config.example.yml) with every section
commented: tagwatch config example > config.yml

Flags:
  -h, --help  show this help
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	fmt.Fprint(stdout, repo.ExampleConfig)
	return exitOK
}

// version is set by release builds: -ldflags "-X main.version=v1.2.3".
var version = ""

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = usageFunc(fs, `Usage: tagwatch version

Prints the version (set at build time with -ldflags "-X main.version=…",
else the Go module's), the module, the VCS revision and commit time it was
built from (and whether the tree had changes), and the Go version.

Flags:
  -h, --help  show this help
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	fmt.Fprint(stdout, versionText())
	return exitOK
}

// versionText is `tagwatch version`'s output:
//
//	tagwatch v1.2.3
//	  module:   github.com/tagwatch/tagwatch v1.2.3
//	  revision: 0a1b2c3… (2025-11-23T13:01:54Z, modified)
//	  go:       go1.26.0 linux/amd64
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	v := version
	if v == "" && ok && info.Main.Version != "" {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tagwatch %s\n", v)
	goVersion := runtime.Version()
	if ok {
		if info.Main.Path != "" {
			fmt.Fprintf(&b, "  module:   %s %s\n", info.Main.Path, info.Main.Version)
		}
		vcs := map[string]string{}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			var notes []string
			if t := vcs["vcs.time"]; t != "" {
				notes = append(notes, t)
			}
			if vcs["vcs.modified"] == "true" {
				notes = append(notes, "modified")
			}
			fmt.Fprintf(&b, "  revision: %s", rev)
			if len(notes) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
			}
			b.WriteString("\n")
		} else {
			b.WriteString("  revision: unknown (built without VCS information)\n")
		}
		goVersion = info.GoVersion
	}
	fmt.Fprintf(&b, "  go:       %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func runHealthcheck(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "`URL` to probe (default http://<TAGWATCH_WEB_LISTEN, else 127.0.0.1:8080>/api/v1/healthz, 0.0.0.0 read as 127.0.0.1)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	fs.Usage = usageFunc(fs, `Usage: tagwatch healthcheck [--url URL] [--timeout DURATION]

Asks a running 'tagwatch serve' whether it is healthy (GET /api/v1/healthz,
which needs no authentication) and exits 0 when it answers 200, else 1. It is
the container image's HEALTHCHECK: the image has no curl or wget.

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	if *url == "" {
		env := config.ReadEnv(environ)
		if err := env.Err("WEB_LISTEN"); err != nil {
			printErrs(stderr, err)
			return exitUsage
		}
		listen, origin, ok := env.Lookup("WEB_LISTEN")
		if !ok {
			listen = "127.0.0.1:8080"
		}
		u, err := healthURL(listen)
		if err != nil {
			fmt.Fprintf(stderr, "tagwatch healthcheck: %s: %v\n", origin, err)
			return exitUsage
		}
		*url = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch healthcheck: %v\n", err)
		return exitUsage
	}
	// No proxy: the server is local.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return exitFailed
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s: %s %s\n", *url, res.Status, bytes.TrimSpace(body))
		return exitFailed
	}
	fmt.Fprintf(stdout, "healthy: %s: %s\n", *url, bytes.TrimSpace(body))
	return exitOK
}

// healthURL is the health endpoint of a server listening on listen.
func healthURL(listen string) (string, error) {
	base, err := serverURL(listen)
	if err != nil {
		return "", err
	}
	return base + "/api/v1/healthz", nil
}

// serverURL is the base URL of a server on this machine listening on
// listen; an unspecified address (all interfaces) is reached on loopback.
func serverURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
