package registries

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Variable declares one setting of a registry kind, as the settings page lists it.
// The same declaration drives validation, the config file, the environment
// variables, the UI form and the generated reference in the README.
type Variable struct {
	Name        string
	Required    bool
	Secret      bool
	Description string
	Supported   string // the settings page's "Supported values" column
	Default     string // the settings page's "Default value when missing" column
	// AliasOf names the variable this one is a deprecated spelling of (Hub's token → password).
	AliasOf string
	// Endpoint marks a variable that says where the instance's secrets go:
	// a url, a token server, a tenant, the CA trusted to name the host. A
	// secret saved in the UI is only reused while every Endpoint variable
	// keeps its saved value (ChangedEndpoints); otherwise it must be given
	// again, so that a changed url never receives the old password. An
	// Endpoint variable is never Secret.
	Endpoint bool
}

// A Rule ties variables together, e.g. "password must be defined" when login is set.
type Rule struct {
	// When the variable If is set…
	If string
	// …every variable in Needs must be set too,
	Needs []string
	// …and none in Excludes may be.
	Excludes []string
}

// Spec is everything a kind declares about itself.
type Spec struct {
	Kind        string // "hub"
	Title       string // "Docker Hub"
	Description string
	Variables   []Variable
	Rules       []Rule
	// Default marks the kinds present with anonymous access when nothing is configured.
	Default bool
	// Example is a worked configuration for the README and `config example`.
	Example Values
	// Host is the host a kind without a url serves (ghcr.io): what its tile
	// shows and what a connection test without an image reaches. Kinds
	// whose hosts follow from their variables implement Hoster instead.
	Host string
	// URLPath lets the url end in the path the registry API is served under
	// (JFrog's /artifactory/api/docker/<repository>, Nexus's
	// /repository/<repository>): every /v2/ request to the url's host then
	// goes under that path. Other kinds ignore a path in their url.
	URLPath bool
	// CredentialHint names the credentials the service expects ("ICR
	// expects the login iamapikey…"); it is added to the error when the
	// registry refuses an instance of the kind.
	CredentialHint string
	// Narrowing names the variables that, set, narrow an instance to part
	// of its kind's hosts (a region): such an instance wins a host over
	// one of the same kind without them.
	Narrowing []string
	// Concurrency is the most requests tagwatch lets an instance of the
	// kind grow to keep in flight (0: DefaultConcurrency): lower for a
	// public service that counts requests, higher for a self-hosted one.
	// The concurrency variable pins another.
	Concurrency int
}

// Ceiling is Concurrency, or DefaultConcurrency when the kind declares none.
func (s Spec) Ceiling() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	return DefaultConcurrency
}

// Variable returns the declaration of the named variable.
func (s Spec) Variable(name string) (Variable, bool) {
	for _, v := range s.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// ChangedEndpoints returns the Endpoint variables whose value differs
// between an instance's saved values and new ones, in declaration order:
// when it is not empty, the saved secrets must not be sent with the new
// values. Values are compared as the admin wrote them, trimmed; a boolean
// variable (insecure) compares by meaning, so unset and "false" are equal.
func (s Spec) ChangedEndpoints(saved, next Values) []string {
	var out []string
	for _, v := range s.Variables {
		if !v.Endpoint {
			continue
		}
		a, b := strings.TrimSpace(saved[v.Name]), strings.TrimSpace(next[v.Name])
		if v.Supported == "true, false" {
			if x, err := strconv.ParseBool(orFalse(a)); err == nil {
				if y, err := strconv.ParseBool(orFalse(b)); err == nil {
					a, b = strconv.FormatBool(x), strconv.FormatBool(y)
				}
			}
		}
		if a != b {
			out = append(out, v.Name)
		}
	}
	return out
}

func orFalse(s string) string {
	if s == "" {
		return "false"
	}
	return s
}

// Values are an instance's variables by name, as strings: the form the config
// file, the environment and the UI share.
type Values map[string]string

// Has reports whether the variable is set to a non-empty value.
func (v Values) Has(name string) bool { return strings.TrimSpace(v[name]) != "" }

// Bool reads a boolean variable; unset is false.
func (v Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v[name])
	return b
}

// FieldError says which rule one variable of one registry instance breaks.
type FieldError struct {
	Registry string // "custom.shpcr"
	Variable string // "password"
	Message  string // "must be defined when login is set"
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("registry %s: %s %s", e.Registry, e.Variable, e.Message)
}

// ValidationError lists every rule an instance's variables break, so a user
// fixes them all in one go rather than one per run.
type ValidationError []*FieldError

func (e ValidationError) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Validate checks values against the spec and returns them normalized:
// deprecated aliases folded into the variable they stand for, blanks dropped.
// id names the instance in errors ("hub.public").
func (s Spec) Validate(id string, in Values) (Values, error) {
	var errs ValidationError
	fail := func(name, format string, args ...any) {
		errs = append(errs, &FieldError{Registry: id, Variable: name, Message: fmt.Sprintf(format, args...)})
	}

	out := Values{}
	// written maps a variable to the name the admin used for it, so that an
	// error about password says "token" when token is what they wrote.
	written := map[string]string{}
	as := func(name string) string {
		if w, ok := written[name]; ok {
			return w
		}
		return name
	}
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		val := strings.TrimSpace(in[name])
		decl, ok := s.Variable(name)
		if !ok {
			fail(name, "is not a variable of %s registries (known: %s)", s.Kind, strings.Join(s.names(), ", "))
			continue
		}
		if val == "" {
			continue
		}
		if decl.AliasOf != "" {
			if in.Has(decl.AliasOf) && strings.TrimSpace(in[decl.AliasOf]) != val {
				fail(name, "is the deprecated name of %s; define only %s", decl.AliasOf, decl.AliasOf)
				continue
			}
			written[decl.AliasOf] = name
			name = decl.AliasOf
		}
		out[name] = val
	}

	for _, r := range s.Rules {
		if !out.Has(r.If) {
			continue
		}
		for _, n := range r.Needs {
			if !out.Has(n) {
				fail(n, "must be defined when %s is defined", as(r.If))
			}
		}
		var clash []string
		for _, n := range r.Excludes {
			if out.Has(n) {
				clash = append(clash, as(n))
			}
		}
		if len(clash) > 0 {
			fail(strings.Join(clash, "/"), "must not be defined when %s is defined", as(r.If))
		}
	}

	for _, decl := range s.Variables {
		if !decl.Required || out.Has(decl.Name) || s.waived(decl.Name, out) || errs.about(decl.Name) {
			continue
		}
		fail(decl.Name, "is required")
	}

	for _, name := range []string{"url", "authurl"} {
		if u := out[name]; u != "" {
			if pu, err := parseURL(u); err != nil {
				fail(name, "%v", err)
			} else if pu.User != nil {
				// It would be shown wherever the url is, and never be used.
				fail(name, "must not hold credentials; set them in their own variables")
			}
		}
	}
	if p := out["proxy"]; p != "" {
		if err := checkProxy(p); err != nil {
			fail("proxy", "%v", err)
		}
	}
	if r := out["repositories"]; r != "" {
		if _, err := ParseRepositories(r); err != nil {
			for _, e := range leafErrors(err) {
				fail("repositories", "%v", e)
			}
		}
	}
	if c, ok := out["concurrency"]; ok {
		if _, _, err := ParseConcurrency(c); err != nil {
			fail("concurrency", "%v", err)
		}
	}
	if v, ok := out["insecure"]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			fail("insecure", "must be true or false, not %q", v)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// about reports whether a variable already has an error: a password that
// "must be defined when login is defined" need not also be "required".
func (e ValidationError) about(name string) bool {
	for _, fe := range e {
		if fe.Variable == name {
			return true
		}
	}
	return false
}

// waived reports whether a required variable is excused because an
// alternative that excludes it is set (login is required, unless auth is given).
func (s Spec) waived(name string, v Values) bool {
	for _, r := range s.Rules {
		if !v.Has(r.If) {
			continue
		}
		for _, n := range r.Excludes {
			if n == name {
				return true
			}
		}
	}
	return false
}

func (s Spec) names() []string {
	out := make([]string, len(s.Variables))
	for i, v := range s.Variables {
		out[i] = v.Name
	}
	return out
}

// leafErrors flattens errors.Join's errors into the ones it holds.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
