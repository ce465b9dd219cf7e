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

// newRedactor finds a url's secrets:
//   - the userinfo (user:password@, or token@ for discord://, telegram://);
//   - query values whose key speaks of a token, key, secret, password,
//     auth or signature;
//   - path segments that look like tokens (long, or mixing letters and
//     digits at 16 characters and more), and the last path segment of a
//     gotify:// url (its app token) and of an ntfy:// url (the topic, which
//     is all it takes to read or post on a public server);
//   - a host that looks like a token (pushover://…@userkey).
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

	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
			if tokenLike(u.User.Username()) {
				add(u.User.Username())
			}
		} else {
			add(u.User.Username())
		}
		b.WriteString(masked + "@")
	}
	host := u.Host
	if h := u.Hostname(); !strings.Contains(h, ".") && !strings.Contains(h, ":") && h != "localhost" && tokenLike(h) {
		add(h)
		host = strings.Replace(host, h, masked, 1)
	}
	b.WriteString(host)

	segs := strings.Split(u.EscapedPath(), "/")
	last := len(segs) - 1
	for last > 0 && segs[last] == "" {
		last--
	}
	for i, seg := range segs {
		if seg == "" {
			continue
		}
		plain, err := url.PathUnescape(seg)
		if err != nil {
			plain = seg
		}
		if tokenLike(plain) || (i == last && (scheme == "gotify" || scheme == "ntfy")) {
			add(plain)
			add(seg)
			segs[i] = masked
		}
	}
	b.WriteString(strings.Join(segs, "/"))

	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, v, _ := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				key = k
			}
			if secretKey(key) && v != "" {
				if plain, err := url.QueryUnescape(v); err == nil {
					add(plain)
				}
				add(v)
				parts[i] = k + "=" + masked
			}
		}
		b.WriteString("?" + strings.Join(parts, "&"))
	}
	r.url = b.String()
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// scrub replaces every secret of the url in s.
func (r redactor) scrub(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, masked)
	}
	return s
}

// secretKey says whether a query parameter holds a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"token", "key", "secret", "pass", "auth", "sig", "credential", "code"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
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
