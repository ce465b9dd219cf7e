package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/tagwatch/tagwatch/registries"
)

// EnvPrefix starts every environment variable tagwatch reads.
const EnvPrefix = "TAGWATCH_"

// applyEnv lays the environment over the file: TAGWATCH_REGISTRY_<KIND>_<NAME>_<VAR>,
// TAGWATCH_NOTIFIER_<NAME>_<SETTING>, TAGWATCH_WATCHER_<NAME>_<SETTING>,
// TAGWATCH_IMAGES, TAGWATCH_CRON, TAGWATCH_WEB_*, TAGWATCH_PLATFORM,
// TAGWATCH_LIMITS_<SETTING>. A
// variable ending in _FILE reads its value from that file (Docker secrets).
func (c *Config) applyEnv(environ []string, cat registries.Catalog) error {
	sort.Strings(environ) // deterministic order of errors
	var errs []error
	for _, kv := range environ {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvPrefix) {
			continue
		}
		origin := Origin{Env: key}
		name := strings.TrimPrefix(key, EnvPrefix)
		if base, isFile := strings.CutSuffix(name, "_FILE"); isFile {
			b, err := os.ReadFile(val)
			if err != nil {
				errs = append(errs, &Error{origin, envField(base), fmt.Sprintf("reading the file it names: %v", err)})
				continue
			}
			name, val = base, strings.TrimRight(string(b), "\r\n")
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
		case name == "WEB_AUTH_PASSWORD":
			c.Web.Auth.Password = val
		case name == "WEB_AUTH_TOKEN":
			c.Web.Auth.Token = val
		case name == "WEB_ALLOWREMOTE":
			b, err := strconv.ParseBool(val)
			if err != nil {
				errs = append(errs, &Error{origin, "web.allowremote", "must be true or false"})
				continue
			}
			c.Web.AllowRemote = b
		case name == "PLATFORM":
			c.Platform = val
			c.where["platform"] = origin
		case name == "CONFIG" || name == "DATA" || name == "LOG_FORMAT" || name == "LOG_LEVEL":
			// read by the command line (flags' defaults)
		default:
			errs = append(errs, &Error{origin, envField(name), "is not a tagwatch setting"})
		}
	}
	return errors.Join(errs...)
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
	return lower
}
