package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/robfig/cron/v3"
)

// watcherKeys set a watcher's settings by their YAML name, which is also
// the <SETTING> of TAGWATCH_WATCHER_<NAME>_<SETTING>. A test keeps it in
// step with Watcher's fields.
var watcherKeys = map[string]func(w *Watcher, v string) error{
	"kind":       func(w *Watcher, v string) error { w.Kind = v; return nil },
	"kubeconfig": func(w *Watcher, v string) error { w.Kubeconfig = v; return nil },
	"context":    func(w *Watcher, v string) error { w.Context = v; return nil },
	"address":    func(w *Watcher, v string) error { w.Address = v; return nil },
	// In the environment a list is comma-separated: media,home.
	"namespaces": func(w *Watcher, v string) error {
		w.Namespaces = nil
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				w.Namespaces = append(w.Namespaces, ns)
			}
		}
		return nil
	},
	"host":     func(w *Watcher, v string) error { w.Host = v; return nil },
	"cafile":   func(w *Watcher, v string) error { w.CAFile = v; return nil },
	"certfile": func(w *Watcher, v string) error { w.CertFile = v; return nil },
	"keyfile":  func(w *Watcher, v string) error { w.KeyFile = v; return nil },
	"cron":     func(w *Watcher, v string) error { w.Cron = v; return nil },
	"watchbydefault": func(w *Watcher, v string) error {
		b, err := parseBool(v)
		w.WatchByDefault = &b
		return err
	},
	"watchstopped": func(w *Watcher, v string) error {
		b, err := parseBool(v)
		w.WatchStopped = b
		return err
	},
	"swarm": func(w *Watcher, v string) error {
		b, err := parseBool(v)
		w.Swarm = &b
		return err
	},
}

// Watcher kinds. An empty kind is KindDocker, so configurations from before
// kinds existed keep working.
const (
	KindDocker     = "docker"
	KindPodman     = "podman"
	KindKubernetes = "kubernetes"
	KindContainerd = "containerd"
)

// watcherKindKeys are the settings each kind takes besides kind and cron,
// one line per kind; a setting of another kind is an error rather than
// silently ignored.
var watcherKindKeys = map[string][]string{
	KindDocker:     {"host", "cafile", "certfile", "keyfile", "watchbydefault", "watchstopped", "swarm"},
	KindPodman:     {"host", "cafile", "certfile", "keyfile", "watchbydefault", "watchstopped"},
	KindKubernetes: {"kubeconfig", "context", "namespaces", "watchbydefault"},
	KindContainerd: {"address", "namespaces", "watchbydefault", "watchstopped"},
}

// WatcherKinds lists the kinds of watcher, sorted.
func WatcherKinds() []string {
	kinds := make([]string, 0, len(watcherKindKeys))
	for k := range watcherKindKeys {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// KindOf is a watcher's kind, KindDocker when it does not say.
func (w Watcher) KindOf() string {
	if w.Kind == "" {
		return KindDocker
	}
	return w.Kind
}

// WatcherKeys lists the settings of a watcher, sorted.
func WatcherKeys() []string {
	keys := make([]string, 0, len(watcherKeys))
	for k := range watcherKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("must be true or false")
	}
	return b, nil
}

// envWatcher reads TAGWATCH_WATCHER_<NAME>_<SETTING>. Settings hold no
// underscore, so the name is whatever lies before the last one. It adds to
// (or creates) the watcher of that name from the file.
func (c *Config) envWatcher(origin Origin, rest, val string) error {
	name, key, err := envNameKey(origin, "watchers", "watcher", "TAGWATCH_WATCHER_<NAME>_<SETTING>", rest)
	if err != nil {
		return err
	}
	field := "watchers." + name
	set, ok := watcherKeys[key]
	if !ok {
		return &Error{origin, field + "." + key, "is not a watcher setting (" + strings.Join(WatcherKeys(), ", ") + ")"}
	}
	w := c.Watchers[name]
	if err := set(&w, val); err != nil {
		return &Error{origin, field + "." + key, err.Error()}
	}
	c.Watchers[name] = w
	if _, seen := c.where[field]; !seen {
		c.where[field] = origin
	}
	c.where[field+"."+key] = origin
	return nil
}

// envImages reads TAGWATCH_IMAGES: references separated by commas or
// white space. It replaces the file's images: list.
func (c *Config) envImages(origin Origin, val string) {
	c.Images = nil
	for _, ref := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		c.where[fmt.Sprintf("images[%d]", len(c.Images))] = origin
		c.Images = append(c.Images, Image{Image: ref})
	}
}

// validateWatchers checks the schedules (standard 5-field cron) and the TLS
// file pairs, which the daemon would otherwise only reject when it runs.
func (c *Config) validateWatchers() []error {
	var errs []error
	checkCron := func(field, expr string) {
		if expr == "" {
			return
		}
		if _, err := cron.ParseStandard(expr); err != nil {
			errs = append(errs, &Error{c.whereOr(field, ""), field, fmt.Sprintf("%q is not a 5-field cron schedule: %v", expr, err)})
		}
	}
	names := make([]string, 0, len(c.Watchers))
	for n := range c.Watchers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, field := c.Watchers[n], "watchers."+n
		checkCron(field+".cron", w.Cron)
		errs = append(errs, c.checkWatcherKind(field, w)...)
		for i, ns := range w.Namespaces {
			if err := checkNamespace(ns); err != nil {
				sub := fmt.Sprintf("%s.namespaces[%d]", field, i)
				errs = append(errs, &Error{c.whereOr(sub, field+".namespaces"), sub, err.Error()})
			}
		}
		if (w.CertFile == "") != (w.KeyFile == "") {
			missing := "keyfile"
			if w.CertFile == "" {
				missing = "certfile"
			}
			errs = append(errs, &Error{c.whereOr(field+"."+missing, field), field + "." + missing,
				"must be defined with " + map[string]string{"keyfile": "certfile", "certfile": "keyfile"}[missing]})
		}
	}
	checkCron("cron", c.ImagesCron)
	return errs
}

// checkWatcherKind checks the kind, and that every setting given belongs
// to it: a kubeconfig on a docker watcher is a mistake, not a no-op.
func (c *Config) checkWatcherKind(field string, w Watcher) []error {
	kind := w.KindOf()
	allowed, ok := watcherKindKeys[kind]
	if !ok {
		return []error{&Error{c.whereOr(field+".kind", field), field + ".kind",
			fmt.Sprintf("%q is not a watcher kind (%s)", w.Kind, strings.Join(WatcherKinds(), ", "))}}
	}
	var errs []error
	for _, key := range WatcherKeys() {
		if key == "kind" || key == "cron" || slices.Contains(allowed, key) {
			continue
		}
		if _, set := c.where[field+"."+key]; !set {
			continue
		}
		var owners []string
		for _, k := range WatcherKinds() {
			if slices.Contains(watcherKindKeys[k], key) {
				owners = append(owners, k)
			}
		}
		errs = append(errs, &Error{c.where[field+"."+key], field + "." + key,
			fmt.Sprintf("is a setting of %s watchers, not of %s ones", strings.Join(owners, " and "), kind)})
	}
	return errs
}

// checkNamespace holds a namespace to what Kubernetes and containerd
// accept (a DNS label; containerd also takes dots), so a typo is caught at
// load rather than showing as an empty listing.
func checkNamespace(ns string) error {
	if ns == "" {
		return errors.New("an empty namespace")
	}
	if len(ns) > 63 {
		return fmt.Errorf("namespace %q is longer than 63 characters", ns)
	}
	for i, r := range ns {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '-' || r == '.') && i > 0 && i < len(ns)-1
		if !ok {
			return fmt.Errorf("namespace %q may hold only a-z, 0-9, - and . (not first or last)", ns)
		}
	}
	return nil
}

// whereOr is the origin of field, else of parent.
func (c *Config) whereOr(field, parent string) Origin {
	if o, ok := c.where[field]; ok {
		return o
	}
	return c.where[parent]
}
