package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// History bounds the history of updates kept in the data file; it is
// applied after each check cycle. Zero means no bound.
type History struct {
	Keep   int           // the newest entries kept
	MaxAge time.Duration // entries detected longer ago are removed
}

// Notify tunes the delivery of notifications.
type Notify struct {
	// RetryFor is how long a message that cannot be delivered is retried
	// before it is given up on (it stays, failed, for Retry now).
	RetryFor time.Duration
}

// Defaults of the history and notify sections.
var (
	DefaultHistory = History{Keep: 10000, MaxAge: 365 * 24 * time.Hour}
	DefaultNotify  = Notify{RetryFor: 24 * time.Hour}
)

// historyFile and notifyFile are the sections as written; values are
// parsed in validate, after the environment had its say, so that file and
// environment share one parser and one set of messages.
type historyFile struct {
	Keep   string `yaml:"keep"`
	MaxAge string `yaml:"maxage"`
}

type notifyFile struct {
	RetryFor string `yaml:"retryfor"`
}

// setScalar records a value of a history or notify setting (by field
// path) and where it came from.
func (c *Config) setScalar(field, value string, o Origin) {
	if c.scalars == nil {
		c.scalars = map[string]string{}
	}
	c.scalars[field] = value
	c.where[field] = o
}

// parseSections takes the history and notify sections of the file; decode
// has noted the line of each key.
func (c *Config) parseSections(h historyFile, n notifyFile) {
	for field, v := range map[string]string{"history.keep": h.Keep, "history.maxage": h.MaxAge, "notify.retryfor": n.RetryFor} {
		if v != "" {
			c.setScalar(field, v, c.where[field])
		}
	}
}

// validateSections parses the history and notify settings.
func (c *Config) validateSections() []error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, &Error{c.where[field], field, msg}) }
	if v, ok := c.scalars["history.keep"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			bad("history.keep", fmt.Sprintf("%q is not a number of entries (0: no limit)", v))
		} else {
			c.History.Keep = n
		}
	}
	for _, f := range []struct {
		field string
		dst   *time.Duration
		zero  string
	}{
		{"history.maxage", &c.History.MaxAge, "0: no limit"},
		{"notify.retryfor", &c.Notify.RetryFor, ""},
	} {
		v, ok := c.scalars[f.field]
		if !ok {
			continue
		}
		d, err := ParseDuration(v)
		switch {
		case err != nil && f.zero != "":
			bad(f.field, err.Error()+"; "+f.zero)
		case err != nil:
			bad(f.field, err.Error())
		case d == 0 && f.zero == "":
			bad(f.field, "must be more than 0")
		default:
			*f.dst = d
		}
	}
	return errs
}

// ParseDuration reads a Go duration ("36h", "90m") that may start with a
// number of days ("365d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration (365d, 36h, 1d12h, 90m)", s)
	if s == "0" {
		return 0, nil
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 100*365 {
			return 0, bad
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	if d+days < 0 {
		return 0, errors.New("duration too long")
	}
	return d + days, nil
}
