package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
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
}

// Watcher kinds. Docker is the default, so configurations written before
// kinds existed keep working.
const (
	KindDocker     = "docker"
	KindKubernetes = "kubernetes"
	KindContainerd = "containerd"
)

// watcherKinds lists the settings each kind takes, besides kind and cron
// (every kind's). One line per kind.
var watcherKinds = map[string][]string{
	KindDocker:     {"host", "cafile", "certfile", "keyfile", "watchbydefault", "watchstopped"},
	KindKubernetes: {"kubeconfig", "context", "namespaces", "watchbydefault"},
	KindContainerd: {"address", "namespaces", "watchbydefault", "watchstopped"},
}

// WatcherKinds lists the kinds of watcher, sorted.
func WatcherKinds() []string {
	kinds := make([]string, 0, len(watcherKinds))
	for k := range watcherKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// KindOf is the watcher's kind, with the default filled in.
func (w Watcher) KindOf() string {
	if w.Kind == "" {
		return KindDocker
	}
	return w.Kind
}

// setKeys lists the settings w sets (by YAML name), sorted.
func (w Watcher) setKeys() []string {
	v := reflect.ValueOf(w)
	var keys []string
	for _, f := range reflect.VisibleFields(v.Type()) {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || name == "kind" || name == "cron" {
			continue
		}
		if !v.FieldByIndex(f.Index).IsZero() {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
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

// placeWatchers remembers the lines of the watchers' settings, of the
// top-level cron and of web.listen, for the errors found after parsing.
func (c *Config) placeWatchers(path string, doc *yaml.Node) {
	if n := keyNode(doc, "cron"); n != nil {
		c.where["cron"] = Origin{File: path, Line: n.Line}
	}
	if web := keyNode(doc, "web"); web != nil {
		if n := keyNode(web, "listen"); n != nil {
			c.where["web.listen"] = Origin{File: path, Line: n.Line}
		}
	}
	n := keyNode(doc, "watchers")
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		field := "watchers." + n.Content[i].Value
		c.where[field] = Origin{File: path, Line: n.Content[i].Line}
		if vars := n.Content[i+1]; vars.Kind == yaml.MappingNode {
			for k := 0; k+1 < len(vars.Content); k += 2 {
				c.where[field+"."+vars.Content[k].Value] = Origin{File: path, Line: vars.Content[k].Line}
			}
		}
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
		allowed, ok := watcherKinds[w.KindOf()]
		if !ok {
			errs = append(errs, &Error{c.whereOr(field+".kind", field), field + ".kind",
				fmt.Sprintf("%q is not a kind of watcher (%s)", w.Kind, strings.Join(WatcherKinds(), ", "))})
			continue
		}
		for _, k := range w.setKeys() {
			if slices.Contains(allowed, k) {
				continue
			}
			var owners []string
			for _, kind := range WatcherKinds() {
				if slices.Contains(watcherKinds[kind], k) {
					owners = append(owners, kind)
				}
			}
			errs = append(errs, &Error{c.whereOr(field+"."+k, field), field + "." + k,
				fmt.Sprintf("%s is a setting of %s watchers, and this one is of kind %s", k, strings.Join(owners, " and "), w.KindOf())})
		}
		for i, ns := range w.Namespaces {
			if err := checkNamespace(ns); err != nil {
				errs = append(errs, &Error{c.whereOr(field+".namespaces", field), fmt.Sprintf("%s.namespaces[%d]", field, i), err.Error()})
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
