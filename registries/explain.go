package registries

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/oauth2"
)

// Class sorts failed registry calls by what an admin can do about them.
type Class string

const (
	ClassCredentials Class = "credentials" // the registry refused the credentials, or wants some
	ClassDenied      Class = "denied"      // 403: signed in, but not allowed
	ClassNotFound    Class = "not-found"
	ClassRateLimited Class = "rate-limited"
	ClassServer      Class = "server-error" // 5xx
	ClassStatus      Class = "status"       // another HTTP status
	ClassTLS         Class = "tls"
	ClassTimeout     Class = "timeout"
	ClassRefused     Class = "refused" // nothing listens
	ClassDNS         Class = "dns"
	ClassNetwork     Class = "network" // reset, closed, unreachable
	ClassBlocked     Class = "blocked" // a test's request to a link-local or metadata address
	ClassProtocol    Class = "protocol"
	ClassLimit       Class = "limit" // an answer past one of tagwatch's bounds: size, pages, redirects
	ClassCanceled    Class = "canceled"
	ClassTagwatch    Class = "tagwatch" // tagwatch's own reason: settings, an allowance kept, a missing platform
	ClassOther       Class = "other"
)

// Problem is a failed registry call as people read it: the dashboard row,
// the tile, `tagwatch check`, the API and notifications all show Reason,
// and the API adds Detail. Neither ever quotes what the target sent (a body,
// a header, an error message of its own): a registry is not trusted, and a
// connection test must not become a way to read another service. What the
// target sent goes to the debug log only (see Raw).
type Problem struct {
	Class Class `json:"class"`
	// Status is the HTTP status the registry (or its token server)
	// answered; 0 when no answer came.
	Status int `json:"status,omitempty"`
	// Reason is one short sentence naming the host and the instance and
	// saying what to do.
	Reason string `json:"reason"`
	// Detail is Reason with the facts behind it: the operation, the request
	// path, the status and the registry's error codes, the time taken.
	Detail string `json:"detail"`
}

// CallError is a failed call to a registry: which instance, which host and
// image, which operation, how long it ran, and the cause. Error returns the
// Problem's Detail, so an error that reaches a log, a store or a response
// by way of err.Error() still quotes nothing the registry sent.
type CallError struct {
	Instance   string // kind.name
	Host       string // the registry host the call was for
	Repository string // "" for a registry-wide call
	Tag        string
	Digest     string // the manifest a digest read asked for, instead of a tag
	Op         string // "list tags", "read digest", "connect", …
	Took       time.Duration
	Err        error // the cause: may quote the registry; never shown

	implicit, anonymous, takesCAFile bool
	hub                              bool
	reqHost                          string   // the host requests go to: Docker Hub's differs from its name
	credentials                      []string // the credential variables set, for the advice
	hint                             string   // the kind's CredentialHint: the login form it expects
	outside                          []string // an implicit instance's host's instances that leave it out
	raw                              string   // the cause, truncated and with secrets removed
	page                             int      // the tag list page a list tags call got to (failTags)
}

func (e *CallError) Error() string { return e.problem().Detail }
func (e *CallError) Unwrap() error { return e.Err }

// Is makes a refusal of the credentials (or of their absence) match
// ErrUnauthorized, whatever form the registry's answer took, and the
// registry's own 404 (not its token server's) match ErrNotFound.
func (e *CallError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		c := e.classify().Class
		return c == ClassCredentials || c == ClassDenied
	case ErrNotFound:
		var te *transport.Error
		return errors.As(e.Err, &te) && te.StatusCode == http.StatusNotFound && e.who(te.Request) == e.Host
	}
	return false
}

// Raw is what the registry and the libraries said, for the debug log: the
// cause of err, bodies included, cut to 512 bytes, with the instance's
// secrets and any URL userinfo removed.
func Raw(err error) string {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.raw
	}
	if err == nil {
		return ""
	}
	return truncate(RedactUserinfo(err.Error()), maxRaw)
}

const maxRaw = 512

// Explain turns any error of a registry call into a Problem. An error that
// is not a CallError is tagwatch's own (a bad reference, no instance for a
// host) and is quoted, userinfo removed.
func Explain(err error) Problem {
	if err == nil {
		return Problem{}
	}
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.problem()
	}
	msg := RedactUserinfo(err.Error())
	if errors.Is(err, context.Canceled) {
		return Problem{Class: ClassCanceled, Reason: "canceled: the check was stopped", Detail: msg}
	}
	return Problem{Class: ClassTagwatch, Reason: msg, Detail: msg}
}

// fail wraps the error of a call into a CallError; an error that already is
// one is returned as it is.
func (in *Instance) fail(img Image, op string, start time.Time, err error) error {
	var ce *CallError
	if errors.As(err, &ce) {
		return err
	}
	e := &CallError{
		Instance:    in.ID(),
		Host:        img.Host,
		Repository:  img.Repository,
		Tag:         img.Tag,
		Digest:      img.Digest,
		Op:          op,
		Took:        time.Since(start),
		Err:         err,
		implicit:    in.Source == SourceImplicit,
		outside:     in.outside,
		anonymous:   in.Anonymous(),
		hub:         in.Kind == "hub",
		credentials: in.credentialNames(),
		hint:        in.spec.CredentialHint,
	}
	e.reqHost = e.Host
	if e.Host == DockerHub {
		e.reqHost = name.DefaultRegistry
	}
	_, e.takesCAFile = in.spec.Variable("cafile")
	raw := err.Error()
	for _, v := range in.spec.Variables {
		if s := in.Values[v.Name]; v.Secret && len(s) >= 4 {
			raw = strings.ReplaceAll(raw, s, "***")
		}
	}
	e.raw = truncate(RedactUserinfo(raw), maxRaw)
	return e
}

// credentialNames lists the variables that sign the instance in, as the
// advice names them ("Check login and password.").
func (in *Instance) credentialNames() []string {
	var out []string
	for _, v := range in.spec.Variables {
		switch v.Name {
		case "url", "cafile", "insecure", "authurl", "region", "tenantid", "proxy", "repositories":
			continue
		}
		if in.Values.Has(v.Name) && v.AliasOf == "" {
			out = append(out, v.Name)
		}
	}
	return out
}

// notice is an error whose text is tagwatch's own, safe to show as it is.
type notice string

func (n notice) Error() string { return string(n) }

// tokenError is a token server's refusal (GitLab's /jwt/auth, ACR's
// exchange): its status, and the server's host when the admin named it.
// Error quotes the start of the answer, for the debug log (Raw); Explain
// never shows it.
type tokenError struct {
	server string
	status int
	body   string
}

func newTokenError(server string, res *http.Response) *tokenError {
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxRaw))
	return &tokenError{server: server, status: res.StatusCode, body: strings.TrimSpace(string(b))}
}

func (e *tokenError) Error() string {
	return fmt.Sprintf("token server %s answered %d %s: %s", e.server, e.status, http.StatusText(e.status), e.body)
}

// protocolError is an answer tagwatch could not use (no token in it, not
// JSON): what was expected, never what came.
type protocolError string

func (e protocolError) Error() string { return string(e) }

// BlockedAddressError is a connection a test refused to open: the address
// is link-local or a cloud metadata service's (see TestTransport).
type BlockedAddressError struct{ Addr string }

func (e *BlockedAddressError) Error() string {
	return "refused to connect to " + e.Addr + ": a link-local or cloud metadata address"
}

func (e *CallError) target() string {
	target := e.Host
	if e.Repository != "" {
		target += "/" + e.Repository
		if e.Tag != "" {
			target += ":" + e.Tag
		}
	}
	return target
}

func (e *CallError) what() string { return e.Op + " " + e.target() + " via " + e.Instance }

func (e *CallError) problem() Problem {
	p := e.classify()
	facts := e.what()
	if e.Took > 0 {
		facts += " after " + roundDuration(e.Took)
	}
	if tech := e.technical(); tech != "" {
		facts += ": " + tech
	}
	p.Detail = p.Reason + " (" + facts + ")"
	return p
}

func (e *CallError) classify() Problem {
	p := e.classifyCause()
	// A refusal of the credentials an admin typed is where they learn which
	// form the service expects ("ICR expects the login iamapikey").
	if p.Class == ClassCredentials && !e.implicit && e.hint != "" {
		p.Reason += " " + e.hint + "."
	}
	return p
}

func (e *CallError) classifyCause() Problem {
	err := e.Err
	var n notice
	if errors.As(err, &n) {
		return Problem{Class: ClassTagwatch, Reason: string(n)}
	}
	if p, ok := e.limitProblem(); ok {
		return p
	}
	// A timeout at one of tagwatch's deadlines took that deadline's time,
	// whatever this one call took of it.
	took := e.Took
	var dl deadline
	if errors.As(err, &dl) {
		_, took = dl.Deadline()
	}
	if p, ok := NetProblem(err, e.waitedFor(), e.Instance, took, e.takesCAFile); ok {
		return p
	}
	if strings.Contains(err.Error(), "SSRF protection") {
		// go-containerregistry's own refusal of a redirect into a private network.
		return Problem{Class: ClassBlocked, Reason: fmt.Sprintf("Refused: %s redirected tagwatch to a private or link-local address (%s).", e.Host, e.Instance)}
	}
	if msg := err.Error(); strings.Contains(msg, "invalid realm in www-authenticate") && strings.Contains(msg, "private or link-local address") {
		// go-containerregistry's refusal of a challenge's token server:
		// a public registry's on a private address, or any registry's on
		// a link-local or cloud metadata one (realmAliases).
		return Problem{Class: ClassBlocked, Reason: fmt.Sprintf("Refused: %s named a token server on a private, link-local or cloud metadata address, which tagwatch does not send credentials to (%s).", e.Host, e.Instance)}
	}
	var te *transport.Error
	if errors.As(err, &te) {
		scheme := "https"
		if te.Request != nil && te.Request.URL != nil && te.Request.URL.Scheme == "http" {
			scheme = "http" // the scheme that answered: a LAN registry may speak plain HTTP
		}
		return e.statusProblem(te.StatusCode, e.who(te.Request), codes(te), scheme)
	}
	var tk *tokenError
	if errors.As(err, &tk) {
		return e.statusProblem(tk.status, "the token server "+tk.server, nil, "https")
	}
	if status, code, ok := cloudStatus(err); ok {
		return e.cloudProblem(status, code)
	}
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	var pe protocolError
	if errors.As(err, &se) || errors.As(err, &ue) || errors.As(err, &pe) {
		return Problem{Class: ClassProtocol, Reason: fmt.Sprintf("%s sent an answer tagwatch cannot read (%s). Is it a container registry?", e.Host, e.Instance)}
	}
	return Problem{Class: ClassOther, Reason: fmt.Sprintf("Could not %s %s (%s); the daemon's debug log has what was said.", e.Op, e.target(), e.Instance)}
}

// waitedFor names the server a timed-out call waited for: the registry, or
// the credential service or token server it needs first (their names are
// not quoted: a token server's is the registry's to choose).
func (e *CallError) waitedFor() string {
	if !errors.Is(e.Err, context.DeadlineExceeded) {
		return e.Host
	}
	var cs *credentialServiceError
	if errors.As(e.Err, &cs) {
		return "the cloud credential service"
	}
	var rte *RequestTimeoutError
	if errors.As(e.Err, &rte) && !strings.EqualFold(rte.Host, e.Host) && !strings.EqualFold(rte.Host, e.reqHost) {
		return "the token server of " + e.Host
	}
	return e.Host
}

// limitProblem explains the ends tagwatch puts to a registry that
// misbehaves (bounded.go, the wait for 429s): which bound it broke. The
// words are tagwatch's own; the limits are the admin's settings.
func (e *CallError) limitProblem() (Problem, bool) {
	err := e.Err
	var th *ThrottledError
	if errors.As(err, &th) && !errors.Is(err, context.Canceled) {
		why := "the deadline passed"
		if th.Cause != nil && th.Cause != context.DeadlineExceeded {
			why = th.Cause.Error() // the caller's deadline: "the image's 2m deadline passed"
		}
		advice := "tagwatch tries again at the next check."
		if e.hub && e.anonymous {
			advice = "Credentials for " + e.Instance + " raise Docker Hub's allowance."
		}
		return Problem{Class: ClassRateLimited, Status: http.StatusTooManyRequests,
			Reason: fmt.Sprintf("%s kept answering 429 Too Many Requests (%d times in a row); gave up waiting: %s (%s). %s", e.Host, th.Answers, why, e.Instance, advice)}, true
	}
	var bl *BodyLimitError
	if errors.As(err, &bl) {
		if bl.TagList {
			return Problem{Class: ClassLimit, Reason: fmt.Sprintf("%s: the tag list of %s exceeds %s (limits.taglist); stopped reading at page %d (%s).",
				e.Host, e.Repository, Bytes(bl.Limit), e.page, e.Instance)}, true
		}
		what := "an answer"
		if e.ourPath(bl.Path) {
			what = "the answer to " + bl.Path
		}
		return Problem{Class: ClassLimit, Reason: fmt.Sprintf("%s: %s exceeds %s; no registry answer is that large (%s).", e.Host, what, Bytes(bl.Limit), e.Instance)}, true
	}
	var tp *TagPagesError
	if errors.As(err, &tp) {
		return Problem{Class: ClassLimit, Reason: fmt.Sprintf("%s: the tag list of %s exceeds %d pages (limits.tagpages); its Link header goes on and on (%s).",
			e.Host, e.Repository, tp.Limit, e.Instance)}, true
	}
	var loop *RedirectLoopError
	if errors.As(err, &loop) {
		return Problem{Class: ClassLimit, Reason: fmt.Sprintf("%s redirected the request %d times without an answer (a redirect loop); gave up (%s).", e.Host, loop.Hops, e.Instance)}, true
	}
	return Problem{}, false
}

// NetProblem explains a failure below HTTP: a test's connection refused by
// tagwatch (link-local or metadata address), a cancellation, a timeout, TLS,
// a refused or reset connection, a name that does not resolve. host names
// the target as the admin wrote it and whose the instance or notifier; the
// words are the same for registries and notifiers. ok is false for any
// other error.
func NetProblem(err error, host, whose string, took time.Duration, takesCAFile bool) (p Problem, ok bool) {
	var blocked *BlockedAddressError
	if errors.As(err, &blocked) {
		return Problem{Class: ClassBlocked, Reason: fmt.Sprintf("Refused: %s is a link-local or cloud metadata address, which tests may not reach (%s). Set web.allowlinklocal: true to allow it.", blocked.Addr, whose)}, true
	}
	if errors.Is(err, context.Canceled) {
		return Problem{Class: ClassCanceled, Reason: fmt.Sprintf("Canceled: stopped before %s answered (%s).", host, whose)}, true
	}
	// The proxy is the admin's own setting, so its address may be quoted;
	// what failed is the way there, not the registry. A proxy's refusal of
	// CONNECT comes back as its status text alone: quoted only when it is
	// a standard one.
	var pe *ProxyError
	if errors.As(err, &pe) && errors.Is(err, context.DeadlineExceeded) {
		return Problem{Class: ClassTimeout, Reason: fmt.Sprintf("Timed out after %s waiting for %s through the proxy at %s (%s).", roundDuration(took), host, pe.Proxy, whose)}, true
	}
	if errors.As(err, &pe) {
		why := "it failed"
		var dial *net.OpError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			why = "nothing listens there"
		case errors.As(err, &dial) && dial.Timeout():
			why = "it timed out"
		default:
			for code := 400; code < 600; code++ {
				if txt := http.StatusText(code); txt != "" && (pe.Err.Error() == txt || strings.HasSuffix(pe.Err.Error(), ": "+txt)) {
					why = fmt.Sprintf("it answered %d %s", code, txt)
					break
				}
			}
		}
		return Problem{Class: ClassNetwork, Reason: fmt.Sprintf("Could not reach %s through the proxy at %s: %s (%s). Check the proxy setting, and that the proxy allows %s.", host, pe.Proxy, why, whose, host)}, true
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return Problem{Class: ClassTimeout, Reason: fmt.Sprintf("Timed out after %s waiting for %s (%s).", roundDuration(took), host, whose)}, true
	}
	if p, ok := tlsProblem(err, host, whose, takesCAFile); ok {
		return p, true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return Problem{Class: ClassRefused, Reason: fmt.Sprintf("Connection refused: nothing listens on %s (%s). Check the url, and that the server runs.", host, whose)}, true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if strings.EqualFold(dns.Name, hostname(host)) {
			return Problem{Class: ClassDNS, Reason: fmt.Sprintf("No such host: %s does not resolve (%s). Check the name.", hostname(host), whose)}, true
		}
		// Another name, e.g. a token server the registry named: not quoted.
		return Problem{Class: ClassDNS, Reason: fmt.Sprintf("A server %s sent tagwatch to has a name that does not resolve (%s).", host, whose)}, true
	}
	if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return Problem{Class: ClassNetwork, Reason: fmt.Sprintf("%s is unreachable from here: no route (%s).", host, whose)}, true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		return Problem{Class: ClassNetwork, Reason: fmt.Sprintf("%s closed the connection before answering (%s).", host, whose)}, true
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return Problem{Class: ClassTLS, Reason: fmt.Sprintf("TLS: %s answered in plain HTTP (%s); write its url with http://.", host, whose)}, true
	}
	return Problem{}, false
}

func tlsProblem(err error, host, whose string, takesCAFile bool) (Problem, bool) {
	p := Problem{Class: ClassTLS}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.As(err, &ua):
		fix := "set cafile to the PEM of the CA that signed it"
		if !takesCAFile {
			fix = "this machine's CA certificates do not trust it"
		}
		p.Reason = fmt.Sprintf("TLS: %s presented a certificate from an unknown authority (%s); %s.", host, whose, fix)
	case errors.As(err, &he):
		p.Reason = fmt.Sprintf("TLS: the certificate of %s is not valid for %s (%s). Check the url's host name.", host, hostname(host), whose)
	case errors.As(err, &ci):
		what := "is not valid"
		if ci.Reason == x509.Expired {
			what = "has expired or is not valid yet"
		}
		p.Reason = fmt.Sprintf("TLS: the certificate of %s %s (%s).", host, what, whose)
	case errors.As(err, &rh):
		p.Reason = fmt.Sprintf("TLS: %s does not speak HTTPS (%s); write its url with http:// if it serves plain HTTP.", host, whose)
	case errors.As(err, &ae):
		p.Reason = fmt.Sprintf("TLS: %s refused the handshake (%s).", host, whose)
	default:
		return Problem{}, false
	}
	return p, true
}

// statusProblem explains an HTTP status from who (the registry host, or
// its token server).
func (e *CallError) statusProblem(status int, who string, codes []string, scheme string) Problem {
	p := Problem{Status: status}
	has := func(c string) bool { return slices.Contains(codes, c) }
	switch {
	case status == http.StatusUnauthorized || (status == http.StatusForbidden && e.anonymous):
		p.Class = ClassCredentials
		switch {
		case e.implicit && len(e.outside) > 0:
			p.Reason = fmt.Sprintf("%s requires credentials (%d), and %s %s only other repositories. Add %s to the repositories of the one that may pull it.",
				e.Host, status, andList(e.outside), map[bool]string{true: "serves", false: "serve"}[len(e.outside) == 1], e.Repository)
		case e.implicit:
			p.Reason = fmt.Sprintf("%s requires credentials (%d). Configure a registry with url: %s://%s and its login.", e.Host, status, scheme, e.Host)
		case e.anonymous:
			p.Reason = fmt.Sprintf("%s requires credentials, and %s has none (%d). Give %s credentials in the config file or Settings → Registries.", e.Host, e.Instance, status, e.Instance)
		default:
			p.Reason = fmt.Sprintf("%s refused the credentials of %s (%d). Check %s.", who, e.Instance, status, andList(e.credentials))
		}
	case status == http.StatusForbidden:
		p.Class = ClassDenied
		what := e.Host
		if e.Repository != "" {
			what = e.Repository + " on " + e.Host
		}
		p.Reason = fmt.Sprintf("%s denied %s access to %s (403). Check that its credentials may pull it.", who, e.Instance, what)
	case status == http.StatusNotFound:
		p.Class = ClassNotFound
		switch {
		case who != e.Host:
			p.Reason = fmt.Sprintf("404: %s has no token endpoint there (%s).", who, e.Instance)
		case e.Repository == "":
			p.Reason = fmt.Sprintf("404: %s has no registry API at /v2/ (%s). Check url.", e.Host, e.Instance)
		case has("NAME_UNKNOWN") || (e.Tag == "" && e.Digest == ""):
			p.Reason = fmt.Sprintf("404: no such repository %s on %s (%s).", e.Repository, e.Host, e.Instance)
		case e.Digest != "":
			p.Reason = fmt.Sprintf("404: no manifest %s in %s (or no such repository) on %s (%s).", shortDigest(e.Digest), e.Repository, e.Host, e.Instance)
		case has("MANIFEST_UNKNOWN"):
			p.Reason = fmt.Sprintf("404: no tag %s in %s on %s (%s).", e.Tag, e.Repository, e.Host, e.Instance)
		default:
			p.Reason = fmt.Sprintf("404: no tag %s in %s (or no such repository) on %s (%s).", e.Tag, e.Repository, e.Host, e.Instance)
		}
	case status == http.StatusTooManyRequests:
		p.Class = ClassRateLimited
		advice := "tagwatch waits and tries again at the next check."
		if e.hub && e.anonymous {
			advice = "Credentials for " + e.Instance + " raise Docker Hub's allowance."
		}
		p.Reason = fmt.Sprintf("%s is rate-limiting %s (429). %s", who, e.Instance, advice)
	case status >= 500:
		p.Class = ClassServer
		p.Reason = fmt.Sprintf("%s failed with a server error (%d %s) for %s. Try again later.", who, status, http.StatusText(status), e.Instance)
	default:
		p.Class = ClassStatus
		p.Reason = fmt.Sprintf("%s answered %d %s when tagwatch tried to %s %s (%s).", who, status, http.StatusText(status), e.Op, e.target(), e.Instance)
	}
	return p
}

// who names the server a request went to: the registry's host, or its
// token server. The token server's name is the registry's to choose, so it
// is not quoted.
func (e *CallError) who(r *http.Request) string {
	if r == nil || r.URL == nil || strings.EqualFold(r.URL.Host, e.Host) || strings.EqualFold(r.URL.Host, e.reqHost) {
		return e.Host
	}
	return "the token server of " + e.Host
}

// technical says what went wrong in terms an admin can search for, built
// only from what tagwatch itself knows (its request, the status, the
// registry's standard error codes).
func (e *CallError) technical() string {
	err := e.Err
	var rte *RequestTimeoutError
	if errors.As(err, &rte) {
		got := "no answer came"
		if rte.BodyRead >= 0 {
			got = "headers and " + Bytes(rte.BodyRead) + " of the body arrived"
		}
		s := got + " within the " + Duration(rte.Limit) + " request deadline (limits.request)"
		if e.ourPath(rte.Path) {
			s = rte.Method + " " + rte.Path + ": " + s
		}
		return s
	}
	var dl deadline
	if errors.As(err, &dl) {
		return dl.Error() // the watcher's image or cycle deadline: tagwatch's own words
	}
	var te *transport.Error
	if errors.As(err, &te) {
		s := fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
		switch r := te.Request; {
		case r != nil && r.URL != nil && e.who(r) == e.Host && e.ourPath(r.URL.Path):
			s = r.Method + " " + r.URL.Path + " answered " + s
		case r != nil && r.URL != nil && !strings.HasPrefix(r.URL.Path, "/v2/"):
			s = "the token request answered " + s
		default:
			s = "the request answered " + s
		}
		if c := codes(te); len(c) > 0 {
			s += " [" + strings.Join(c, ", ") + "]"
		}
		return s
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		what := "connection"
		if errors.Is(err, syscall.ECONNREFUSED) {
			what = "connection refused"
		}
		return op.Op + " " + op.Addr.String() + ": " + what
	}
	var tk *tokenError
	if errors.As(err, &tk) {
		return fmt.Sprintf("token server %s answered %d %s", tk.server, tk.status, http.StatusText(tk.status))
	}
	var pe protocolError
	if errors.As(err, &pe) {
		return string(pe)
	}
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	if e.page > 0 && (errors.As(err, &se) || errors.As(err, &ue)) {
		return fmt.Sprintf("page %d of the tag list is not valid JSON", e.page)
	}
	return ""
}

// ourPath reports whether a failed request's path is one tagwatch built
// from the admin's own names: a token realm, a redirect or a pagination
// link are the registry's to choose, and are not quoted.
func (e *CallError) ourPath(p string) bool {
	if p == "/v2/" {
		return true
	}
	if e.Repository == "" {
		return false
	}
	rest, ok := strings.CutPrefix(p, "/v2/"+e.Repository+"/")
	if !ok {
		return false
	}
	if rest == "tags/list" {
		return true
	}
	ref, ok := strings.CutPrefix(rest, "manifests/")
	return ok && ((e.Tag != "" && ref == e.Tag) || digestRef.MatchString(ref))
}

var digestRef = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// knownCodes are the error codes of the distribution spec: a registry's
// code is quoted only when it is one of these.
var knownCodes = []string{
	"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
	"MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID",
	"TAG_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS", "UNKNOWN", "UNAVAILABLE",
}

func codes(te *transport.Error) []string {
	var out []string
	for _, d := range te.Errors {
		if c := string(d.Code); slices.Contains(knownCodes, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// cloudStatus finds the HTTP status in a cloud SDK's error (AWS, Azure,
// Google's OAuth2), whose messages quote the service's answer, and the
// API's error code when it has one (AWS: UnrecognizedClientException).
func cloudStatus(err error) (status int, code string, ok bool) {
	var aws interface{ HTTPStatusCode() int }
	var api interface{ ErrorCode() string }
	var az *azcore.ResponseError
	var azid *azidentity.AuthenticationFailedError
	var g *oauth2.RetrieveError
	switch {
	case errors.As(err, &azid) && azid.RawResponse != nil:
		return azid.RawResponse.StatusCode, "", true
	case errors.As(err, &az):
		return az.StatusCode, "", true
	case errors.As(err, &g) && g.Response != nil:
		return g.Response.StatusCode, "", true
	case errors.As(err, &aws):
		if errors.As(err, &api) && apiCode.MatchString(api.ErrorCode()) {
			code = api.ErrorCode()
		}
		return aws.HTTPStatusCode(), code, true
	}
	return 0, "", false
}

// apiCode is the shape of a cloud API's error code: quoted only when it
// has it (a code, not a message).
var apiCode = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]{0,63}$`)

// cloudProblem explains a cloud credential service's refusal: 400, 401 and
// 403 there mean the credentials are wrong (AWS answers a bad key with 400).
func (e *CallError) cloudProblem(status int, code string) Problem {
	what := strconv.Itoa(status)
	if code != "" {
		what += " " + code
	}
	switch {
	case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Problem{Class: ClassCredentials, Status: status,
			Reason: fmt.Sprintf("The cloud credential service refused the credentials of %s (%s). Check %s.", e.Instance, what, andList(e.credentials))}
	case status == http.StatusTooManyRequests:
		return Problem{Class: ClassRateLimited, Status: status,
			Reason: fmt.Sprintf("The cloud credential service is rate-limiting %s (%s). tagwatch tries again at the next check.", e.Instance, what)}
	case status >= 500:
		return Problem{Class: ClassServer, Status: status,
			Reason: fmt.Sprintf("The cloud credential service failed with a server error (%s) for %s. Try again later.", what, e.Instance)}
	}
	return Problem{Class: ClassStatus, Status: status,
		Reason: fmt.Sprintf("The cloud credential service answered %s to %s.", what, e.Instance)}
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func andList(names []string) string {
	switch len(names) {
	case 0:
		return "its credentials"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// userinfo matches the user:password@ of a URL in free text, up to the last
// @ before a space or quote, so that a password holding / or @ goes too.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s"'<>` + "`" + `]*@`)

// RedactUserinfo replaces the userinfo of every URL in s with ***: an
// error that quotes a URL (Go's url errors do) must not show its password.
func RedactUserinfo(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}***@")
}
