// Package config reads tagwatch's configuration: one YAML file, then the
// TAGWATCH_* environment on top of it. Every error names where the value came
// from (file and line, or the environment variable) and the field.
package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// Config is the whole configuration, validated.
type Config struct {
	Registries []registries.Config
	Watchers   map[string]Watcher
	Images     []Image
	// ImagesCron schedules the checks of the images: list (default every 6 hours).
	ImagesCron string
	Web        Web
	// Platform is the platform images are resolved to when the engine does
	// not say (os/arch[/variant]).
	Platform string
	// Notifiers are the `notifiers:` entries, validated, sorted by name.
	Notifiers []*notify.Spec
	// History bounds the history kept in the data file; Notify tunes the
	// delivery of notifications.
	History History
	Notify  Notify
	// Limits bound registry requests, image checks and cycles.
	Limits Limits

	// scalars are the history and notify settings as read (file, then
	// environment), by field path; validate parses them.
	scalars map[string]string

	// notifiers are their settings as read (file, then environment), by name.
	notifiers map[string]map[string]string

	// where remembers the origin of each field path, to place errors found
	// after loading (e.g. when opening a registry).
	where map[string]Origin
}

// Watcher is one place containers run: a Docker engine (the default kind;
// with its Swarm services when it is a manager), a Podman service, a
// Kubernetes cluster or a containerd. Each kind takes some of the settings
// (WatcherKinds); another kind's setting is an error.
type Watcher struct {
	Kind           string `yaml:"kind"` // docker (default), podman, kubernetes, containerd
	Host           string `yaml:"host"` // unix:///var/run/docker.sock, tcp://nas.lan:2376; empty: DOCKER_HOST or the local socket
	CAFile         string `yaml:"cafile"`
	CertFile       string `yaml:"certfile"`
	KeyFile        string `yaml:"keyfile"`
	Cron           string `yaml:"cron"`
	WatchByDefault *bool  `yaml:"watchbydefault"` // watch containers without a tagwatch.enable label (default true)
	WatchStopped   bool   `yaml:"watchstopped"`
	// Swarm lists a docker watcher's Swarm services: nil means when the
	// engine says it is a Swarm manager, false never, true always (an
	// engine that is no manager is then an error).
	Swarm *bool `yaml:"swarm"`

	// Kubeconfig is a kubernetes watcher's kubeconfig file; empty: the
	// in-cluster config (the pod's ServiceAccount).
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig's context to use; empty: its current-context.
	Context string `yaml:"context"`
	// Namespaces limits a kubernetes or containerd watcher to these
	// namespaces; empty: all of them.
	Namespaces []string `yaml:"namespaces"`
	// Address is a containerd watcher's socket: unix:///run/containerd/containerd.sock
	// (the default), or a path.
	Address string `yaml:"address"`
}

// Image is one entry of the static `images:` list.
type Image struct {
	Image   string       `yaml:"image"`
	Tag     TagSettings  `yaml:"tag"`
	Watch   WatchSetting `yaml:"watch"`
	Display struct {
		Name string `yaml:"name"`
	} `yaml:"display"`
	Link struct {
		Template string `yaml:"template"`
	} `yaml:"link"`
	Platform string `yaml:"platform"`
	// Registry names the registry instance that reads the image, kind.name
	// (hub.work); empty: the one that serves its host and repository.
	Registry string `yaml:"registry"`

	// Options are the parsed tag options.
	Options watcher.TagOptions `yaml:"-"`
}

// TagSettings are the tag options as written (also the container labels
// tagwatch.tag.include, …).
type TagSettings struct {
	Include   string `yaml:"include"`
	Exclude   string `yaml:"exclude"`
	Transform string `yaml:"transform"`
	Policy    string `yaml:"policy"`
}

// WatchSetting is `watch: {digest: true}`.
type WatchSetting struct {
	Digest string `yaml:"digest"`
}

// Web configures the HTTP server.
type Web struct {
	Listen string  `yaml:"listen"`
	Auth   WebAuth `yaml:"auth"`
	// AllowRemote lets the server listen beyond loopback without auth. Off by
	// default: registry credentials are managed through this server.
	AllowRemote bool `yaml:"allowremote"`
	// Hosts are the host names the server answers to besides loopback and
	// the listen address (a reverse proxy's public name): a request whose
	// Host header names anything else is refused, which defeats DNS rebinding.
	Hosts []string `yaml:"hosts"`
	// AllowLinkLocal lets the connection tests of the UI and API (registries,
	// notifiers) reach link-local and cloud metadata addresses. Off by default:
	// a test must not become a way to read the metadata service.
	AllowLinkLocal bool `yaml:"allowlinklocal"`
}

// WebAuth protects the UI and API. Password is a bcrypt hash
// (tagwatch config hash-password); Token is a bearer token for the API, at
// least MinTokenLength characters.
type WebAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
}

// Enabled reports whether any authentication is configured.
func (a WebAuth) Enabled() bool { return a.Username != "" || a.Token != "" }

// Origin is where a value came from.
type Origin struct {
	File string
	Line int
	Env  string
}

func (o Origin) String() string {
	if o.Env != "" {
		return "environment " + o.Env
	}
	if o.File == "" {
		return "defaults"
	}
	return fmt.Sprintf("%s:%d", o.File, o.Line)
}

// Error is one bad value: where it is, which field, what is wrong.
type Error struct {
	Origin Origin
	Field  string // registries.custom.shpcr.password
	Msg    string
}

// Error never quotes a URL's userinfo: a url: ftp://user:PW@h written by
// mistake must not have its password printed by `config validate`.
func (e *Error) Error() string {
	msg := registries.RedactUserinfo(e.Msg)
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Origin, msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Origin, e.Field, msg)
}

// Default is the configuration with nothing configured.
func Default() *Config {
	return &Config{Watchers: map[string]Watcher{}, Platform: "linux/amd64", Web: Web{Listen: "127.0.0.1:8080"},
		History: DefaultHistory, Notify: DefaultNotify, Limits: DefaultLimits(), where: map[string]Origin{}}
}

// Load reads path (may be "" for none) and then the environment, and
// validates the result against the registry catalog.
func Load(path string, environ []string, cat registries.Catalog) (*Config, error) {
	c, err := LoadAll(path, environ, cat)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAll is Load for config validate: along with every error it returns
// what could be read, the registries and images with errors left out, so
// that the checks made after loading (opening registries, the listen
// address) can run and report theirs in the same run.
func LoadAll(path string, environ []string, cat registries.Catalog) (*Config, error) {
	c := Default()
	var parseErr error
	if path != "" {
		if data, err := os.ReadFile(path); err != nil {
			parseErr = fmt.Errorf("config: %w", err)
		} else {
			parseErr = c.parse(path, data, cat)
		}
	}
	// Report every problem at once, from the file and the environment alike.
	return c, errors.Join(parseErr, c.applyEnv(ReadEnv(environ), cat), c.validate(cat))
}

// file is the YAML document. Registries and notifiers are walked by hand,
// keeping the line of every variable; the rest is read by decode.
type file struct {
	Registries yaml.Node          `yaml:"registries"`
	Watchers   map[string]Watcher `yaml:"watchers"`
	Images     []Image            `yaml:"images"`
	Cron       string             `yaml:"cron"`
	Notifiers  yaml.Node          `yaml:"notifiers"`
	Web        Web                `yaml:"web"`
	Platform   string             `yaml:"platform"`
	History    historyFile        `yaml:"history"`
	Notify     notifyFile         `yaml:"notify"`
	Limits     limitsFile         `yaml:"limits"`
}

func (c *Config) parse(path string, data []byte, cat registries.Catalog) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return syntaxError(path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file is a valid, empty configuration
	}
	var f file
	errs := c.decode(path, "", doc.Content[0], reflect.ValueOf(&f).Elem())
	if f.Registries.Kind != 0 {
		errs = append(errs, c.parseRegistries(path, &f.Registries, cat)...)
	}
	if f.Notifiers.Kind != 0 {
		errs = append(errs, c.parseNotifiers(path, &f.Notifiers)...)
	}
	maps.Copy(c.Watchers, f.Watchers)
	c.Images = append(c.Images, f.Images...)
	c.parseSections(f.History, f.Notify)
	errs = append(errs, c.parseLimits(f.Limits)...)
	if f.Web.Listen == "" {
		f.Web.Listen = c.Web.Listen
	}
	c.Web = f.Web
	c.ImagesCron = f.Cron
	if f.Platform != "" {
		c.Platform = f.Platform
	}
	return errors.Join(errs...)
}

func (c *Config) parseRegistries(path string, n *yaml.Node, cat registries.Catalog) []error {
	at := func(node *yaml.Node) Origin { return Origin{File: path, Line: node.Line} }
	if n.Kind != yaml.MappingNode {
		return []error{&Error{at(n), "registries", "must be a map of kind → name → variables"}}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		kindKey, names := n.Content[i], n.Content[i+1]
		kind := kindKey.Value
		if _, err := cat.Provider(kind); err != nil {
			errs = append(errs, &Error{at(kindKey), "registries." + kind, err.Error()})
			continue
		}
		if names.Kind != yaml.MappingNode {
			errs = append(errs, &Error{at(names), "registries." + kind, "must be a map of instance name → variables"})
			continue
		}
		for j := 0; j+1 < len(names.Content); j += 2 {
			nameKey, vars := names.Content[j], names.Content[j+1]
			field := "registries." + kind + "." + nameKey.Value
			if err := checkName(nameKey.Value); err != nil {
				errs = append(errs, &Error{at(nameKey), field, err.Error()})
				continue
			}
			vals := registries.Values{}
			c.where[field] = at(nameKey)
			if vars.Kind == yaml.MappingNode {
				errs = append(errs, c.readScalars(path, field, vars, vals)...)
			} else if vars.Tag != "!!null" {
				errs = append(errs, &Error{at(vars), field, "must be a map of variables"})
				continue
			}
			c.setRegistry(registries.Config{Kind: kind, Name: nameKey.Value, Source: registries.SourceFile, Values: vals})
		}
	}
	return errs
}

// readScalars copies a map of single values into vals, remembering the line
// of each key for later errors.
func (c *Config) readScalars(path, field string, n *yaml.Node, vals map[string]string) []error {
	var errs []error
	for k := 0; k+1 < len(n.Content); k += 2 {
		key, val := n.Content[k], n.Content[k+1]
		if val.Kind != yaml.ScalarNode {
			errs = append(errs, &Error{Origin{File: path, Line: val.Line}, field + "." + key.Value, "must be a single value"})
			continue
		}
		vals[key.Value] = val.Value
		c.where[field+"."+key.Value] = Origin{File: path, Line: key.Line}
	}
	return errs
}

// CheckName keeps registry, watcher and notifier names to what fits a URL
// path and an environment variable (registries.CheckName, the one rule).
// The UI applies the same rule.
func CheckName(name string) error { return registries.CheckName(name) }

func checkName(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("instance name %q %v", name, err)
	}
	return nil
}

func (c *Config) setRegistry(rc registries.Config) {
	for i, have := range c.Registries {
		if have.ID() == rc.ID() {
			for k, v := range rc.Values {
				c.Registries[i].Values[k] = v
			}
			return
		}
	}
	c.Registries = append(c.Registries, rc)
}

// validate checks every registry instance against its kind and every image's
// options, and reports all problems with their origins.
func (c *Config) validate(cat registries.Catalog) error {
	var errs []error
	sort.Slice(c.Registries, func(i, j int) bool { return c.Registries[i].ID() < c.Registries[j].ID() })
	valid := c.Registries[:0]
	for _, rc := range c.Registries {
		p, _ := cat.Provider(rc.Kind)
		vals, err := p.Spec().Validate(rc.ID(), rc.Values)
		if err != nil {
			errs = append(errs, c.placeRegistryErr(rc, err)...)
			continue
		}
		rc.Values = vals
		valid = append(valid, rc)
	}
	c.Registries = valid
	images := c.Images[:0]
	for i, img := range c.Images {
		if imgErrs := c.validateImage(i, &img, cat); len(imgErrs) > 0 {
			errs = append(errs, imgErrs...)
			continue
		}
		images = append(images, img)
	}
	c.Images = images
	if _, err := v1.ParsePlatform(c.Platform); err != nil {
		errs = append(errs, &Error{c.where["platform"], "platform", err.Error()})
	}
	errs = append(errs, c.validateWatchers()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateNotifiers()...)
	errs = append(errs, c.validateWeb()...)
	errs = append(errs, c.validateSections()...)
	return errors.Join(errs...)
}

// tagOptionKeys are where each option ParseTagOptions names is written.
var tagOptionKeys = map[string]string{"include": "tag.include", "exclude": "tag.exclude", "transform": "tag.transform",
	"policy": "tag.policy", "digest": "watch.digest"}

// validateImage checks the i-th entry of images: and parses its options,
// reporting every bad option at the line it is written on.
func (c *Config) validateImage(i int, img *Image, cat registries.Catalog) []error {
	field := fmt.Sprintf("images[%d]", i)
	if img.Image == "" {
		return []error{&Error{c.where[field], field + ".image", "is required"}}
	}
	ref, err := registries.ParseImage(img.Image)
	if err != nil {
		return []error{&Error{c.whereOr(field+".image", field), field + ".image", err.Error()}}
	}
	named := field + " (" + img.Image + ")"
	var errs []error
	opts, err := watcher.ParseTagOptions(img.Tag.Include, img.Tag.Exclude, img.Tag.Transform, img.Watch.Digest, img.Tag.Policy)
	for _, e := range leaves(err) {
		option, _, _ := strings.Cut(e.Error(), ":")
		errs = append(errs, &Error{c.whereOr(field+"."+tagOptionKeys[option], field), named, e.Error()})
	}
	img.Options = opts
	if img.Link.Template != "" {
		if err := watcher.ParseLinkTemplate(img.Link.Template); err != nil {
			errs = append(errs, &Error{c.whereOr(field+".link.template", field), named, err.Error()})
		}
	}
	if img.Platform != "" {
		if _, err := v1.ParsePlatform(img.Platform); err != nil {
			errs = append(errs, &Error{c.whereOr(field+".platform", field), field + ".platform", err.Error()})
		}
	}
	if img.Registry != "" {
		// An instance the config does not define may be saved in the UI:
		// serve checks those against the running set (CheckImageRegistries).
		if _, err := cat.CheckNamed(c.Registries, img.Registry, ref); err != nil {
			errs = append(errs, &Error{c.whereOr(field+".registry", field), field + ".registry", err.Error()})
		}
		img.Options.Registry = img.Registry
	}
	return errs
}

// CheckImageRegistries checks the images that name their registry
// instance against the running set, which holds the instances saved in the
// UI as well as the config's: each one that does not exist, or does not
// serve its image, is an error placed at its line.
func (c *Config) CheckImageRegistries(set *registries.Set) error {
	var errs []error
	for i, img := range c.Images {
		if img.Registry == "" {
			continue
		}
		ref, err := registries.ParseImage(img.Image)
		if err != nil {
			continue // reported by Load
		}
		if _, err := set.Pick(ref, img.Registry); err != nil {
			field := fmt.Sprintf("images[%d]", i)
			errs = append(errs, &Error{c.whereOr(field+".registry", field), field + ".registry", err.Error()})
		}
	}
	return errors.Join(errs...)
}

// leaves flattens joined errors (errors.Join) into the errors they hold.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// Errors flattens what Load reports into one error per problem, placed
// ones (*Error) sorted as a reader of the file meets them: by file and line,
// then the environment by variable. Unplaced errors come first.
func Errors(err error) []error {
	list := leaves(err)
	sort.SliceStable(list, func(i, j int) bool {
		a, aok := list[i].(*Error)
		b, bok := list[j].(*Error)
		switch {
		case !aok || !bok:
			return !aok && bok
		case (a.Origin.Env != "") != (b.Origin.Env != ""):
			return a.Origin.Env == ""
		case a.Origin.File != b.Origin.File:
			return a.Origin.File < b.Origin.File
		case a.Origin.Line != b.Origin.Line:
			return a.Origin.Line < b.Origin.Line
		}
		return a.Origin.Env < b.Origin.Env
	})
	return list
}

// placeRegistryErr turns a registry validation error into errors that point
// at the line of the variable (or of the instance when the variable is missing).
func (c *Config) placeRegistryErr(rc registries.Config, err error) []error {
	field := "registries." + rc.Kind + "." + rc.Name
	var ve registries.ValidationError
	if !errors.As(err, &ve) {
		return []error{&Error{c.where[field], field, err.Error()}}
	}
	var out []error
	for _, fe := range ve {
		o, ok := c.where[field+"."+strings.Split(fe.Variable, "/")[0]]
		if !ok {
			o = c.where[field]
		}
		out = append(out, &Error{o, field + "." + fe.Variable, fe.Message})
	}
	return out
}

// Where returns the origin of a field path, for errors found after loading.
func (c *Config) Where(field string) Origin { return c.where[field] }
