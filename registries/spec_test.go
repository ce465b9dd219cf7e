package registries_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/registries"
)

// specCase is one row of the settings page: a kind's variables, and either
// the normalized values they validate to or every error they give.
type specCase struct {
	name string
	vals registries.Values
	// want, when not nil, is the validated values (aliases folded).
	want registries.Values
	// errs is every error expected, as FieldError.Error() renders it for the
	// instance <kind>.x; none means the values are valid.
	errs []string
}

// specCases are the settings page's tables, row by row, for every kind.
func specCases(t *testing.T) map[string][]specCase {
	_, keyPEM := rsaKeyPEM(t)
	ecKey := ecKeyPEM(t)
	auth := base64.StdEncoding.EncodeToString([]byte("johndoe:2c1bd872-efb6-4f3a-81aa-724518a0a592"))
	v := func(kv ...string) registries.Values {
		out := registries.Values{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	// forge is the table of gitea and forgejo, which share their registry.
	forge := func(kind string) []specCase {
		e := func(s string) string { return "registry " + kind + ".x: " + s }
		url := "https://" + kind + ".example.com"
		return []specCase{
			{name: "login and password", vals: v("url", url, "login", "admin", "password", "pw")},
			{name: "auth instead of login and password", vals: v("url", url, "auth", auth)},
			{name: "nothing", vals: v(), errs: []string{e("url is required"), e("login is required"), e("password is required")}},
			{name: "url only", vals: v("url", url), errs: []string{e("login is required"), e("password is required")}},
			{name: "login without password", vals: v("url", url, "login", "admin"), errs: []string{e("password must be defined when login is defined")}},
			{name: "password without login", vals: v("url", url, "password", "pw"), errs: []string{e("login must be defined when password is defined")}},
			{name: "auth with login and password", vals: v("url", url, "auth", auth, "login", "admin", "password", "pw"), errs: []string{e("login/password must not be defined when auth is defined")}},
			{name: "auth with login", vals: v("url", url, "auth", auth, "login", "admin"), errs: []string{
				e("password must be defined when login is defined"),
				e("login must not be defined when auth is defined"),
			}},
			{name: "no url", vals: v("login", "admin", "password", "pw"), errs: []string{e("url is required")}},
			{name: "token is not a variable", vals: v("url", url, "login", "admin", "token", "pw"), errs: []string{
				e("token is not a variable of " + kind + " registries (known: url, cafile, insecure, login, password, auth)"),
				e("password must be defined when login is defined"),
			}},
		}
	}
	e := func(kind, s string) string { return "registry " + kind + ".x: " + s }
	return map[string][]specCase{
		"acr": {
			{name: "service principal", vals: v("clientid", "id", "clientsecret", "s3cr3t-value")},
			{name: "service principal with tenant", vals: v("clientid", "id", "clientsecret", "s3cr3t-value", "tenantid", "66666666-7777-8888-9999-000000000000")},
			{name: "nothing", vals: v(), errs: []string{e("acr", "clientid is required"), e("acr", "clientsecret is required")}},
			{name: "no secret", vals: v("clientid", "id"), errs: []string{e("acr", "clientsecret is required")}},
			{name: "tenant alone", vals: v("tenantid", "t"), errs: []string{e("acr", "clientid is required"), e("acr", "clientsecret is required")}},
			{name: "blank is missing", vals: v("clientid", "  ", "clientsecret", "s3cr3t-value"), errs: []string{e("acr", "clientid is required")}},
			{name: "unknown variable", vals: v("clientid", "id", "clientsecret", "s3cr3t-value", "tenant", "t"), errs: []string{
				e("acr", "tenant is not a variable of acr registries (known: clientid, clientsecret, tenantid)"),
			}},
		},
		"custom": {
			{name: "anonymous", vals: v("url", "http://localhost:5000")},
			{name: "values are trimmed", vals: v("url", " https://shpcr.io ", "login", " me ", "password", "pw "), want: v("url", "https://shpcr.io", "login", "me", "password", "pw")},
			{name: "basic auth", vals: v("url", "https://shpcr.io", "login", "me", "password", "pw")},
			{name: "htpasswd string", vals: v("url", "https://shpcr.io", "auth", auth)},
			{name: "insecure true", vals: v("url", "https://shpcr.io", "insecure", "true")},
			{name: "insecure false", vals: v("url", "https://shpcr.io", "insecure", "false")},
			{name: "nothing", vals: v(), errs: []string{e("custom", "url is required")}},
			{name: "blank url", vals: v("url", "  "), errs: []string{e("custom", "url is required")}},
			{name: "login without password", vals: v("url", "https://shpcr.io", "login", "me"), errs: []string{e("custom", "password must be defined when login is defined")}},
			{name: "password without login", vals: v("url", "https://shpcr.io", "password", "pw"), errs: []string{e("custom", "login must be defined when password is defined")}},
			{name: "auth with login and password", vals: v("url", "https://shpcr.io", "auth", auth, "login", "me", "password", "pw"), errs: []string{e("custom", "login/password must not be defined when auth is defined")}},
			{name: "auth with password", vals: v("url", "https://shpcr.io", "auth", auth, "password", "pw"), errs: []string{
				e("custom", "login must be defined when password is defined"),
				e("custom", "password must not be defined when auth is defined"),
			}},
			{name: "ftp url", vals: v("url", "ftp://shpcr.io"), errs: []string{e("custom", `url must start with http:// or https://, not "ftp://shpcr.io"`)}},
			{name: "url without scheme", vals: v("url", "shpcr.io:5000"), errs: []string{e("custom", `url must start with http:// or https://, not "shpcr.io:5000"`)}},
			{name: "url without host", vals: v("url", "https://"), errs: []string{e("custom", `url has no host: "https://"`)}},
			{name: "url with credentials", vals: v("url", "https://me:hunter2@shpcr.io"), errs: []string{e("custom", "url must not hold credentials; set them in their own variables")}},
			{name: "insecure not a bool", vals: v("url", "https://shpcr.io", "insecure", "yes"), errs: []string{e("custom", `insecure must be true or false, not "yes"`)}},
			{name: "auth not base64", vals: v("url", "https://shpcr.io", "auth", "!!not base64!!"), errs: []string{e("custom", "auth must be base64 of login:password (as in .docker/config.json)")}},
			{name: "auth without colon", vals: v("url", "https://shpcr.io", "auth", base64.StdEncoding.EncodeToString([]byte("johndoe"))), errs: []string{
				e("custom", "auth must decode to login:password; the decoded value has no colon or no login"),
			}},
			{name: "unknown variable", vals: v("url", "https://shpcr.io", "username", "me"), errs: []string{
				e("custom", "username is not a variable of custom registries (known: url, cafile, insecure, login, password, auth)"),
			}},
		},
		"ecr": {
			{name: "keys", vals: v("region", "eu-west-1", "accesskey", "AKIAIOSFODNN7EXAMPLE", "secretaccesskey", "s")},
			{name: "nothing", vals: v(), errs: []string{e("ecr", "region is required"), e("ecr", "accesskey is required"), e("ecr", "secretaccesskey is required")}},
			{name: "region only", vals: v("region", "eu-west-1"), errs: []string{e("ecr", "accesskey is required"), e("ecr", "secretaccesskey is required")}},
			{name: "no region", vals: v("accesskey", "AKIAIOSFODNN7EXAMPLE", "secretaccesskey", "s"), errs: []string{e("ecr", "region is required")}},
			{name: "unknown variable", vals: v("region", "eu-west-1", "accesskey", "a", "secretaccesskey", "s", "sessiontoken", "x"), errs: []string{
				e("ecr", "sessiontoken is not a variable of ecr registries (known: region, accesskey, secretaccesskey)"),
			}},
		},
		"forgejo": forge("forgejo"),
		"gitea":   forge("gitea"),
		"gcr": {
			{name: "application default credentials", vals: v()},
			{name: "JSON key", vals: v("jsonkey", string(googleKeyJSON(t, "tagwatch@p.iam.gserviceaccount.com", keyPEM, "https://oauth2.googleapis.com/token")))},
			{name: "JSON key file missing", vals: v("keyfile", "/nonexistent/key.json"), errs: []string{e("gcr", "keyfile open /nonexistent/key.json: no such file or directory")}},
			{name: "two keys", vals: v("keyfile", "/etc/key.json", "privatekey", keyPEM, "clientemail", "x@p.iam.gserviceaccount.com"), errs: []string{
				e("gcr", "clientemail/privatekey must not be defined when keyfile is defined"),
			}},
			{name: "JSON key and a private key", vals: v("jsonkey", "{}", "privatekey", keyPEM), errs: []string{
				e("gcr", "clientemail must be defined when privatekey is defined"),
				e("gcr", "privatekey must not be defined when jsonkey is defined"),
			}},
			{name: "service account", vals: v("clientemail", "tagwatch@p.iam.gserviceaccount.com", "privatekey", keyPEM)},
			{name: "service account with escaped key", vals: v("clientemail", "tagwatch@p.iam.gserviceaccount.com", "privatekey", strings.ReplaceAll(keyPEM, "\n", `\n`))},
			{name: "email without key", vals: v("clientemail", "tagwatch@p.iam.gserviceaccount.com"), errs: []string{e("gcr", "privatekey must be defined when clientemail is defined")}},
			{name: "key without email", vals: v("privatekey", keyPEM), errs: []string{e("gcr", "clientemail must be defined when privatekey is defined")}},
			{name: "garbage key", vals: v("clientemail", "tagwatch@p.iam.gserviceaccount.com", "privatekey", "garbage"), errs: []string{
				e("gcr", "privatekey is not a PEM private key (copy private_key from the key file, BEGIN and END lines included)"),
			}},
			{name: "EC key", vals: v("clientemail", "tagwatch@p.iam.gserviceaccount.com", "privatekey", ecKey), errs: []string{
				e("gcr", "privatekey is PEM but not an RSA private key in PKCS#8 or PKCS#1 form"),
			}},
			{name: "unknown variable", vals: v("json", "{}"), errs: []string{e("gcr", "json is not a variable of gcr registries (known: keyfile, jsonkey, clientemail, privatekey)")}},
		},
		"ghcr": {
			{name: "anonymous", vals: v()},
			{name: "token", vals: v("username", "octocat", "token", "ghp_x")},
			{name: "username without token", vals: v("username", "octocat"), errs: []string{e("ghcr", "token must be defined when username is defined")}},
			{name: "token without username", vals: v("token", "ghp_x"), errs: []string{e("ghcr", "username must be defined when token is defined")}},
			{name: "password is not a variable", vals: v("username", "octocat", "password", "ghp_x"), errs: []string{
				e("ghcr", "password is not a variable of ghcr registries (known: username, token)"),
				e("ghcr", "token must be defined when username is defined"),
			}},
		},
		"gitlab": {
			{name: "gitlab.com", vals: v("url", "https://registry.gitlab.com", "authurl", "https://gitlab.com", "token", "glpat-x")},
			{name: "nothing", vals: v(), errs: []string{e("gitlab", "url is required"), e("gitlab", "authurl is required"), e("gitlab", "token is required")}},
			{name: "no token", vals: v("url", "https://registry.gitlab.com", "authurl", "https://gitlab.com"), errs: []string{e("gitlab", "token is required")}},
			{name: "no authurl", vals: v("url", "https://registry.gitlab.com", "token", "glpat-x"), errs: []string{e("gitlab", "authurl is required")}},
			{name: "authurl without scheme", vals: v("url", "https://registry.gitlab.com", "authurl", "gitlab.com", "token", "glpat-x"), errs: []string{
				e("gitlab", `authurl must start with http:// or https://, not "gitlab.com"`),
			}},
			{name: "bad url", vals: v("url", "registry.gitlab.com", "authurl", "https://gitlab.com", "token", "glpat-x"), errs: []string{
				e("gitlab", `url must start with http:// or https://, not "registry.gitlab.com"`),
			}},
			{name: "insecure not a bool", vals: v("url", "https://registry.gitlab.com", "authurl", "https://gitlab.com", "token", "glpat-x", "insecure", "1x"), errs: []string{
				e("gitlab", `insecure must be true or false, not "1x"`),
			}},
		},
		"hub": {
			{name: "anonymous", vals: v()},
			{name: "login and password", vals: v("login", "johndoe", "password", "dckr_pat_x")},
			{name: "login and deprecated token", vals: v("login", "johndoe", "token", "dckr_pat_x"), want: v("login", "johndoe", "password", "dckr_pat_x")},
			{name: "token and password agree", vals: v("login", "johndoe", "token", "dckr_pat_x", "password", "dckr_pat_x"), want: v("login", "johndoe", "password", "dckr_pat_x")},
			{name: "token and password differ", vals: v("login", "johndoe", "token", "dckr_pat_x", "password", "dckr_pat_y"), errs: []string{
				e("hub", "token is the deprecated name of password; define only password"),
			}},
			{name: "base64 auth", vals: v("auth", auth)},
			{name: "login without password", vals: v("login", "johndoe"), errs: []string{e("hub", "password must be defined when login is defined")}},
			{name: "password without login", vals: v("password", "dckr_pat_x"), errs: []string{e("hub", "login must be defined when password is defined")}},
			{name: "token without login", vals: v("token", "dckr_pat_x"), errs: []string{e("hub", "login must be defined when token is defined")}},
			{name: "auth with login and token", vals: v("auth", auth, "login", "johndoe", "token", "dckr_pat_x"), errs: []string{e("hub", "login/token must not be defined when auth is defined")}},
			{name: "auth with login and password", vals: v("auth", auth, "login", "johndoe", "password", "dckr_pat_x"), errs: []string{e("hub", "login/password must not be defined when auth is defined")}},
			{name: "auth with token", vals: v("auth", auth, "token", "dckr_pat_x"), errs: []string{
				e("hub", "login must be defined when token is defined"),
				e("hub", "token must not be defined when auth is defined"),
			}},
			{name: "auth not base64", vals: v("auth", "%%%"), errs: []string{e("hub", "auth must be base64 of login:password (as in .docker/config.json)")}},
			{name: "unknown variable", vals: v("username", "johndoe"), errs: []string{e("hub", "username is not a variable of hub registries (known: login, password, token, auth)")}},
		},
		"lscr": {
			{name: "token", vals: v("username", "octocat", "token", "ghp_x")},
			{name: "nothing", vals: v(), errs: []string{e("lscr", "username is required"), e("lscr", "token is required")}},
			{name: "no token", vals: v("username", "octocat"), errs: []string{e("lscr", "token is required")}},
			{name: "no username", vals: v("token", "ghp_x"), errs: []string{e("lscr", "username is required")}},
		},
		"quay": {
			{name: "anonymous", vals: v()},
			{name: "robot account", vals: v("namespace", "myorg", "account", "tagwatch", "token", "robot-token")},
			{name: "namespace alone", vals: v("namespace", "myorg"), errs: []string{
				e("quay", "account must be defined when namespace is defined"),
				e("quay", "token must be defined when namespace is defined"),
			}},
			{name: "no token", vals: v("namespace", "myorg", "account", "tagwatch"), errs: []string{
				e("quay", "token must be defined when namespace is defined"),
				e("quay", "token must be defined when account is defined"),
			}},
			{name: "token alone", vals: v("token", "robot-token"), errs: []string{
				e("quay", "namespace must be defined when token is defined"),
				e("quay", "account must be defined when token is defined"),
			}},
			{name: "account and token", vals: v("account", "tagwatch", "token", "robot-token"), errs: []string{
				e("quay", "namespace must be defined when account is defined"),
				e("quay", "namespace must be defined when token is defined"),
			}},
			{name: "unknown variable", vals: v("namespace", "myorg", "account", "tagwatch", "token", "robot-token", "robot", "myorg+tagwatch"), errs: []string{
				e("quay", "robot is not a variable of quay registries (known: namespace, account, token)"),
			}},
		},
	}
}

func ecKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// fieldErrors flattens what Open returned into FieldError texts, failing
// when an error is of another type.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	var ve registries.ValidationError
	var fe *registries.FieldError
	switch {
	case errors.As(err, &ve):
		for _, f := range ve {
			if f.Registry == "" || f.Variable == "" || f.Message == "" {
				t.Errorf("incomplete FieldError %#v", f)
			}
			out = append(out, f.Error())
		}
	case errors.As(err, &fe):
		out = append(out, fe.Error())
	default:
		t.Fatalf("error %q (%T) is neither a ValidationError nor a FieldError", err, err)
	}
	return out
}

func TestSpecValidateSettingsPage(t *testing.T) {
	cases := specCases(t)
	cat := registries.DefaultCatalog()
	if got, want := slices.Sorted(maps.Keys(cases)), cat.Kinds(); !slices.Equal(got, want) {
		t.Fatalf("the table covers kinds %v; the catalog has %v", got, want)
	}
	for _, kind := range cat.Kinds() {
		for _, tc := range cases[kind] {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				var warned []string
				o := localOptions()
				o.Warn = func(instance, msg string) { warned = append(warned, instance+": "+msg) }
				in, err := registries.Open(cat, registries.Config{Kind: kind, Name: "x", Source: registries.SourceFile, Values: tc.vals}, o)
				if len(tc.errs) == 0 {
					if err != nil {
						t.Fatalf("Open(%v): %v", tc.vals, err)
					}
					want := tc.want
					if want == nil {
						// Validate trims values (a pasted PEM key loses its last newline).
						want = registries.Values{}
						for k, val := range tc.vals {
							want[k] = strings.TrimSpace(val)
						}
					}
					if !maps.Equal(in.Values, want) {
						t.Errorf("validated values %v; want %v", in.Values, want)
					}
					if tc.vals["insecure"] == "true" && len(warned) != 1 {
						t.Errorf("insecure: true warned %v; want one warning", warned)
					}
					return
				}
				if err == nil {
					t.Fatalf("Open(%v) succeeded; want %q", tc.vals, tc.errs)
				}
				got := fieldErrors(t, err)
				sort.Strings(got)
				want := slices.Clone(tc.errs)
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
				// A secret never appears in an error about it.
				for name, val := range tc.vals {
					decl, ok := cat[kind].Spec().Variable(name)
					if ok && decl.Secret && len(val) > 3 && strings.Contains(err.Error(), strings.TrimSpace(val)) {
						t.Errorf("error %q shows the secret %s", err, name)
					}
				}
			})
		}
	}
}

// The same rules hold when Spec.Validate is called directly, as the config
// loader and the UI do before opening anything.
func TestSpecValidateDirect(t *testing.T) {
	hub := registries.Hub{}.Spec()
	out, err := hub.Validate("hub.public", registries.Values{"login": "johndoe", "token": "dckr_pat_x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out["token"]; ok || out["password"] != "dckr_pat_x" {
		t.Errorf("token not folded into password: %v", out)
	}
	_, err = hub.Validate("hub.public", registries.Values{"login": "johndoe", "colour": "blue", "auth": "eA=="})
	var ve registries.ValidationError
	if !errors.As(err, &ve) || len(ve) != 3 {
		t.Fatalf("Validate = %v; want three FieldErrors in one ValidationError", err)
	}
	if got, want := err.Error(), "registry hub.public: colour is not a variable of hub registries (known: login, password, token, auth); "+
		"registry hub.public: password must be defined when login is defined; "+
		"registry hub.public: login must not be defined when auth is defined"; got != want {
		t.Errorf("ValidationError text\n %q\nwant\n %q", got, want)
	}
	if ve[0].Registry != "hub.public" || ve[0].Variable != "colour" || !strings.HasPrefix(ve[0].Message, "is not a variable") {
		t.Errorf("first FieldError = %#v", ve[0])
	}
}

func TestSpecUnknownKind(t *testing.T) {
	_, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: "harbor", Name: "x", Source: registries.SourceFile}, localOptions())
	if err == nil || !strings.Contains(err.Error(), `unknown registry kind "harbor"`) || !strings.Contains(err.Error(), "quay") {
		t.Fatalf("Open(harbor) = %v; want an error naming the known kinds", err)
	}
}

func TestSpecDefaults(t *testing.T) {
	cat := registries.DefaultCatalog()
	defs := registries.Defaults(cat)
	var ids []string
	for _, c := range defs {
		ids = append(ids, c.ID())
		if c.Source != registries.SourceDefault || len(c.Values) != 0 {
			t.Errorf("default %s: source %s, values %v; want default, none", c.ID(), c.Source, c.Values)
		}
		in, err := registries.Open(cat, c, localOptions())
		if err != nil {
			t.Errorf("Open(%s): %v", c.ID(), err)
			continue
		}
		if !in.Anonymous() {
			t.Errorf("default %s has credentials", c.ID())
		}
	}
	if want := []string{"ecr.public", "gcr.public", "ghcr.public", "hub.public", "quay.public"}; !slices.Equal(ids, want) {
		t.Errorf("Defaults = %v; want %v", ids, want)
	}
}

func TestSpecECRDefaultVersusConfigured(t *testing.T) {
	cat := registries.DefaultCatalog()
	// The anonymous default reads public.ecr.aws with no variables at all…
	in, err := registries.Open(cat, registries.Config{Kind: "ecr", Name: registries.DefaultName, Source: registries.SourceDefault}, localOptions())
	if err != nil {
		t.Fatalf("Open(ecr.public default): %v", err)
	}
	if !in.Anonymous() || !in.Serves("public.ecr.aws") || !in.Serves("123456789012.dkr.ecr.eu-west-1.amazonaws.com") {
		t.Errorf("default ECR: anonymous %v, serves public.ecr.aws %v", in.Anonymous(), in.Serves("public.ecr.aws"))
	}
	// …while the same instance configured by an admin needs all three.
	for _, src := range []registries.Source{registries.SourceFile, registries.SourceUI} {
		_, err := registries.Open(cat, registries.Config{Kind: "ecr", Name: registries.DefaultName, Source: src}, localOptions())
		if err == nil {
			t.Fatalf("Open(ecr.public from %s) with no variables succeeded", src)
		}
		got := fieldErrors(t, err)
		want := []string{"registry ecr.public: region is required", "registry ecr.public: accesskey is required", "registry ecr.public: secretaccesskey is required"}
		if !slices.Equal(got, want) {
			t.Errorf("from %s: %q; want %q", src, got, want)
		}
	}
	// A configured ECR serves its own region's registries, not public.ecr.aws.
	in, err = registries.Open(cat, registries.Config{Kind: "ecr", Name: "prod", Source: registries.SourceFile,
		Values: registries.Values{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE", "secretaccesskey": "s"}}, localOptions())
	if err != nil {
		t.Fatal(err)
	}
	if in.Anonymous() || in.Serves("public.ecr.aws") || !in.Serves("123456789012.dkr.ecr.eu-west-1.amazonaws.com") || in.Serves("123456789012.dkr.ecr.us-east-1.amazonaws.com") {
		t.Errorf("configured ECR serves the wrong hosts")
	}
}

func TestSpecPublicHidesSecrets(t *testing.T) {
	_, keyPEM := rsaKeyPEM(t)
	cat := registries.DefaultCatalog()
	cases := specCases(t)
	for _, kind := range cat.Kinds() {
		spec := cat[kind].Spec()
		// Every valid row of the table, plus one where every secret has a
		// value of its own.
		var rows []registries.Values
		for _, tc := range cases[kind] {
			if len(tc.errs) == 0 {
				rows = append(rows, tc.vals)
			}
		}
		for _, row := range rows {
			vals := maps.Clone(row)
			if kind == "gcr" && vals.Has("privatekey") {
				vals["privatekey"] = keyPEM
			}
			in, err := registries.Open(cat, registries.Config{Kind: kind, Name: "x", Source: registries.SourceFile, Values: vals}, localOptions())
			if err != nil {
				t.Fatalf("%s %v: %v", kind, vals, err)
			}
			pub, set := in.Public()
			var wantSet []string
			for name, val := range in.Values {
				decl, _ := spec.Variable(name)
				if decl.Secret {
					wantSet = append(wantSet, name)
					for pk, pv := range pub {
						if pv == val || (len(val) >= 6 && strings.Contains(pv, val)) {
							t.Errorf("%s: Public()[%s] = %q holds the secret %s", kind, pk, pv, name)
						}
					}
					continue
				}
				if pub[name] != val {
					t.Errorf("%s: Public()[%s] = %q; want %q", kind, name, pub[name], val)
				}
			}
			sort.Strings(set)
			sort.Strings(wantSet)
			if !slices.Equal(set, wantSet) {
				t.Errorf("%s %v: Public() set = %v; want %v", kind, slices.Sorted(maps.Keys(vals)), set, wantSet)
			}
			// The deprecated alias is reported under the name it stands for.
			if _, ok := pub["token"]; ok && kind == "hub" {
				t.Errorf("hub: Public() shows token")
			}
		}
	}
	// Secrets are declared where the settings page keeps credentials.
	want := map[string][]string{
		"acr": {"clientsecret"}, "custom": {"auth", "password"}, "ecr": {"secretaccesskey"},
		"forgejo": {"auth", "password"}, "gcr": {"jsonkey", "privatekey"}, "ghcr": {"token"}, "gitea": {"auth", "password"},
		"gitlab": {"token"}, "hub": {"auth", "password", "token"}, "lscr": {"token"}, "quay": {"token"},
	}
	for _, kind := range cat.Kinds() {
		var secrets []string
		for _, v := range cat[kind].Spec().Variables {
			if v.Secret {
				secrets = append(secrets, v.Name)
			}
		}
		sort.Strings(secrets)
		if !slices.Equal(secrets, want[kind]) {
			t.Errorf("%s secrets = %v; want %v", kind, secrets, want[kind])
		}
	}
}
