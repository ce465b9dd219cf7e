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
				e("token is not a variable of " + kind + " registries (known: url, cafile, insecure, login, password, auth, proxy, repositories, concurrency)"),
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
				e("acr", "tenant is not a variable of acr registries (known: clientid, clientsecret, tenantid, proxy, repositories, concurrency)"),
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
			{name: "ftp url", vals: v("url", "ftp://shpcr.io"), errs: []string{e("custom", `url must start with http:// or https://, not ftp://`)}},
			// A url's errors never quote it: it may hold a password.
			{name: "url with a password", vals: v("url", "ftp://user:PW-in-url@shpcr.io"), errs: []string{e("custom", `url must start with http:// or https://, not ftp://`)}},
			{name: "unparsable url with a password", vals: v("url", "https://user:PW-in-url@shpcr.io:port/"), errs: []string{e("custom", `url is not a URL: invalid port`)}},
			{name: "url without scheme", vals: v("url", "shpcr.io:5000"), errs: []string{e("custom", `url must start with http:// or https://`)}},
			{name: "url without host", vals: v("url", "https://"), errs: []string{e("custom", `url has no host`)}},
			{name: "url with credentials", vals: v("url", "https://me:hunter2@shpcr.io"), errs: []string{e("custom", "url must not hold credentials; set them in their own variables")}},
			{name: "insecure not a bool", vals: v("url", "https://shpcr.io", "insecure", "yes"), errs: []string{e("custom", `insecure must be true or false, not "yes"`)}},
			{name: "auth not base64", vals: v("url", "https://shpcr.io", "auth", "!!not base64!!"), errs: []string{e("custom", "auth must be base64 of login:password (as in .docker/config.json)")}},
			{name: "auth without colon", vals: v("url", "https://shpcr.io", "auth", base64.StdEncoding.EncodeToString([]byte("johndoe"))), errs: []string{
				e("custom", "auth must decode to login:password; the decoded value has no colon or no login"),
			}},
			{name: "unknown variable", vals: v("url", "https://shpcr.io", "username", "me"), errs: []string{
				e("custom", "username is not a variable of custom registries (known: url, cafile, insecure, login, password, auth, proxy, repositories, concurrency)"),
			}},
		},
		"ecr": {
			{name: "keys", vals: v("region", "eu-west-1", "accesskey", "AKIAIOSFODNN7EXAMPLE", "secretaccesskey", "s")},
			{name: "nothing", vals: v(), errs: []string{e("ecr", "region is required"), e("ecr", "accesskey is required"), e("ecr", "secretaccesskey is required")}},
			{name: "region only", vals: v("region", "eu-west-1"), errs: []string{e("ecr", "accesskey is required"), e("ecr", "secretaccesskey is required")}},
			{name: "no region", vals: v("accesskey", "AKIAIOSFODNN7EXAMPLE", "secretaccesskey", "s"), errs: []string{e("ecr", "region is required")}},
			{name: "unknown variable", vals: v("region", "eu-west-1", "accesskey", "a", "secretaccesskey", "s", "sessiontoken", "x"), errs: []string{
				e("ecr", "sessiontoken is not a variable of ecr registries (known: region, accesskey, secretaccesskey, proxy, repositories, concurrency)"),
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
			{name: "unknown variable", vals: v("json", "{}"), errs: []string{e("gcr", "json is not a variable of gcr registries (known: keyfile, jsonkey, clientemail, privatekey, proxy, repositories, concurrency)")}},
		},
		"ghcr": {
			{name: "anonymous", vals: v()},
			{name: "token", vals: v("username", "octocat", "token", "ghp_x")},
			{name: "username without token", vals: v("username", "octocat"), errs: []string{e("ghcr", "token must be defined when username is defined")}},
			{name: "token without username", vals: v("token", "ghp_x"), errs: []string{e("ghcr", "username must be defined when token is defined")}},
			{name: "password is not a variable", vals: v("username", "octocat", "password", "ghp_x"), errs: []string{
				e("ghcr", "password is not a variable of ghcr registries (known: username, token, proxy, repositories, concurrency)"),
				e("ghcr", "token must be defined when username is defined"),
			}},
		},
		"gitlab": {
			{name: "gitlab.com", vals: v("url", "https://registry.gitlab.com", "authurl", "https://gitlab.com", "token", "glpat-x")},
			{name: "nothing", vals: v(), errs: []string{e("gitlab", "url is required"), e("gitlab", "authurl is required"), e("gitlab", "token is required")}},
			{name: "no token", vals: v("url", "https://registry.gitlab.com", "authurl", "https://gitlab.com"), errs: []string{e("gitlab", "token is required")}},
			{name: "no authurl", vals: v("url", "https://registry.gitlab.com", "token", "glpat-x"), errs: []string{e("gitlab", "authurl is required")}},
			{name: "authurl without scheme", vals: v("url", "https://registry.gitlab.com", "authurl", "gitlab.com", "token", "glpat-x"), errs: []string{
				e("gitlab", `authurl must start with http:// or https://`),
			}},
			{name: "bad url", vals: v("url", "registry.gitlab.com", "authurl", "https://gitlab.com", "token", "glpat-x"), errs: []string{
				e("gitlab", `url must start with http:// or https://`),
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
			{name: "unknown variable", vals: v("username", "johndoe"), errs: []string{e("hub", "username is not a variable of hub registries (known: login, password, token, auth, proxy, repositories, concurrency)")}},
		},
		"alicr": {
			{name: "personal edition", vals: v("login", "acme", "password", "registry-pw")},
			{name: "enterprise edition in a region", vals: v("instance", "acme", "region", "cn-hangzhou", "login", "ram-user@1234567890123456", "password", "registry-pw")},
			{name: "nothing", vals: v(), errs: []string{e("alicr", "login is required"), e("alicr", "password is required")}},
			{name: "unknown variable", vals: v("login", "acme", "password", "pw", "namespace", "acme"), errs: []string{
				e("alicr", "namespace is not a variable of alicr registries (known: instance, region, login, password, proxy, repositories, concurrency)"),
			}},
		},
		"codeberg": {
			{name: "anonymous", vals: v()},
			{name: "access token", vals: v("login", "octocat", "password", "cb-token")},
			{name: "login without token", vals: v("login", "octocat"), errs: []string{e("codeberg", "password must be defined when login is defined")}},
			{name: "token is not a variable", vals: v("token", "cb-token"), errs: []string{
				e("codeberg", "token is not a variable of codeberg registries (known: login, password, proxy, repositories, concurrency)"),
			}},
		},
		"dhi": {
			{name: "hub login and token", vals: v("login", "johndoe", "password", "dckr_pat_x")},
			{name: "nothing", vals: v(), errs: []string{e("dhi", "login is required"), e("dhi", "password is required")}},
			{name: "token without login", vals: v("password", "dckr_pat_x"), errs: []string{e("dhi", "login is required")}},
		},
		"docr": {
			{name: "token", vals: v("token", "dop_v1_abc")},
			{name: "nothing", vals: v(), errs: []string{e("docr", "token is required")}},
			{name: "login is not a variable", vals: v("login", "me@example.com", "password", "dop_v1_abc"), errs: []string{
				e("docr", "login is not a variable of docr registries (known: token, proxy, repositories, concurrency)"),
				e("docr", "password is not a variable of docr registries (known: token, proxy, repositories, concurrency)"),
				e("docr", "token is required"),
			}},
		},
		"elastic": {
			{name: "anonymous", vals: v()},
			{name: "login", vals: v("login", "acme", "password", "pw")},
			{name: "login alone", vals: v("login", "acme"), errs: []string{e("elastic", "password must be defined when login is defined")}},
		},
		"harbor": {
			{name: "robot account", vals: v("url", "https://harbor.example.com", "login", "robot$library+tagwatch", "password", "robot-secret")},
			{name: "user", vals: v("url", "https://harbor.example.com", "login", "admin", "password", "Harbor12345")},
			{name: "public projects", vals: v("url", "https://harbor.example.com")},
			{name: "nothing", vals: v(), errs: []string{e("harbor", "url is required")}},
			{name: "robot without secret", vals: v("url", "https://harbor.example.com", "login", "robot$library+tagwatch"), errs: []string{
				e("harbor", "password must be defined when login is defined"),
			}},
		},
		"icr": {
			{name: "api key", vals: v("apikey", "ibm-api-key")},
			{name: "nothing", vals: v(), errs: []string{e("icr", "apikey is required")}},
			{name: "login and password are not variables", vals: v("login", "iamapikey", "password", "ibm-api-key"), errs: []string{
				e("icr", "login is not a variable of icr registries (known: apikey, proxy, repositories, concurrency)"),
				e("icr", "password is not a variable of icr registries (known: apikey, proxy, repositories, concurrency)"),
				e("icr", "apikey is required"),
			}},
		},
		"jfrog": {
			{name: "cloud", vals: v("url", "https://acme.jfrog.io", "login", "jane@example.com", "password", "identity-token")},
			{name: "API under a path", vals: v("url", "https://artifactory.example.com/artifactory/api/docker/docker-local", "login", "jane", "password", "pw")},
			{name: "anonymous", vals: v("url", "https://acme.jfrog.io")},
			{name: "nothing", vals: v(), errs: []string{e("jfrog", "url is required")}},
		},
		"k8s": {
			{name: "anonymous", vals: v()},
			{name: "through a proxy", vals: v("proxy", "http://proxy.lan:3128")},
			{name: "no credentials", vals: v("login", "x"), errs: []string{e("k8s", "login is not a variable of k8s registries (known: proxy, repositories, concurrency)")}},
		},
		"linode": {
			{name: "token", vals: v("url", "https://registry.example.com", "login", "tagwatch", "password", "token")},
			{name: "nothing", vals: v(), errs: []string{e("linode", "url is required")}},
		},
		"mcr": {
			{name: "anonymous", vals: v()},
			{name: "direct", vals: v("proxy", "none")},
			{name: "concurrency pinned", vals: v("concurrency", "8")},
			{name: "concurrency auto", vals: v("concurrency", "auto")},
			{name: "concurrency not a number", vals: v("concurrency", "lots"), errs: []string{e("mcr", `concurrency must be auto or a number of requests from 1 to 128, not "lots"`)}},
			{name: "concurrency too high", vals: v("concurrency", "500"), errs: []string{e("mcr", `concurrency must be auto or a number of requests from 1 to 128, not "500"`)}},
		},
		"nexus": {
			{name: "connector ports", vals: v("url", "https://nexus.example.com:8082", "ports", "8083, 8084", "login", "tagwatch", "password", "pw")},
			{name: "repository path", vals: v("url", "https://nexus.example.com/repository/docker-hosted", "login", "tagwatch", "password", "pw")},
			{name: "anonymous", vals: v("url", "https://nexus.example.com:8082")},
			{name: "bad port", vals: v("url", "https://nexus.example.com:8082", "ports", "8083, docker"), errs: []string{
				e("nexus", `ports "docker" is not a port number (1-65535); list ports as 8083, 8084`),
			}},
			{name: "port out of range", vals: v("url", "https://nexus.example.com:8082", "ports", "70000"), errs: []string{
				e("nexus", `ports "70000" is not a port number (1-65535); list ports as 8083, 8084`),
			}},
		},
		"ocir": {
			{name: "region key", vals: v("region", "fra", "namespace", "axaxnpcrorw5", "username", "jane@example.com", "token", "auth-token")},
			{name: "every region", vals: v("namespace", "axaxnpcrorw5", "username", "oracleidentitycloudservice/jane@example.com", "token", "auth-token")},
			{name: "nothing", vals: v(), errs: []string{e("ocir", "namespace is required"), e("ocir", "username is required"), e("ocir", "token is required")}},
			{name: "password is not a variable", vals: v("namespace", "ns", "username", "jane", "password", "pw"), errs: []string{
				e("ocir", "password is not a variable of ocir registries (known: region, namespace, username, token, proxy, repositories, concurrency)"),
				e("ocir", "token is required"),
			}},
		},
		"proget": {
			{name: "user", vals: v("url", "https://proget.example.com", "login", "tagwatch", "password", "pw")},
			{name: "api key", vals: v("url", "https://proget.example.com", "apikey", "api-key")},
			{name: "api key and login", vals: v("url", "https://proget.example.com", "apikey", "api-key", "login", "tagwatch"), errs: []string{
				e("proget", "password must be defined when login is defined"),
				e("proget", "login must not be defined when apikey is defined"),
			}},
			{name: "nothing", vals: v(), errs: []string{e("proget", "url is required")}},
		},
		"scaleway": {
			{name: "region", vals: v("region", "fr-par", "secretkey", "scw-secret")},
			{name: "every region", vals: v("secretkey", "scw-secret")},
			{name: "nothing", vals: v(), errs: []string{e("scaleway", "secretkey is required")}},
			{name: "access key is not a variable", vals: v("accesskey", "SCWXXXXXXXXXXXXXXXXX", "secretkey", "scw-secret"), errs: []string{
				e("scaleway", "accesskey is not a variable of scaleway registries (known: region, secretkey, proxy, repositories, concurrency)"),
			}},
		},
		"trueforge": {
			{name: "anonymous", vals: v()},
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
				e("quay", "robot is not a variable of quay registries (known: namespace, account, token, proxy, repositories, concurrency)"),
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
				if strings.Contains(err.Error(), "PW-in-url") {
					t.Errorf("error %q quotes a url's password", err)
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
	if got, want := err.Error(), "registry hub.public: colour is not a variable of hub registries (known: login, password, token, auth, proxy, repositories, concurrency); "+
		"registry hub.public: password must be defined when login is defined; "+
		"registry hub.public: login must not be defined when auth is defined"; got != want {
		t.Errorf("ValidationError text\n %q\nwant\n %q", got, want)
	}
	if ve[0].Registry != "hub.public" || ve[0].Variable != "colour" || !strings.HasPrefix(ve[0].Message, "is not a variable") {
		t.Errorf("first FieldError = %#v", ve[0])
	}
}

func TestSpecUnknownKind(t *testing.T) {
	_, err := registries.Open(registries.DefaultCatalog(), registries.Config{Kind: "artifacthub", Name: "x", Source: registries.SourceFile}, localOptions())
	if err == nil || !strings.Contains(err.Error(), `unknown registry kind "artifacthub"`) || !strings.Contains(err.Error(), "quay") {
		t.Fatalf("Open(artifacthub) = %v; want an error naming the known kinds", err)
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
	want := []string{"codeberg.public", "ecr.public", "elastic.public", "gcr.public", "ghcr.public", "hub.public",
		"k8s.public", "mcr.public", "quay.public", "trueforge.public"}
	if !slices.Equal(ids, want) {
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
		"alicr": {"password"}, "codeberg": {"password"}, "dhi": {"password"}, "docr": {"token"}, "elastic": {"password"},
		"harbor": {"password"}, "icr": {"apikey"}, "jfrog": {"password"}, "k8s": nil, "linode": {"password"}, "mcr": nil,
		"nexus": {"password"}, "ocir": {"token"}, "proget": {"apikey", "password"}, "scaleway": {"secretkey"}, "trueforge": nil,
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

// TestSpecEndpoints pins, per kind, the variables that say where its
// secrets go: a saved secret is only reused while they keep their values.
func TestSpecEndpoints(t *testing.T) {
	cat := registries.DefaultCatalog()
	url := []string{"url", "cafile", "insecure", "proxy"}
	want := map[string][]string{
		"acr": {"tenantid", "proxy"}, "alicr": {"instance", "region", "proxy"}, "codeberg": {"proxy"},
		"custom": url, "dhi": {"proxy"}, "docr": {"proxy"}, "ecr": {"region", "proxy"}, "elastic": {"proxy"},
		"forgejo": url, "gcr": {"proxy"}, "ghcr": {"proxy"}, "gitea": url,
		"gitlab": {"url", "cafile", "insecure", "authurl", "proxy"}, "harbor": url, "hub": {"proxy"},
		"icr": {"proxy"}, "jfrog": url, "k8s": {"proxy"}, "linode": url, "lscr": {"proxy"}, "mcr": {"proxy"},
		"nexus": {"url", "cafile", "insecure", "ports", "proxy"}, "ocir": {"region", "proxy"}, "proget": url,
		"quay": {"proxy"}, "scaleway": {"region", "proxy"}, "trueforge": {"proxy"},
	}
	for _, kind := range cat.Kinds() {
		var got []string
		for _, v := range cat[kind].Spec().Variables {
			if v.Endpoint {
				got = append(got, v.Name)
			}
			if v.Endpoint && v.Secret {
				t.Errorf("%s.%s is both Endpoint and Secret: a saved endpoint could not be compared", kind, v.Name)
			}
		}
		if !slices.Equal(got, want[kind]) {
			t.Errorf("%s endpoints = %v; want %v", kind, got, want[kind])
		}
	}
}

// TestSpecDeclarations holds every kind to what the settings page and the
// README need of it: a worked example that validates, a hint wherever it
// takes a secret, and a host to show on its tile.
func TestSpecDeclarations(t *testing.T) {
	cat := registries.DefaultCatalog()
	for _, kind := range cat.Kinds() {
		spec := cat[kind].Spec()
		if spec.Kind != kind || spec.Title == "" || spec.Description == "" {
			t.Errorf("%s: kind %q, title %q, description %q", kind, spec.Kind, spec.Title, spec.Description)
		}
		if len(spec.Example) > 0 {
			if _, err := spec.Validate(kind+".main", spec.Example); err != nil {
				t.Errorf("%s: the README's example does not validate: %v", kind, err)
			}
		}
		secret := slices.ContainsFunc(spec.Variables, func(v registries.Variable) bool { return v.Secret })
		if secret != (spec.CredentialHint != "") {
			t.Errorf("%s: takes a secret %v, has a credential hint %q: want both or neither", kind, secret, spec.CredentialHint)
		}
		if secret && len(spec.Example) == 0 {
			t.Errorf("%s takes credentials but shows no example", kind)
		}
		if show, _ := cat.Hosts(kind, spec.Example); show == "" {
			t.Errorf("%s: its tile shows no host for %v", kind, spec.Example)
		}
	}
}

// TestSpecEndpointNames guards kinds added later: a variable whose name says
// it is a place (a url, a tenant, a CA…) must be declared Endpoint, or a
// saved secret would follow it to a new value.
func TestSpecEndpointNames(t *testing.T) {
	places := []string{"url", "authurl", "tokenurl", "endpoint", "host", "server", "proxy", "cafile", "insecure",
		"region", "tenant", "tenantid", "authority", "domain", "instance", "ports", "port"}
	cat := registries.DefaultCatalog()
	for _, kind := range cat.Kinds() {
		for _, v := range cat[kind].Spec().Variables {
			if slices.Contains(places, v.Name) && !v.Endpoint {
				t.Errorf("%s.%s names a place but is not declared Endpoint (see Variable.Endpoint)", kind, v.Name)
			}
		}
	}
}

func TestSpecChangedEndpoints(t *testing.T) {
	cat := registries.DefaultCatalog()
	saved := registries.Values{"url": "https://registry.vendor.example", "login": "alice", "insecure": "false"}
	for _, tc := range []struct {
		name string
		kind string
		saved,
		next registries.Values
		want []string
	}{
		{"nothing changed", "custom", saved, registries.Values{"url": "https://registry.vendor.example", "login": "alice", "insecure": "false"}, nil},
		{"a login is not a place", "custom", saved, registries.Values{"url": "https://registry.vendor.example", "login": "bob"}, nil},
		{"white space is not a change", "custom", saved, registries.Values{"url": " https://registry.vendor.example\n"}, nil},
		{"insecure unset is false", "custom", saved, registries.Values{"url": "https://registry.vendor.example", "insecure": ""}, nil},
		{"url host", "custom", saved, registries.Values{"url": "https://evil.example"}, []string{"url"}},
		{"url scheme", "custom", saved, registries.Values{"url": "http://registry.vendor.example"}, []string{"url"}},
		{"url path", "custom", saved, registries.Values{"url": "https://registry.vendor.example/x"}, []string{"url"}},
		{"url removed", "custom", saved, registries.Values{}, []string{"url"}},
		{"insecure turned on", "custom", saved, registries.Values{"url": "https://registry.vendor.example", "insecure": "true"}, []string{"insecure"}},
		{"a CA added", "custom", saved, registries.Values{"url": "https://registry.vendor.example", "cafile": "/tmp/evil.pem"}, []string{"cafile"}},
		{"url and CA", "gitea", saved, registries.Values{"url": "https://evil.example", "cafile": "/tmp/evil.pem"}, []string{"url", "cafile"}},
		{"gitlab authurl", "gitlab", registries.Values{"url": "https://r.example", "authurl": "https://gitlab.example"},
			registries.Values{"url": "https://r.example", "authurl": "https://evil.example"}, []string{"authurl"}},
		{"acr tenant set", "acr", registries.Values{"clientid": "id"}, registries.Values{"clientid": "id", "tenantid": "t"}, []string{"tenantid"}},
		{"acr tenant changed", "acr", registries.Values{"tenantid": "a"}, registries.Values{"tenantid": "b"}, []string{"tenantid"}},
		{"ecr region", "ecr", registries.Values{"region": "eu-west-1"}, registries.Values{"region": "us-east-1"}, []string{"region"}},
		{"hub has no endpoint but its proxy", "hub", registries.Values{"login": "a"}, registries.Values{"login": "b"}, nil},
		{"a proxy added", "hub", registries.Values{"login": "a"}, registries.Values{"login": "a", "proxy": "http://evil.example:3128"}, []string{"proxy"}},
		{"ocir region", "ocir", registries.Values{"region": "fra"}, registries.Values{"region": "iad"}, []string{"region"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cat[tc.kind].Spec().ChangedEndpoints(tc.saved, tc.next)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ChangedEndpoints = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestCatalogHosts: the host a tile shows, and the one a connection test
// without an image reaches.
func TestCatalogHosts(t *testing.T) {
	cat := registries.DefaultCatalog()
	for _, tc := range []struct {
		kind       string
		vals       registries.Values
		show, test string
	}{
		{"hub", nil, "docker.io", "docker.io"},
		{"mcr", nil, "mcr.microsoft.com", "mcr.microsoft.com"},
		{"k8s", nil, "registry.k8s.io", "registry.k8s.io"},
		{"codeberg", nil, "codeberg.org", "codeberg.org"},
		{"docr", registries.Values{"token": "x"}, "registry.digitalocean.com", "registry.digitalocean.com"},
		{"icr", registries.Values{"apikey": "x"}, "icr.io", "icr.io"},
		{"ocir", registries.Values{"region": "fra"}, "fra.ocir.io", "fra.ocir.io"},
		{"ocir", registries.Values{"region": "eu-frankfurt-1"}, "fra.ocir.io", "fra.ocir.io"},
		{"ocir", nil, "*.ocir.io", ""},
		{"scaleway", registries.Values{"region": "nl-ams"}, "rg.nl-ams.scw.cloud", "rg.nl-ams.scw.cloud"},
		{"scaleway", nil, "rg.*.scw.cloud", ""},
		{"alicr", registries.Values{"region": "cn-hangzhou"}, "registry.cn-hangzhou.aliyuncs.com", "registry.cn-hangzhou.aliyuncs.com"},
		{"alicr", registries.Values{"instance": "acme", "region": "cn-hangzhou"}, "acme-registry.cn-hangzhou.cr.aliyuncs.com", "acme-registry.cn-hangzhou.cr.aliyuncs.com"},
		{"alicr", registries.Values{"instance": "acme"}, "acme-registry.*.cr.aliyuncs.com", ""},
		{"ecr", registries.Values{"region": "eu-west-1"}, "*.dkr.ecr.eu-west-1.amazonaws.com", ""},
		{"ecr", nil, "public.ecr.aws", "public.ecr.aws"},
		{"acr", nil, "*.azurecr.io", ""},
		{"jfrog", registries.Values{"url": "https://artifactory.example.com/artifactory/api/docker/docker-local"}, "artifactory.example.com", "artifactory.example.com"},
		{"nexus", registries.Values{"url": "https://nexus.example.com:8082", "ports": "8083"}, "nexus.example.com:8082", "nexus.example.com:8082"},
		{"nope", nil, "", ""},
	} {
		show, test := cat.Hosts(tc.kind, tc.vals)
		if show != tc.show || test != tc.test {
			t.Errorf("Hosts(%s, %v) = %q, %q; want %q, %q", tc.kind, tc.vals, show, test, tc.show, tc.test)
		}
	}
}
