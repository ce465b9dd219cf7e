package notify

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/tagwatch/tagwatch/store"
)

// Where a notifier was configured (Spec.Source).
const (
	SourceFile = "" // the config file or the environment
	SourceUI   = "ui"
)

// Types of notifier: how its url is spoken to.
const (
	// TypeShoutrrr sends through the shoutrrr library: ntfy://, gotify://,
	// discord://, slack://, telegram://, pushover://, matrix://, smtp://, …
	// It is the type of every url that is not http(s).
	TypeShoutrrr = "shoutrrr"
	// TypeWebhook POSTs tagwatch's JSON payload (see Payload) to an http(s) url.
	TypeWebhook = "webhook"
	// TypeApprise POSTs {"title","body","type"} to an Apprise API /notify url.
	TypeApprise = "apprise"
)

// Keys are the settings a notifier takes.
var Keys = []string{"url", "type", "threshold", "images", "digest", "batch", "title", "body"}

// Thresholds, from the most to the least significant update. A notifier
// announces the updates at or above its threshold: "minor" announces major
// and minor updates. "build" and "prerelease" rank alike, below "patch".
// Digest updates (same tag, new image) rank last: only "digest" and "all"
// announce them, unless the notifier's digest setting says otherwise.
// "all" also announces kinds this version does not know.
var Thresholds = []string{"major", "minor", "patch", "build", "prerelease", "digest", "all"}

var ranks = map[string]int{"major": 5, "minor": 4, "patch": 3, "build": 2, "prerelease": 2, "digest": 1, "all": 0}

// FieldError is one bad setting of a notifier.
type FieldError struct {
	Key string // url, threshold, …; "" for the notifier as a whole
	Msg string
}

func (e FieldError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// FieldErrors are every bad setting of a notifier, so that the config
// loader can point at the line of each.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Spec is one notifier, validated. It is made by Parse and run by New.
type Spec struct {
	Name      string
	Type      string // TypeShoutrrr, TypeWebhook or TypeApprise
	Threshold string // one of Thresholds
	// Digest overrides whether digest updates are announced: nil follows the
	// threshold (only "digest" and "all" announce them).
	Digest *bool
	// Batch sends one message per cycle listing all of its updates, instead
	// of one message per update.
	Batch bool
	// Source says where the notifier was configured: SourceFile (the
	// config file or the environment, the zero value) or SourceUI.
	Source string

	values map[string]string // as given to Parse; holds the url: never print it
	rank   int
	images *regexp.Regexp // nil: every image
	title  *template.Template
	body   *template.Template
	url    *url.URL // holds secrets: never log it, use Redacted
	redact redactor
}

// String names the notifier and its redacted url.
func (s *Spec) String() string { return s.Name + " (" + s.redact.url + ")" }

// GoString keeps %#v from printing the url and its secrets.
func (s *Spec) GoString() string { return "notify.Spec(" + s.String() + ")" }

// Redacted is the url with its secrets (userinfo, tokens in the path or the
// query) replaced by ***: safe for logs and the UI.
func (s *Spec) Redacted() string { return s.redact.url }

// Images is the image filter as written; "" when every image is announced.
func (s *Spec) Images() string {
	if s.images == nil {
		return ""
	}
	return s.images.String()
}

// Parse validates one notifier's settings (key → value as written) and
// returns it ready for New, or FieldErrors naming every bad key. Error
// messages never include the url's secrets. Nothing goes on the wire.
func Parse(name string, values map[string]string) (*Spec, error) {
	var errs FieldErrors
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	known := map[string]bool{}
	for _, k := range Keys {
		known[k] = true
	}
	var unknown []string
	for k := range values {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		bad(k, "unknown setting (want one of %s)", strings.Join(Keys, ", "))
	}

	s := &Spec{Name: name, Threshold: "all", values: maps.Clone(values)}
	if name == "" {
		bad("", "notifier name is empty")
	}

	raw := strings.TrimSpace(values["url"])
	typ := strings.ToLower(strings.TrimSpace(values["type"]))
	if raw == "" {
		bad("url", "is required")
	} else if u, msg := parseURL(raw); msg != "" {
		bad("url", "%s", msg)
	} else {
		s.url = u
		s.redact = newRedactor(u)
		scheme := strings.ToLower(u.Scheme)
		web := scheme == "http" || scheme == "https"
		switch typ {
		case "":
			if web {
				bad("type", "an http(s) url needs type: webhook (tagwatch's JSON payload) or type: apprise (an Apprise API /notify url)")
			} else {
				typ = TypeShoutrrr
			}
		case TypeWebhook, TypeApprise:
			if !web {
				bad("url", "type %s needs an http:// or https:// url, not %s://", typ, scheme)
			} else if u.Host == "" {
				bad("url", "has no host")
			}
		case TypeShoutrrr:
			if web {
				bad("type", "shoutrrr has no http(s) service: use type: webhook or apprise, or a generic+https:// url")
			}
		default:
			bad("type", "unknown type %q (want webhook, apprise or shoutrrr; empty picks by url)", typ)
		}
		if typ == TypeShoutrrr && len(errs) == 0 {
			// Build the service once now so that a bad url fails at load
			// time; services that would go on the wire to start are only
			// checked for their shape.
			if _, err := newShoutrrr(u, nil); err != nil {
				bad("url", "%s", s.redact.scrub(err.Error()))
			}
		}
		s.Type = typ
	}

	if v := strings.ToLower(strings.TrimSpace(values["threshold"])); v != "" {
		if _, ok := ranks[v]; !ok {
			bad("threshold", "unknown threshold %q (want %s)", v, strings.Join(Thresholds, ", "))
		} else {
			s.Threshold = v
		}
	}
	s.rank = ranks[s.Threshold]
	if v := strings.TrimSpace(values["digest"]); v != "" {
		b, err := parseBool(v)
		if err != nil {
			bad("digest", "%v", err)
		} else {
			s.Digest = &b
		}
	}
	if v := strings.TrimSpace(values["batch"]); v != "" {
		b, err := parseBool(v)
		if err != nil {
			bad("batch", "%v", err)
		} else {
			s.Batch = b
		}
	}
	if v := values["images"]; v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			bad("images", "bad regular expression: %v", err)
		} else {
			s.images = re
		}
	}
	var err error
	if s.title, err = parseTemplate("title", values["title"], s.defaultTitle()); err != nil {
		bad("title", "%v", err)
	}
	if s.body, err = parseTemplate("body", values["body"], s.defaultBody()); err != nil {
		bad("body", "%v", err)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// same reports whether t has s's name, source and settings: Apply keeps
// the running notifier of an unchanged spec.
func (s *Spec) same(t *Spec) bool {
	return s == t || (s.Name == t.Name && s.Source == t.Source && maps.Equal(s.values, t.values))
}

func (s *Spec) defaultTitle() string {
	if s.Batch {
		return DefaultBatchTitle
	}
	return DefaultTitle
}

func (s *Spec) defaultBody() string {
	if s.Batch {
		return DefaultBatchBody
	}
	return DefaultBody
}

// parseURL parses a notifier url without echoing it: Go's url errors quote
// the whole url, secrets included.
func parseURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, "is not a valid url: " + scrubURLError(ue.Err.Error())
		}
		return nil, "is not a valid url"
	}
	if u.Scheme == "" {
		return nil, "has no scheme (ntfy://…, smtp://…, https://…)"
	}
	if u.Opaque != "" {
		return nil, "must be scheme://…"
	}
	return u, ""
}

// scrubURLError keeps the kind of a url parse error and drops the quoted
// piece of the url it may carry.
func scrubURLError(msg string) string {
	if i := strings.Index(msg, "\""); i >= 0 {
		return strings.TrimSpace(strings.TrimSuffix(msg[:i], " "))
	}
	return msg
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, not %q", v)
}

// Wants reports whether the notifier announces an update: its kind against
// the threshold and digest setting, its reference against the images filter.
func (s *Spec) Wants(e store.HistoryEntry) bool {
	switch e.Update {
	case "", "none", "unknown":
		return false
	}
	if s.images != nil && !s.images.MatchString(e.Reference) {
		return false
	}
	if e.Update == "digest" && s.Digest != nil {
		return *s.Digest
	}
	r, known := ranks[e.Update]
	if !known || e.Update == "all" {
		return s.rank == 0
	}
	return r >= s.rank
}

// Key is what marks an update as announced: the reference with the latest
// tag and digest. The same update found again (another platform of the same
// image, or history repeating) has the same key and is not announced again.
func Key(e store.HistoryEntry) string {
	return e.Reference + " " + e.ToTag + " " + e.ToDigest
}
