package notify

import (
	"net/url"
	"sort"
	"strings"
)

// redactor knows the secrets of one notifier url: it prints the url without
// them and scrubs them out of error messages (libraries quote request urls,
// tokens included, in their errors).
type redactor struct {
	url     string   // the url with its secrets replaced by ***
	secrets []string // longest first
}

const masked = "***"

// newRedactor shows a notifier url as its scheme and host and the
// service's non-secret settings, and finds every piece that may be a secret
// to scrub it from error messages:
//   - the userinfo (user:password@, or token@ for discord://, telegram://)
//     shows as ***@;
//   - the host shows, unless the service keeps a key there (discord://,
//     pushover://, ifttt://, …) or it looks like a token;
//   - the path shows as /*** whatever it holds: webhook ids, topics, app
//     tokens and API keys all live there (https://ha.lan/api/webhook/ID,
//     generic+https://host/api/KEY, gotify://host/TOKEN);
//   - each query value shows as *** unless its key is a known non-secret
//     setting (from, to, chats, priority, …), however short it is.
func newRedactor(u *url.URL) redactor {
	var r redactor
	add := func(s string) {
		if len(s) < 3 {
			return
		}
		r.secrets = append(r.secrets, s)
		if e := url.PathEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
		if e := url.QueryEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
	}
	scheme := strings.ToLower(u.Scheme)
	service, _, _ := strings.Cut(scheme, "+")

	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if u.User != nil {
		add(u.User.Username())
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
		b.WriteString(masked + "@")
	}
	host := u.Host
	if h := u.Hostname(); h != "" && (hostIsKey[service] || (!strings.Contains(h, ".") && !strings.Contains(h, ":") && h != "localhost" && tokenLike(h))) {
		add(h)
		host = strings.Replace(host, h, masked, 1)
	}
	b.WriteString(host)

	if p := u.EscapedPath(); p != "" && p != "/" {
		for _, seg := range strings.Split(p, "/") {
			if plain, err := url.PathUnescape(seg); err == nil {
				add(plain)
			}
			add(seg)
		}
		b.WriteString("/" + masked)
	} else {
		b.WriteString(p)
	}

	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, v, _ := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				key = k
			}
			if v == "" || safeKeys[strings.ToLower(key)] {
				continue
			}
			if plain, err := url.QueryUnescape(v); err == nil {
				add(plain)
			}
			add(v)
			parts[i] = k + "=" + masked
		}
		b.WriteString("?" + strings.Join(parts, "&"))
	}
	r.url = b.String()
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// hostIsKey are the shoutrrr services whose url host is an id or a key,
// not a server: discord://token@WEBHOOKID, pushover://…@USERKEY,
// ifttt://KEY, notifiarr://APIKEY, pushbullet://TOKEN, slack://…@TOKEN-A,
// teams://…@TENANT, wecom://KEY.
var hostIsKey = map[string]bool{
	"discord": true, "pushover": true, "ifttt": true, "notifiarr": true, "pushbullet": true,
	"slack": true, "teams": true, "wecom": true, "join": true,
}

// safeKeys are query settings of shoutrrr's services (and of tagwatch's
// own urls) that hold no secret: they are shown. Every other value is
// masked, however short.
var safeKeys = map[string]bool{
	"from": true, "to": true, "fromname": true, "subject": true, "usetls": true, "usestarttls": true, "encryption": true,
	"chats": true, "channel": true, "rooms": true, "devices": true, "priority": true, "disabletls": true, "scheme": true,
	"title": true, "color": true, "botname": true, "template": true, "method": true, "contenttype": true,
	"splitlines": true, "parsemode": true, "preview": true, "notification": true, "tags": true, "icon": true,
	"events": true, "stream": true, "topic": true, "format": true, "level": true, "sound": true,
}

// scrub replaces every secret of the url in s.
func (r redactor) scrub(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, masked)
	}
	return s
}

// tokenLike says whether a path segment or host looks like a generated
// token rather than a word a person chose: 24 characters and more, or 16 and
// more that mix letters and digits.
func tokenLike(s string) bool {
	if len(s) >= 24 {
		return true
	}
	if len(s) < 16 {
		return false
	}
	var letter, digit bool
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		}
	}
	return letter && digit
}

// RedactURL returns a notifier url with its secrets replaced by ***, for
// logs and the UI; an unparsable url is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return newRedactor(u).url
}
