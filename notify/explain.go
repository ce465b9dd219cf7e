package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/util/jsonclient"

	"github.com/tagwatch/tagwatch/registries"
)

// SendError is a failed send as people read it: a status when the receiver
// answered one, a short reason that names the receiver and says what to do,
// the time taken. It never quotes what the receiver sent back (issue 11: a
// test reports, it does not relay); that goes to the debug log (Raw).
type SendError struct {
	Class  registries.Class
	Status int
	Reason string
	Took   time.Duration
	raw    string // what was said, scrubbed of the url's secrets and cut
	perm   bool   // another try will not help (a 4xx answer)
}

func (e *SendError) Error() string { return e.Reason }

// Raw is what the receiver and the library said, for the debug log: cut to
// 512 bytes, the url's secrets removed.
func (e *SendError) Raw() string { return e.raw }

// statusError is a webhook or Apprise answer that is not 2xx. Error quotes
// the start of the body, for the debug log only.
type statusError struct {
	status  int
	snippet string
}

func (e *statusError) Error() string {
	if e.snippet == "" {
		return fmt.Sprintf("answered %d %s", e.status, http.StatusText(e.status))
	}
	return fmt.Sprintf("answered %d %s: %s", e.status, http.StatusText(e.status), e.snippet)
}

// statusInText finds an HTTP error status in a shoutrrr service's error,
// whose wording varies by service and may quote the receiver's body.
var statusInText = regexp.MustCompile(`\b([45][0-9][0-9])\b`)

// target is how a reason names the receiver: the url's host, or the
// service when the host holds a key (discord://…@WEBHOOKID).
func (s *Spec) target() string {
	if s.url == nil {
		return s.Name
	}
	scheme, _, _ := strings.Cut(strings.ToLower(s.url.Scheme), "+")
	if s.url.Host == "" || hostIsKey[scheme] || strings.Contains(s.redact.url, "://"+masked+"@"+masked) {
		return scheme
	}
	return s.url.Host
}

// explain classifies a failed send.
func (s *Spec) explain(err error, took time.Duration) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	e := &SendError{Took: took, raw: truncate(s.redact.scrub(err.Error()), 512)}
	var perm permanent
	e.perm = errors.As(err, &perm)
	who := "notifier " + s.Name
	target := s.target()
	if p, ok := registries.NetProblem(err, target, who, took, false); ok {
		e.Class, e.Reason = p.Class, p.Reason
		return e
	}
	var st *statusError
	var je jsonclient.Error
	status := 0
	switch {
	case errors.As(err, &st):
		status = st.status
	case errors.As(err, &je) && je.StatusCode != 0:
		status = je.StatusCode // shoutrrr's JSON services (ntfy, …)
	default:
		if m := statusInText.FindStringSubmatch(err.Error()); m != nil {
			status, _ = strconv.Atoi(m[1])
		}
	}
	e.Status = status
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Class = registries.ClassCredentials
		e.Reason = fmt.Sprintf("%s refused the message of %s (%d). Check the token or password in its url.", target, who, status)
	case status == http.StatusNotFound:
		e.Class = registries.ClassNotFound
		e.Reason = fmt.Sprintf("404: %s has nothing at that url (%s). Check the url's path.", target, who)
	case status == http.StatusTooManyRequests:
		e.Class = registries.ClassRateLimited
		e.Reason = fmt.Sprintf("%s is rate-limiting %s (429). Try again later.", target, who)
	case status >= 500:
		e.Class = registries.ClassServer
		e.Reason = fmt.Sprintf("%s failed with a server error (%d %s) for %s. Try again later.", target, status, http.StatusText(status), who)
	case status >= 300 && status < 400:
		e.Class = registries.ClassStatus
		e.Reason = fmt.Sprintf("%s answered %d %s, a redirect tagwatch does not follow (%s). Check the url.", target, status, http.StatusText(status), who)
	case status >= 400:
		e.Class = registries.ClassStatus
		e.Reason = fmt.Sprintf("%s refused the message of %s (%d %s). Check the url and its settings.", target, who, status, http.StatusText(status))
	default:
		e.Class = registries.ClassOther
		e.Reason = fmt.Sprintf("%s did not take the message of %s; the daemon's debug log has what it said.", target, who)
	}
	return e
}

// checkTestHost refuses a test of a shoutrrr service whose url host
// resolves to a link-local or cloud metadata address. shoutrrr's services
// dial with their own HTTP clients, so this check runs before the send,
// not at dial time as the webhook's does; a name that changes its address
// in between is not caught (see README, Security).
func checkTestHost(ctx context.Context, s *Spec) error {
	if s.url == nil || s.url.Hostname() == "" {
		return nil
	}
	host := s.url.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if registries.BlockedIP(ip) {
			return &registries.BlockedAddressError{Addr: ip.String()}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // an id in the host (discord://…@ID), or a name the send will fail on with its own error
	}
	for _, a := range addrs {
		if registries.BlockedIP(a) {
			return &registries.BlockedAddressError{Addr: a.Unmap().String()}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
