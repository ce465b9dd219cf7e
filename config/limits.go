package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/watcher"
)

// Limits is the `limits:` section: how long a registry may take and how
// much it may send before tagwatch gives up on it. The defaults suit
// registries on the internet; a test or a LAN may want them shorter.
type Limits struct {
	Request  time.Duration `yaml:"request"`  // one registry request, body included
	Image    time.Duration `yaml:"image"`    // one image's check, all its requests and waits
	Cycle    time.Duration `yaml:"cycle"`    // one whole cycle (and `tagwatch check`)
	TagPages int           `yaml:"tagpages"` // pages of one tag list
	TagList  int64         `yaml:"taglist"`  // bytes of one tag list, all pages
}

// DefaultLimits are the limits with nothing configured.
func DefaultLimits() Limits {
	return Limits{
		Request:  registries.DefaultRequestTimeout,
		Image:    watcher.DefaultImageTimeout,
		Cycle:    watcher.DefaultCycleTimeout,
		TagPages: registries.DefaultTagPages,
		TagList:  registries.DefaultTagListBytes,
	}
}

// Registries is the part of the limits the registry transport enforces.
func (l Limits) Registries() registries.Limits {
	return registries.Limits{Request: l.Request, TagPages: l.TagPages, TagListBytes: l.TagList}
}

// limitKeys set a limit by its YAML name, which is also the <SETTING> of
// TAGWATCH_LIMITS_<SETTING>. A test keeps it in step with Limits' fields.
var limitKeys = map[string]func(l *Limits, v string) error{
	"request":  func(l *Limits, v string) (err error) { l.Request, err = parseDuration(v); return },
	"image":    func(l *Limits, v string) (err error) { l.Image, err = parseDuration(v); return },
	"cycle":    func(l *Limits, v string) (err error) { l.Cycle, err = parseDuration(v); return },
	"tagpages": func(l *Limits, v string) (err error) { l.TagPages, err = parseCount(v); return },
	"taglist":  func(l *Limits, v string) (err error) { l.TagList, err = parseSize(v); return },
}

// LimitKeys lists the settings of limits:, sorted.
func LimitKeys() []string {
	keys := make([]string, 0, len(limitKeys))
	for k := range limitKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// setLimit applies one setting from the file or the environment.
func (c *Config) setLimit(origin Origin, key, val string) error {
	field := "limits." + key
	set, ok := limitKeys[key]
	if !ok {
		return &Error{origin, field, "is not a limits setting (" + strings.Join(LimitKeys(), ", ") + ")"}
	}
	// A value that does not parse leaves the limit as it was: validateLimits
	// must not then report a 0s deadline nobody wrote.
	l := c.Limits
	if err := set(&l, strings.TrimSpace(val)); err != nil {
		return &Error{origin, field, err.Error()}
	}
	c.Limits = l
	c.where[field] = origin
	return nil
}

// limitsFile is the limits: section as written. decode reads it (an unknown
// key or a map where a value goes is reported there, with its line); the
// values are parsed by setLimit, which the environment's TAGWATCH_LIMITS_*
// go through too.
type limitsFile struct {
	Request  string `yaml:"request"`
	Image    string `yaml:"image"`
	Cycle    string `yaml:"cycle"`
	TagPages string `yaml:"tagpages"`
	TagList  string `yaml:"taglist"`
}

// parseLimits applies the file's limits: settings; decode has noted the
// line of each key.
func (c *Config) parseLimits(f limitsFile) []error {
	var errs []error
	for _, kv := range []struct{ key, val string }{
		{"request", f.Request}, {"image", f.Image}, {"cycle", f.Cycle}, {"tagpages", f.TagPages}, {"taglist", f.TagList},
	} {
		if kv.val == "" {
			continue
		}
		if err := c.setLimit(c.where["limits."+kv.key], kv.key, kv.val); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// validateLimits checks that the deadlines nest: a request fits in an
// image's check, an image's check in a cycle.
func (c *Config) validateLimits() []error {
	l := c.Limits
	var errs []error
	if l.Image < l.Request {
		errs = append(errs, &Error{c.whereOr("limits.image", "limits.request"), "limits.image",
			fmt.Sprintf("%s is shorter than limits.request (%s): an image's check is one or more requests", registries.Duration(l.Image), registries.Duration(l.Request))})
	}
	if l.Cycle < l.Image {
		errs = append(errs, &Error{c.whereOr("limits.cycle", "limits.image"), "limits.cycle",
			fmt.Sprintf("%s is shorter than limits.image (%s): a cycle checks one or more images", registries.Duration(l.Cycle), registries.Duration(l.Image))})
	}
	return errs
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 2m or 1h30m", v)
	}
	return d, nil
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a whole number of 1 or more", v)
	}
	return n, nil
}

// parseSize reads 16MiB, 512 KiB, 1GiB or a plain number of bytes. Decimal
// units (MB) are refused rather than guessed at.
func parseSize(v string) (int64, error) {
	num := strings.TrimSpace(v)
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, unit = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/unit {
		return 0, errors.New(strconv.Quote(v) + " is not a size such as 16MiB, 512KiB or 1GiB")
	}
	return n * unit, nil
}
