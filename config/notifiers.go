package config

import (
	"errors"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tagwatch/tagwatch/notify"
)

// parseNotifiers reads `notifiers:` (name → settings) keeping the line of
// every setting; the settings are validated by notify.Parse in validate,
// after the environment had its say.
func (c *Config) parseNotifiers(path string, n *yaml.Node) []error {
	at := func(node *yaml.Node) Origin { return Origin{File: path, Line: node.Line} }
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil
		}
		return []error{&Error{at(n), "notifiers", "must be a map of notifier name → settings"}}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		nameKey, vars := n.Content[i], n.Content[i+1]
		field := "notifiers." + nameKey.Value
		if err := checkName(nameKey.Value); err != nil {
			errs = append(errs, &Error{at(nameKey), field, strings.Replace(err.Error(), "instance name", "notifier name", 1)})
			continue
		}
		c.where[field] = at(nameKey)
		vals := c.notifierValues(nameKey.Value)
		switch {
		case vars.Kind == yaml.MappingNode:
			errs = append(errs, c.readScalars(path, field, vars, vals)...)
		case vars.Tag == "!!null":
		default:
			errs = append(errs, &Error{at(vars), field, "must be a map of settings (url, type, threshold, …)"})
		}
	}
	return errs
}

// notifierValues returns the settings map of a notifier, making it.
func (c *Config) notifierValues(name string) map[string]string {
	if c.notifiers == nil {
		c.notifiers = map[string]map[string]string{}
	}
	vals, ok := c.notifiers[name]
	if !ok {
		vals = map[string]string{}
		c.notifiers[name] = vals
	}
	return vals
}

// envNotifier reads TAGWATCH_NOTIFIER_<NAME>_<KEY>. Keys hold no
// underscore, so the name is whatever lies before the last one.
func (c *Config) envNotifier(origin Origin, rest, val string) error {
	name, key, err := envNameKey(origin, "notifiers", "notifier", "TAGWATCH_NOTIFIER_<NAME>_<SETTING>", rest)
	if err != nil {
		return err
	}
	field := "notifiers." + name
	c.notifierValues(name)[key] = val
	if _, seen := c.where[field]; !seen {
		c.where[field] = origin
	}
	c.where[field+"."+key] = origin
	return nil
}

// validateNotifiers parses every notifier and places each bad setting at
// its line (or its environment variable).
func (c *Config) validateNotifiers() []error {
	if c.notifiers == nil {
		return nil
	}
	// The settings hold the urls' secrets: once parsed, only the Specs
	// (which never print them) are kept.
	defer func() { c.notifiers = nil }()
	names := make([]string, 0, len(c.notifiers))
	for name := range c.notifiers {
		names = append(names, name)
	}
	sort.Strings(names)
	c.Notifiers = nil
	var errs []error
	for _, name := range names {
		field := "notifiers." + name
		spec, err := notify.Parse(name, c.notifiers[name])
		if err == nil {
			c.Notifiers = append(c.Notifiers, spec)
			continue
		}
		var fes notify.FieldErrors
		if !errors.As(err, &fes) {
			errs = append(errs, &Error{c.where[field], field, err.Error()})
			continue
		}
		for _, fe := range fes {
			f := field
			o := c.where[field]
			if fe.Key != "" {
				f += "." + fe.Key
				if ko, ok := c.where[f]; ok {
					o = ko
				}
			}
			errs = append(errs, &Error{o, f, fe.Msg})
		}
	}
	return errs
}
