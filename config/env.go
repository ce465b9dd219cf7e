package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/tagwatch/tagwatch/registries"
)

// EnvPrefix starts every environment variable tagwatch reads.
const EnvPrefix = "TAGWATCH_"

// maxEnvFile caps what a _FILE variable reads: a secret or a path is a few
// bytes, and a mistaken /dev/zero or log file must not be read whole.
const maxEnvFile = 1 << 20

// Env is the TAGWATCH_* environment read under the one rule every variable
// follows, in the config and on the command line alike: NAME=value, or
// NAME_FILE=path, whose value is the file's content without its trailing
// newline (Docker and compose secrets, systemd credentials). Setting both
// NAME and NAME_FILE is an error, as is a file that cannot be read.
type Env struct {
	vars map[string]envVar // by name without TAGWATCH_ and _FILE: "CONFIG", "REGISTRY_HUB_PUBLIC_PASSWORD"
}

type envVar struct {
	value  string
	origin Origin // the variable as set: TAGWATCH_CONFIG_FILE when read from a file
	err    error  // reading it failed: value is empty
}

// ReadEnv reads the TAGWATCH_* variables of environ ("KEY=value" strings).
// Errors are kept with their variable: Lookup leaves it out and applyEnv
// reports it.
func ReadEnv(environ []string) *Env {
	e := &Env{vars: map[string]envVar{}}
	for _, kv := range environ {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvPrefix) {
			continue
		}
		name, isFile := strings.CutSuffix(strings.TrimPrefix(key, EnvPrefix), "_FILE")
		v := envVar{value: val, origin: Origin{Env: key}}
		if isFile {
			v.value, v.err = readEnvFile(val)
		}
		if have, dup := e.vars[name]; dup {
			// NAME and NAME_FILE: name the _FILE one, which is the odd one out.
			file, plain := have.origin.Env, key
			if isFile {
				file, plain = key, have.origin.Env
			}
			e.vars[name] = envVar{origin: Origin{Env: file}, err: fmt.Errorf("%s is set too: set only one of them", plain)}
			continue
		}
		e.vars[name] = v
	}
	return e
}

// readEnvFile reads the value a _FILE variable names.
func readEnvFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the file it names: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return "", fmt.Errorf("reading the file it names: %w", err)
	}
	if len(b) > maxEnvFile {
		return "", fmt.Errorf("the file it names, %s, is larger than %d KiB: it should hold one value", path, maxEnvFile>>10)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Lookup returns the value of TAGWATCH_<name> (name without the prefix:
// "CONFIG"), from the variable or from the file TAGWATCH_<name>_FILE names.
// ok is false when neither is set or reading failed (applyEnv reports that).
func (e *Env) Lookup(name string) (value string, origin Origin, ok bool) {
	v, found := e.vars[name]
	if !found || v.err != nil {
		return "", v.origin, false
	}
	return v.value, v.origin, true
}

// Err is the error of reading TAGWATCH_<name>, placed like the config's
// errors; nil when it is unset or was read.
func (e *Env) Err(name string) error {
	if v := e.vars[name]; v.err != nil {
		return &Error{v.origin, envField(name), v.err.Error()}
	}
	return nil
}

// Get is Lookup's value, or def.
func (e *Env) Get(name, def string) string {
	if v, _, ok := e.Lookup(name); ok {
		return v
	}
	return def
}

// names lists the variables set, sorted: errors come in a stable order.
func (e *Env) names() []string {
	out := make([]string, 0, len(e.vars))
	for n := range e.vars {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// applyEnv lays the environment over the file: TAGWATCH_REGISTRY_<KIND>_<NAME>_<VAR>,
// TAGWATCH_NOTIFIER_<NAME>_<SETTING>, TAGWATCH_WATCHER_<NAME>_<SETTING>,
// TAGWATCH_IMAGES, TAGWATCH_CRON, TAGWATCH_WEB_*, TAGWATCH_PLATFORM,
// TAGWATCH_HISTORY_KEEP, TAGWATCH_HISTORY_MAXAGE, TAGWATCH_NOTIFY_RETRYFOR,
// TAGWATCH_LIMITS_<SETTING>, and
// checks the command line's TAGWATCH_CONFIG, _DATA and _LOG_*.
func (c *Config) applyEnv(env *Env, cat registries.Catalog) error {
	var errs []error
	for _, name := range env.names() {
		v := env.vars[name]
		origin, val := v.origin, v.value
		if err := env.Err(name); err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case strings.HasPrefix(name, "REGISTRY_"):
			if err := c.envRegistry(origin, strings.TrimPrefix(name, "REGISTRY_"), val, cat); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(name, "NOTIFIER_"):
			if err := c.envNotifier(origin, strings.TrimPrefix(name, "NOTIFIER_"), val); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(name, "LIMITS_"):
			if err := c.setLimit(origin, strings.ToLower(strings.TrimPrefix(name, "LIMITS_")), val); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(name, "WATCHER_"):
			if err := c.envWatcher(origin, strings.TrimPrefix(name, "WATCHER_"), val); err != nil {
				errs = append(errs, err)
			}
		case name == "IMAGES":
			c.envImages(origin, val)
		case name == "CRON":
			c.ImagesCron = val
			c.where["cron"] = origin
		case name == "WEB_LISTEN":
			c.Web.Listen = val
			c.where["web.listen"] = origin
		case name == "WEB_AUTH_USERNAME":
			c.Web.Auth.Username = val
			c.where["web.auth.username"] = origin
		case name == "WEB_AUTH_PASSWORD":
			c.Web.Auth.Password = val
			c.where["web.auth.password"] = origin
		case name == "WEB_AUTH_TOKEN":
			c.Web.Auth.Token = val
			c.where["web.auth.token"] = origin
		case name == "WEB_HOSTS":
			c.envHosts(origin, val)
		case name == "WEB_ALLOWLINKLOCAL":
			b, err := strconv.ParseBool(val)
			if err != nil {
				errs = append(errs, &Error{origin, "web.allowlinklocal", "must be true or false"})
				continue
			}
			c.Web.AllowLinkLocal = b
		case name == "WEB_ALLOWREMOTE":
			b, err := strconv.ParseBool(val)
			if err != nil {
				errs = append(errs, &Error{origin, "web.allowremote", "must be true or false"})
				continue
			}
			c.Web.AllowRemote = b
		case name == "HISTORY_KEEP" || name == "HISTORY_MAXAGE" || name == "NOTIFY_RETRYFOR":
			c.setScalar(envField(name), val, origin)
		case name == "PLATFORM":
			c.Platform = val
			c.where["platform"] = origin
		case name == "SECRET_KEY":
			// The store's key: cmd/tagwatch reads it through Lookup and
			// checks its format where the store opens with it, which says
			// what a key must look like.
		case commandLine[name] != nil:
			// Read by the command line (its flags' defaults); checked here so
			// that config validate reports them with the rest.
			if err := commandLine[name](val); err != nil {
				errs = append(errs, &Error{origin, envField(name), err.Error()})
			}
		default:
			errs = append(errs, &Error{origin, envField(name), "is not a tagwatch setting"})
		}
	}
	return errors.Join(errs...)
}

// commandLine checks the variables the command line reads for its flags.
var commandLine = map[string]func(string) error{
	"CONFIG": onePath,
	"DATA":   onePath,
	"LOG_FORMAT": func(v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("%q: want text or json", v)
		}
		return nil
	},
	"LOG_LEVEL": func(v string) error {
		var lv slog.Level
		if lv.UnmarshalText([]byte(v)) != nil {
			return fmt.Errorf("%q: want debug, info, warn or error", v)
		}
		return nil
	},
}

// onePath refuses a path with a line break: TAGWATCH_CONFIG_FILE names a
// file holding the config file's path, and pointing it at the YAML itself
// is an easy mistake to make.
func onePath(v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return errors.New("holds several lines, not one path: a _FILE variable names a file that holds the value (here a path); " +
			"to name the file itself, drop _FILE")
	}
	return nil
}

// envRegistry reads <KIND>_<NAME>_<VAR>. Kinds and variables hold no
// underscore, so the name is whatever lies between them.
func (c *Config) envRegistry(origin Origin, rest, val string, cat registries.Catalog) error {
	kind, tail, ok := strings.Cut(strings.ToLower(rest), "_")
	if !ok {
		return &Error{origin, "registries", "want TAGWATCH_REGISTRY_<KIND>_<NAME>_<VARIABLE>"}
	}
	if _, err := cat.Provider(kind); err != nil {
		return &Error{origin, "registries." + kind, err.Error()}
	}
	cut := strings.LastIndex(tail, "_")
	if cut <= 0 {
		return &Error{origin, "registries." + kind, "want TAGWATCH_REGISTRY_<KIND>_<NAME>_<VARIABLE>"}
	}
	name, variable := tail[:cut], tail[cut+1:]
	field := "registries." + kind + "." + name
	if err := checkName(name); err != nil {
		return &Error{origin, field, err.Error()}
	}
	c.setRegistry(registries.Config{Kind: kind, Name: name, Source: registries.SourceFile, Values: registries.Values{variable: val}})
	if _, seen := c.where[field]; !seen {
		c.where[field] = origin
	}
	c.where[field+"."+variable] = origin
	return nil
}

// envNameKey splits the <NAME>_<KEY> end of a variable. Keys hold no
// underscore, so the name is whatever lies before the last one.
func envNameKey(origin Origin, section, what, form, rest string) (name, key string, err error) {
	rest = strings.ToLower(rest)
	cut := strings.LastIndex(rest, "_")
	if cut <= 0 {
		return "", "", &Error{origin, section, "want " + form}
	}
	name, key = rest[:cut], rest[cut+1:]
	if err := checkName(name); err != nil {
		return "", "", &Error{origin, section + "." + name, strings.Replace(err.Error(), "instance name", what+" name", 1)}
	}
	return name, key, nil
}

// envField names the config field a variable (without TAGWATCH_) stands
// for, so errors about a variable read like errors about the file:
// REGISTRY_HUB_PUBLIC_PASSWORD is registries.hub.public.password.
func envField(name string) string {
	lower := strings.ToLower(name)
	if commandLine[name] != nil {
		return "--" + strings.ReplaceAll(lower, "_", "-") // a flag's default: TAGWATCH_LOG_LEVEL is --log-level
	}
	for prefix, section := range map[string]string{"registry_": "registries.", "watcher_": "watchers.", "notifier_": "notifiers."} {
		rest, ok := strings.CutPrefix(lower, prefix)
		if !ok {
			continue
		}
		if section == "registries." {
			if kind, tail, ok := strings.Cut(rest, "_"); ok {
				section, rest = section+kind+".", tail
			}
		}
		if cut := strings.LastIndex(rest, "_"); cut > 0 {
			return section + rest[:cut] + "." + rest[cut+1:]
		}
		return section + rest
	}
	if rest, ok := strings.CutPrefix(lower, "limits_"); ok {
		return "limits." + rest
	}
	if rest, ok := strings.CutPrefix(lower, "web_auth_"); ok {
		return "web.auth." + rest
	}
	if rest, ok := strings.CutPrefix(lower, "web_"); ok {
		return "web." + rest
	}
	for _, section := range []string{"history", "notify"} {
		if rest, ok := strings.CutPrefix(lower, section+"_"); ok {
			return section + "." + rest
		}
	}
	return lower
}
