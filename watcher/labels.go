package watcher

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tagwatch/tagwatch/registries"
)

// Container labels: the config file's per-image option names under
// "tagwatch." (ARCHITECTURE.md, "Configuration shape").
const (
	LabelEnable       = "tagwatch.enable"
	LabelInclude      = "tagwatch.tag.include"
	LabelExclude      = "tagwatch.tag.exclude"
	LabelTransform    = "tagwatch.tag.transform"
	LabelPolicy       = "tagwatch.tag.policy"
	LabelDigest       = "tagwatch.watch.digest"
	LabelDisplayName  = "tagwatch.display.name"
	LabelLinkTemplate = "tagwatch.link.template"
	LabelRegistry     = "tagwatch.registry"

	labelPrefix = "tagwatch."
)

// optionLabels are the labels ParseTagOptions reads, in its argument order.
var optionLabels = [...]string{LabelInclude, LabelExclude, LabelTransform, LabelDigest, LabelPolicy}

// knownLabels is every label tagwatch reads.
var knownLabels = map[string]bool{
	LabelEnable: true, LabelInclude: true, LabelExclude: true, LabelTransform: true,
	LabelPolicy: true, LabelDigest: true, LabelDisplayName: true, LabelLinkTemplate: true,
	LabelRegistry: true,
}

// labelSettings are a watched container's tagwatch labels, parsed.
type labelSettings struct {
	Options      TagOptions
	DisplayName  string
	LinkTemplate string
}

// labelEnabled says whether a container is watched: its tagwatch.enable
// label, or byDefault when it has none.
func labelEnabled(labels map[string]string, byDefault bool) (bool, error) {
	v, ok := labels[LabelEnable]
	if !ok {
		return byDefault, nil
	}
	on, err := parseBool(v)
	if err != nil {
		return false, fmt.Errorf("label %s: %w", LabelEnable, err)
	}
	return on, nil
}

// parseLabels reads a watched container's labels. It reports every bad
// label at once, each by name, and also any other tagwatch.* label: a
// misspelt option would otherwise be ignored without a word, and the
// container checked with options its admin did not mean.
func parseLabels(labels map[string]string) (labelSettings, error) {
	var errs []error
	var unknown []string
	for k := range labels {
		if strings.HasPrefix(k, labelPrefix) && !knownLabels[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("unknown label %s", k))
	}

	var args [len(optionLabels)]string
	for i, l := range optionLabels {
		args[i] = labels[l]
	}
	opts, err := ParseTagOptions(args[0], args[1], args[2], args[3], args[4])
	if err != nil {
		// ParseTagOptions names options, not labels: parse the labels one
		// at a time to tell the admin which label to fix.
		n := len(errs)
		for i, l := range optionLabels {
			var one [len(optionLabels)]string
			one[i] = args[i]
			if _, err := ParseTagOptions(one[0], one[1], one[2], one[3], one[4]); err != nil {
				errs = append(errs, fmt.Errorf("label %s=%q: %w", l, args[i], err))
			}
		}
		if len(errs) == n { // wrong only together: report it as ParseTagOptions says
			errs = append(errs, fmt.Errorf("labels: %w", err))
		}
	}

	if reg := labels[LabelRegistry]; reg != "" {
		if _, _, err := registries.ParseID(reg); err != nil {
			errs = append(errs, fmt.Errorf("label %s: %w", LabelRegistry, err))
		}
		opts.Registry = reg
	}

	link := labels[LabelLinkTemplate]
	if link != "" {
		if err := ParseLinkTemplate(link); err != nil {
			errs = append(errs, fmt.Errorf("label %s=%q: %w", LabelLinkTemplate, link, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return labelSettings{}, err
	}
	return labelSettings{Options: opts, DisplayName: labels[LabelDisplayName], LinkTemplate: link}, nil
}
