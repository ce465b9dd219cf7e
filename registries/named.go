package registries

import (
	"errors"
	"fmt"
	"strings"
)

// ParseID splits an instance's name as admins write it, "hub.work", into
// its kind and name. It checks the form only: whether such an instance
// exists is the Set's (or the config's) to say.
func ParseID(id string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(id, ".")
	if !ok || kind == "" || name == "" {
		return "", "", fmt.Errorf("%q is not a registry instance: write kind.name, e.g. hub.work", id)
	}
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "", "", fmt.Errorf("%q is not a registry instance: its kind %q may hold only a-z and 0-9", id, kind)
		}
	}
	if err := CheckName(name); err != nil {
		return "", "", fmt.Errorf("%q is not a registry instance: its name %q %w", id, name, err)
	}
	return kind, name, nil
}

// CheckName keeps instance names (of registries, and of watchers and
// notifiers, which config holds to the same rule) to what fits a URL path
// and an environment variable: 1 to 63 of a-z, 0-9, - and _. It lives here
// because ParseID needs it and registries imports no config.
func CheckName(name string) error {
	if name == "" {
		return errors.New("is required")
	}
	if len(name) > 63 {
		return errors.New("must be at most 63 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return errors.New("may hold only a-z, 0-9, - and _")
		}
	}
	return nil
}

// NamedError is an image that names the instance to read it with (hub.work)
// when that instance does not exist, does not serve the image's host, or
// is limited to repositories the image is not one of.
type NamedError struct {
	Image    Image
	Instance string // kind.name, as named
	Missing  bool   // no such instance
	// OtherHost is set when the instance does not serve the image's host;
	// Serves is then the host it does serve, when it has one.
	OtherHost bool
	Serves    string
	// Repositories are the instance's patterns, none of which matches.
	Repositories Repositories
}

func (e *NamedError) Error() string {
	img := e.Image.Given
	if img == "" {
		img = e.Image.String()
	}
	switch {
	case e.Missing:
		return fmt.Sprintf("%s names the registry %s, which does not exist. Add it (Settings → Registries, or the config file) or name another.", img, e.Instance)
	case e.OtherHost:
		also := ""
		if e.Serves != "" {
			also = " (it serves " + e.Serves + ")"
		}
		return fmt.Sprintf("%s names the registry %s, which does not serve %s%s. Name an instance of %s, or none.", img, e.Instance, e.Image.Host, also, e.Image.Host)
	}
	return fmt.Sprintf("%s names the registry %s, which serves only %s on %s. Add %s to its repositories, or name another instance.",
		img, e.Instance, e.Repositories, e.Image.Host, e.Image.Repository)
}

// namedServes says why an instance (named id) cannot serve img: nil when it can.
func namedServes(id string, p Provider, v Values, repos Repositories, img Image) error {
	if !p.Serves(v, img.Host) {
		show, _ := hostsOf(p, v)
		return &NamedError{Image: img, Instance: id, OtherHost: true, Serves: show}
	}
	if _, ok := repos.Match(img.Repository); !ok {
		return &NamedError{Image: img, Instance: id, Repositories: repos}
	}
	return nil
}

// CheckNamed checks an image that names its instance against the
// instances known before the daemon starts: configs (validated, from the
// config file and the environment) and the catalog's defaults. It returns a
// *NamedError when that instance cannot serve the image, and found false
// when none of them has that name: only the running Set knows the
// instances saved in the UI.
func (c Catalog) CheckNamed(configs []Config, named string, img Image) (found bool, err error) {
	kind, name, err := ParseID(named)
	if err != nil {
		return false, err
	}
	p, ok := c[kind]
	if !ok {
		return false, fmt.Errorf("%s names the registry %s, but there is no registry kind %s (known: %s)", img.Given, named, kind, strings.Join(c.Kinds(), ", "))
	}
	cfg, ok := Config{}, false
	for _, d := range Defaults(c) {
		if d.Kind == kind && d.Name == name {
			cfg, ok = d, true
		}
	}
	for _, k := range configs {
		if k.Kind == kind && k.Name == name {
			cfg, ok = k, true
		}
	}
	if !ok {
		return false, nil
	}
	// Configs whose repositories are not valid were left out (and reported)
	// by the caller's validation.
	repos, _ := ParseRepositories(cfg.Values["repositories"])
	return true, namedServes(named, p, cfg.Values, repos, img)
}
