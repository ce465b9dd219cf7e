package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/format"
	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/tagwatch/tagwatch/registries"
)

// sender delivers one message, once: retries are the caller's.
type sender interface {
	send(ctx context.Context, m message) error
}

// lazyInit are the shoutrrr services whose set-up goes on the wire (matrix
// logs in): they are set up on the first send, not at load time.
var lazyInit = map[string]bool{"matrix": true}

// noTitle are the shoutrrr services with no title setting: the title goes
// on the message's first line.
var noTitle = map[string]bool{
	"googlechat": true, "hangouts": true, "rocketchat": true, "signal": true, "wecom": true,
	"pagerduty": true, "logger": true, "notifiarr": true,
}

// shoutrrrSender sends through one shoutrrr service.
type shoutrrrSender struct {
	scheme string
	url    *url.URL
	logger types.StdLogger

	// mu serializes sends: some services keep per-message settings (the
	// title) in their config, and a Test may run beside the worker.
	mu      sync.Mutex
	svc     types.Service
	ready   bool
	noTitle bool
}

// newShoutrrr makes the service for u and sets it up, which parses and
// checks the url; services in lazyInit are only checked for a host.
func newShoutrrr(u *url.URL, logger types.StdLogger) (*shoutrrrSender, error) {
	var r router.ServiceRouter
	scheme, _, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	svc, err := r.NewService(scheme)
	if err != nil {
		return nil, fmt.Errorf("unknown service %q (shoutrrr's services: ntfy, gotify, discord, slack, telegram, pushover, matrix, smtp, …; http(s) urls need type: webhook or apprise)", scheme)
	}
	cfgURL := cloneURL(u)
	if !strings.EqualFold(u.Scheme, scheme) {
		custom, ok := svc.(types.CustomURLService)
		if !ok {
			return nil, fmt.Errorf("service %s takes no custom %s:// url", scheme, u.Scheme)
		}
		if cfgURL, err = custom.GetConfigURLFromCustom(cfgURL); err != nil {
			return nil, fmt.Errorf("%s url: %v", scheme, err)
		}
	}
	s := &shoutrrrSender{scheme: scheme, url: cfgURL, logger: logger, svc: svc, noTitle: noTitle[scheme]}
	if lazyInit[scheme] {
		if cfgURL.Host == "" {
			return nil, fmt.Errorf("%s url has no host", scheme)
		}
		return s, nil
	}
	if err := s.init(); err != nil {
		return nil, err
	}
	return s, nil
}

// init sets the service up from its url; called with mu held, or before
// the sender is shared.
func (s *shoutrrrSender) init() error {
	if err := s.svc.Initialize(cloneURL(s.url), s.logger); err != nil {
		return fmt.Errorf("%s url: %v", s.scheme, err)
	}
	s.ready = true
	return nil
}

func (s *shoutrrrSender) send(ctx context.Context, m message) error {
	done := make(chan error, 1)
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			done <- err
			return
		}
		if !s.ready {
			if err := s.init(); err != nil {
				done <- err
				return
			}
		}
		err := s.sendLocked(m)
		if err != nil && !s.noTitle && errors.Is(err, format.ErrInvalidConfigKey) {
			// A service without a title setting: say it in the text.
			s.noTitle = true
			err = s.sendLocked(m)
		}
		done <- err
	}()
	// shoutrrr's Send takes no context: on cancel, the send goes on in the
	// background (each service has its own timeout) and holds mu until then.
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *shoutrrrSender) sendLocked(m message) error {
	params := types.Params{}
	text := m.Body
	if s.noTitle {
		text = m.Title + "\n\n" + m.Body
	} else {
		params.SetTitle(m.Title)
	}
	return s.svc.Send(text, &params)
}

func cloneURL(u *url.URL) *url.URL {
	c := *u
	if u.User != nil {
		uc := *u.User
		c.User = &uc
	}
	return &c
}

// Payload is the JSON body a webhook notifier POSTs.
type Payload struct {
	Notifier string `json:"notifier"`
	Title    string `json:"title"`
	Body     string `json:"body"`
	Test     bool   `json:"test"`
	Updates  []Item `json:"updates"`
}

// httpSender POSTs to a webhook or an Apprise API url.
type httpSender struct {
	apprise    bool
	target     string // the url without userinfo
	user, pass string
	basic      bool
	client     *http.Client
}

func newHTTPSender(typ string, u *url.URL, client *http.Client) *httpSender {
	s := &httpSender{apprise: typ == TypeApprise, client: client}
	c := cloneURL(u)
	if c.User != nil {
		s.user = c.User.Username()
		s.pass, _ = c.User.Password()
		s.basic = true
		c.User = nil
	}
	s.target = c.String()
	return s
}

// newHTTPClient is the client webhook and Apprise notifiers share unless
// Options gives one: a timeout on every stage, and no redirects (a POST
// turned into a GET is not a delivery). A test's client (guard) refuses
// link-local and cloud metadata addresses when it connects.
func newHTTPClient(timeout time.Duration, guard bool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	proxy := http.ProxyFromEnvironment
	if guard {
		dialer = registries.GuardDialer(dialer)
		proxy = registries.GuardProxy(proxy)
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 proxy,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   2,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (s *httpSender) send(ctx context.Context, m message) error {
	var body any
	if s.apprise {
		body = map[string]string{"title": m.Title, "body": m.Body, "type": "info", "format": "text"}
	} else {
		body = Payload{Notifier: m.Notifier, Title: m.Title, Body: m.Body, Test: m.Test, Updates: m.Items}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tagwatch")
	if s.basic {
		req.SetBasicAuth(s.user, s.pass)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 == 2 {
		return nil
	}
	// The snippet is for the debug log only (SendError.Raw): the reason
	// people read names the status, never what the receiver wrote.
	err = &statusError{status: res.StatusCode, snippet: strings.Join(strings.Fields(string(snippet)), " ")}
	if res.StatusCode/100 == 4 && res.StatusCode != http.StatusRequestTimeout && res.StatusCode != http.StatusTooManyRequests {
		// The receiver refused the request itself: another try won't do.
		return permanent{err}
	}
	return err
}

// stdLogger hands shoutrrr's progress messages to slog at debug level,
// scrubbed of the url's secrets.
type stdLogger struct {
	log    *slog.Logger
	name   string
	redact redactor
}

func (l stdLogger) Print(args ...any) { l.out(fmt.Sprint(args...)) }
func (l stdLogger) Printf(format string, args ...any) {
	l.out(fmt.Sprintf(format, args...))
}
func (l stdLogger) Println(args ...any) { l.out(fmt.Sprintln(args...)) }

func (l stdLogger) out(msg string) {
	l.log.Debug("shoutrrr: "+strings.TrimSpace(l.redact.scrub(msg)), "notifier", l.name)
}
