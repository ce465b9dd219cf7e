package registries

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode"
)

// repositoriesVariable is the variable every kind takes to narrow an
// instance to some repositories of the hosts it serves: a second Docker Hub
// account for a private organisation, a GHCR token per owner.
var repositoriesVariable = Variable{
	Name: "repositories",
	Description: "Only these repositories of its hosts, as patterns separated by commas: acme/* (one level under acme), acme/** (any depth), acme/app. " +
		"Among the instances that serve an image, the longest matching pattern wins",
	Default: "every repository of its hosts",
}

// concurrencyVariable is the variable every kind takes to pin how many
// requests an instance keeps in flight.
var concurrencyVariable = Variable{
	Name: "concurrency",
	Description: "Requests in flight on this registry at most. auto follows the registry: more while its answers come as fast, " +
		"fewer at once on 429, 503, timeouts or connection errors, up to a ceiling of the kind's (the README's registry reference lists them); a number pins it",
	Supported: "auto, 1 to " + strconv.Itoa(MaxConcurrency),
	Default:   "auto",
}

// withShared appends the variables every kind takes to a kind's own.
func withShared(vars ...Variable) []Variable {
	return append(vars, proxyVariable, repositoriesVariable, concurrencyVariable)
}

// Repositories are the repository patterns an instance serves, parsed. A
// pattern is a repository path as the registry knows it (Docker Hub's
// official images are library/nginx), matched segment by segment with
// path.Match: * and ? never cross a /, [a-z] is a class; a segment that is
// ** matches any number of segments, none included. No patterns at all
// means every repository.
type Repositories []string

// ParseRepositories reads the comma-separated form of the variable; blanks
// around and between commas are ignored. Every bad pattern is reported.
func ParseRepositories(s string) (Repositories, error) {
	var out Repositories
	var errs []error
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := checkPattern(p); err != nil {
			errs = append(errs, fmt.Errorf("%q %w", p, err))
			continue
		}
		out = append(out, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// checkPattern refuses what could never match a repository path, so that
// a typo is an error at load rather than an instance that silently serves
// nothing.
func checkPattern(p string) error {
	switch {
	case strings.IndexFunc(p, unicode.IsSpace) >= 0:
		return errors.New("holds a space; separate patterns with commas")
	case strings.ContainsAny(p, `\`):
		return errors.New(`holds a \; repository paths have no escapes`)
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return errors.New("must be a repository path such as acme/* (no leading, trailing or doubled /)")
	case strings.ContainsRune(p, ':') || strings.ContainsRune(p, '@'):
		return errors.New("names a tag or digest; patterns are on the repository path only (acme/app, not acme/app:1)")
	case p != strings.ToLower(p):
		return errors.New("has capitals; repository paths are lower-case")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg != "**" && strings.Contains(seg, "**") {
			return fmt.Errorf("uses ** inside %q; ** stands for whole segments: acme/**", seg)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("is not a valid pattern: %v", err)
		}
	}
	return nil
}

// Match reports whether repo is one of the patterns' repositories, and the
// length of the longest pattern that matches: resolution prefers the
// instance with the longest. Without patterns every repository matches,
// with length 0, so any matching pattern wins over none.
func (r Repositories) Match(repo string) (length int, ok bool) { return r.compile().match(repo) }

// patterns are Repositories split into segments once, for the matching
// every image of every cycle does.
type patterns struct {
	all   bool       // no patterns: every repository
	texts []string   // as written, for their lengths
	segs  [][]string // each split at /
}

func (r Repositories) compile() patterns {
	p := patterns{all: len(r) == 0, texts: r}
	for _, t := range r {
		p.segs = append(p.segs, strings.Split(t, "/"))
	}
	return p
}

func (p patterns) match(repo string) (length int, ok bool) {
	if p.all {
		return 0, true
	}
	if repo == "" {
		return 0, false // a registry-wide lookup: only an instance for every repository
	}
	name := strings.Split(repo, "/")
	length = -1
	for i, segs := range p.segs {
		if len(p.texts[i]) > length && matchSegments(segs, name) {
			length = len(p.texts[i])
		}
	}
	return length, length >= 0
}

// String is the patterns as the variable writes them.
func (r Repositories) String() string { return strings.Join(r, ", ") }

// matchSegments matches a pattern's segments against a path's, ** standing
// for any number of them.
func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := range len(name) + 1 {
				if matchSegments(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
