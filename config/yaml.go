package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tagwatch/tagwatch/registries"
)

// nodeType is a field kept as YAML (registries:, notifiers:), walked by hand.
var nodeType = reflect.TypeFor[yaml.Node]()

// decode fills v from n as yaml.v3 with KnownFields would, but goes on after
// a bad value: every unknown key and every value of the wrong type is
// reported with its line and field path, and the rest is still read. It
// remembers the line of each field it reads for errors found later.
func (c *Config) decode(path, field string, n *yaml.Node, v reflect.Value) []error {
	at := Origin{File: path, Line: n.Line}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // key: with nothing after it: the defaults
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return c.decode(path, field, n, v.Elem())
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{&Error{at, field, "must be a map of settings (" + strings.Join(yamlKeys(v.Type()), ", ") + ")"}}
		}
		errs := c.merges(path, field, n, v)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			if isMerge(key) {
				continue
			}
			sub := join(field, key.Value)
			f, ok := fieldByKey(v, key.Value)
			if !ok {
				what := "a setting here"
				if field == "" {
					what = "a tagwatch setting"
				}
				errs = append(errs, &Error{Origin{File: path, Line: key.Line}, sub,
					"is not " + what + " (known: " + strings.Join(yamlKeys(v.Type()), ", ") + ")"})
				continue
			}
			c.where[sub] = Origin{File: path, Line: key.Line}
			errs = append(errs, c.decode(path, sub, val, f)...)
		}
		return errs
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return []error{&Error{at, field, "must be a map of names to settings"}}
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		errs := c.merges(path, field, n, v)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			if isMerge(key) {
				continue
			}
			sub := join(field, key.Value)
			c.where[sub] = Origin{File: path, Line: key.Line}
			elem := reflect.New(v.Type().Elem()).Elem()
			errs = append(errs, c.decode(path, sub, val, elem)...)
			v.SetMapIndex(reflect.ValueOf(key.Value), elem)
		}
		return errs
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []error{&Error{at, field, "must be a list (one entry a line, starting with -)"}}
		}
		var errs []error
		for i, item := range n.Content {
			sub := fmt.Sprintf("%s[%d]", field, i)
			c.where[sub] = Origin{File: path, Line: item.Line}
			elem := reflect.New(v.Type().Elem()).Elem()
			errs = append(errs, c.decode(path, sub, item, elem)...)
			v.Set(reflect.Append(v, elem))
		}
		return errs
	}
	if n.Kind != yaml.ScalarNode {
		return []error{&Error{at, field, "must be a single value"}}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		if v.Kind() == reflect.Bool {
			return []error{&Error{at, field, "must be true or false"}}
		}
		return []error{&Error{at, field, fmt.Sprintf("%q is not a %s", n.Value, v.Kind())}}
	}
	return nil
}

// merges applies a mapping's merge keys (<<: *anchor, or a list of them)
// first, so that its own keys win, as YAML has it: watchers sharing TLS
// settings through an anchor.
func (c *Config) merges(path, field string, n *yaml.Node, v reflect.Value) []error {
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		if key, val := n.Content[i], n.Content[i+1]; isMerge(key) {
			from := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				from = val.Content
			}
			for _, m := range from {
				errs = append(errs, c.decode(path, field, m, v)...)
			}
		}
	}
	return errs
}

func isMerge(key *yaml.Node) bool { return key.Kind == yaml.ScalarNode && key.Tag == "!!merge" }

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// yamlName is a struct field's YAML key, "" for fields YAML does not see.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if yamlName(v.Type().Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// yamlKeys lists the keys a struct takes, sorted, for "known: …".
func yamlKeys(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if name := yamlName(f); name != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// yamlLine finds the line in yaml.v3's syntax errors ("yaml: line 3: …").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError places a YAML syntax error at its line of the file.
func syntaxError(path string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Origin: Origin{File: path, Line: line}, Msg: "not valid YAML: " + m[2]}
	}
	// yaml quotes the value it could not read: never a URL's password.
	return fmt.Errorf("%s: %s", path, registries.RedactUserinfo(err.Error()))
}
