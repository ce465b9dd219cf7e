package watcher

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// TagOptions are the per-image options (config file `images:` entries and
// Docker labels tagwatch.tag.include etc.). The zero value means defaults.
type TagOptions struct {
	Include   *regexp.Regexp // only tags matching are candidates (nil: all)
	Exclude   *regexp.Regexp // tags matching are never candidates
	Transform *Transform     // maps odd tags onto a version before parsing
	Digest    *bool          // nil: default (see Decision.WatchDigest); explicit true/false overrides
	// Policy caps the kind of update offered: "" (no cap) or
	// UpdateMajor|UpdateMinor|UpdatePatch. Patch allows patch, build and
	// prerelease moves of the same major.minor; minor stays on the same major.
	Policy UpdateKind
	// Registry names the registry instance that reads the image, kind.name
	// (registry: in images:, the tagwatch.registry label); "" lets the
	// registry set pick it (registries.Set.Resolve).
	Registry string
}

// Transform is "REGEX => REPLACEMENT" (Go regexp, $1 style), e.g.
// `^(\d+\.\d+\.\d+)-(\d+)-.*$ => $1.$2`. It is immutable once parsed and safe
// for concurrent use.
type Transform struct {
	pattern     *regexp.Regexp
	replacement string
}

const transformArrow = "=>"

// ParseTransform parses "REGEX => REPLACEMENT". The replacement uses
// regexp.Expand syntax: $1, ${1}, ${name}; write ${1}_ rather than $1_.
func ParseTransform(s string) (*Transform, error) {
	pattern, replacement, found := strings.Cut(s, transformArrow)
	if !found {
		return nil, fmt.Errorf("want %q, got %q", "REGEX "+transformArrow+" REPLACEMENT", s)
	}
	pattern, replacement = strings.TrimSpace(pattern), strings.TrimSpace(replacement)
	if pattern == "" {
		return nil, errors.New("missing regex before " + transformArrow)
	}
	if replacement == "" {
		return nil, errors.New("missing replacement after " + transformArrow)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return &Transform{pattern: re, replacement: replacement}, nil
}

// Apply rewrites tag as regexp.ReplaceAllString does; when the regex does not
// match, or t is nil, it returns tag unchanged.
func (t *Transform) Apply(tag string) string {
	if t == nil {
		return tag
	}
	return t.pattern.ReplaceAllString(tag, t.replacement)
}

// String returns the transform in the form ParseTransform reads.
func (t *Transform) String() string {
	if t == nil {
		return ""
	}
	return t.pattern.String() + " " + transformArrow + " " + t.replacement
}

// ParseTagOptions builds options from their text form. Errors name the
// option ("include", "exclude", "transform", "digest", "policy") and say what
// is wrong. Empty strings mean "not set".
func ParseTagOptions(include, exclude, transform, digest, policy string) (TagOptions, error) {
	var opt TagOptions
	var errs []error
	var err error
	if include != "" {
		if opt.Include, err = regexp.Compile(include); err != nil {
			errs = append(errs, fmt.Errorf("include: %w", err))
		}
	}
	if exclude != "" {
		if opt.Exclude, err = regexp.Compile(exclude); err != nil {
			errs = append(errs, fmt.Errorf("exclude: %w", err))
		}
	}
	if transform != "" {
		if opt.Transform, err = ParseTransform(transform); err != nil {
			errs = append(errs, fmt.Errorf("transform: %w", err))
		}
	}
	if digest != "" {
		watch, err := parseBool(digest)
		if err != nil {
			errs = append(errs, fmt.Errorf("digest: %w", err))
		} else {
			opt.Digest = &watch
		}
	}
	if policy != "" {
		if opt.Policy, err = parsePolicy(policy); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		}
	}
	// Report every bad option at once: an admin fixing labels one
	// container restart at a time would otherwise see them one by one.
	if err := errors.Join(errs...); err != nil {
		return TagOptions{}, err
	}
	return opt, nil
}

// parseBool accepts what people write in labels and YAML besides Go's forms.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("want true or false, got %q", s)
	}
	return b, nil
}

func parsePolicy(s string) (UpdateKind, error) {
	switch kind := UpdateKind(strings.ToLower(strings.TrimSpace(s))); kind {
	case UpdateMajor, UpdateMinor, UpdatePatch:
		return kind, nil
	}
	return "", fmt.Errorf("want major, minor or patch, got %q", s)
}
