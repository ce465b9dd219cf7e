package registries

import (
	"encoding/base64"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// staticKeychain hands the same credentials to every repository: what a
// docker login does.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// anonymous is the keychain of an instance without credentials.
var anonymous authn.Keychain = staticKeychain{authn.Anonymous}

// basic returns login/password credentials, or anonymous when none are set.
// go-containerregistry sends them as the registry's challenge asks: as Basic
// auth, or to the token server of a Bearer challenge.
func basic(user, password string) authn.Keychain {
	if user == "" && password == "" {
		return anonymous
	}
	return staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: password})}
}

// loginOrAuth reads the login/password pair, or the base64 "login:password"
// auth string the way .docker/config.json holds it.
func loginOrAuth(v Values) (authn.Keychain, error) {
	if !v.Has("auth") {
		return basic(v["login"], v["password"]), nil
	}
	user, pass, err := decodeAuth(v["auth"])
	if err != nil {
		return nil, &FieldError{Variable: "auth", Message: err.Error()}
	}
	return basic(user, pass), nil
}

type authError string

func (e authError) Error() string { return string(e) }

func decodeAuth(s string) (user, password string, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		raw, err = base64.URLEncoding.DecodeString(strings.TrimSpace(s))
	}
	if err != nil {
		return "", "", authError("must be base64 of login:password (as in .docker/config.json)")
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", authError("must decode to login:password; the decoded value has no colon or no login")
	}
	return user, password, nil
}

// urlVariables are the variables every kind with a url takes besides it.
// All three decide who receives the credentials: the url names the host,
// and cafile and insecure decide which certificate may answer for it (a
// CA of the attacker's, or none checked at all, hands the password to
// whoever sits in between).
func urlVariables(urlDescription string) []Variable {
	return []Variable{
		{Name: "url", Required: true, Endpoint: true, Description: urlDescription},
		{Name: "cafile", Endpoint: true, Description: "PEM file of the CA that signed the registry's HTTPS certificate (a private CA)"},
		{Name: "insecure", Endpoint: true, Description: "Skip HTTPS certificate verification (logged as a warning)", Supported: "true, false", Default: "false"},
	}
}

// servesURL reports whether host is the host of the instance's url, port included.
func servesURL(v Values, host string) bool {
	u, err := parseURL(v["url"])
	return err == nil && u != nil && strings.EqualFold(u.Host, host)
}

// hostIs reports whether host is one of names, ignoring case.
func hostIs(host string, names ...string) bool {
	for _, n := range names {
		if strings.EqualFold(host, n) {
			return true
		}
	}
	return false
}

// loginPair declares an optional login and its secret, each needing the
// other (see together): what most kinds ask for.
func loginPair(login, password string) []Variable {
	return []Variable{
		{Name: "login", Description: login, Default: "password must be defined"},
		{Name: "password", Secret: true, Description: password, Default: "login must be defined"},
	}
}

// publicSpec declares a kind that is one public registry on a fixed host,
// present anonymously by default: an instance only chooses a proxy.
func publicSpec(kind, title, host, description string) Spec {
	return Spec{Kind: kind, Title: title, Description: description, Variables: withShared(), Default: true, Host: host}
}

// together is the rules of variables that only make sense as a set (a login
// and its password): each needs every other.
func together(names ...string) []Rule {
	rules := make([]Rule, len(names))
	for i, n := range names {
		var others []string
		for _, o := range names {
			if o != n {
				others = append(others, o)
			}
		}
		rules[i] = Rule{If: n, Needs: others}
	}
	return rules
}

// regional reports whether host matches re, a pattern of a cloud's registry
// hosts with a group named "region", and, unless spellings is empty or
// starts with "" (no region configured), whether that group is one of the
// configured region's spellings (OCIR writes fra and eu-frankfurt-1).
func regional(re *regexp.Regexp, host string, spellings ...string) bool {
	m := re.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return false
	}
	if len(spellings) == 0 || spellings[0] == "" {
		return true
	}
	got := m[re.SubexpIndex("region")]
	for _, r := range spellings {
		if strings.EqualFold(got, r) {
			return true
		}
	}
	return false
}
