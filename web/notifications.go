package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// Notifiers is what the web needs of the running notifiers: their settings
// (no secrets), their state and outbox, a test message and a retry on
// demand, and replacing the set when a notifier is saved or deleted in
// the UI. *notify.Notifiers implements it.
type Notifiers interface {
	Specs() []*notify.Spec
	Status() []notify.Status
	Test(ctx context.Context, name string) error
	Apply(specs []*notify.Spec) error
	Outbox(name string) ([]store.OutboxMessage, error)
	Retry(name string) (int, error)
}

// outboxOnTile is how many outbox messages a tile lists; the API lists all.
const outboxOnTile = 5

// notifierTestTimeout bounds a test message, whatever the receiver does.
const notifierTestTimeout = 20 * time.Second

// notifierTest is the outcome of the last test of a notifier. It lives in
// memory, like the counters.
// Like a registry's, it reports a status, a short reason and the time
// taken; never what the receiver answered.
type notifierTest struct {
	TestedAt time.Time        `json:"testedAt"`
	OK       bool             `json:"ok"`
	Status   int              `json:"status,omitempty"`
	Class    registries.Class `json:"class,omitempty"`
	Error    string           `json:"error,omitempty"`
	TookMS   int64            `json:"tookMs"`
}

// notifierTests remembers the last test of each notifier.
type notifierTests struct {
	mu   sync.Mutex
	last map[string]notifierTest
}

func (t *notifierTests) set(name string, v notifierTest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]notifierTest{}
	}
	t.last[name] = v
}

func (t *notifierTests) drop(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.last, name)
}

func (t *notifierTests) get(name string) *notifierTest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.last[name]; ok {
		return &v
	}
	return nil
}

// notifierView is a notifier in the API and on its tile. URL is redacted;
// the counters start at zero with the process.
type notifierView struct {
	notify.Status
	Service  string `json:"service"` // ntfy, gotify, …, webhook, apprise
	Source   string `json:"source"`  // "file" (config file or environment) or "ui"
	ReadOnly bool   `json:"readOnly"`
	// Active is false for a notifier saved in the UI that is not running:
	// its saved settings no longer validate.
	Active    bool          `json:"active"`
	Threshold string        `json:"threshold"`
	Images    string        `json:"images,omitempty"` // the image filter; "" is every image
	Digest    *bool         `json:"digest,omitempty"` // nil follows the threshold
	Batch     bool          `json:"batch"`
	Test      *notifierTest `json:"test,omitempty"`
	// NeedsSecrets names saved secrets (the url) this daemon's key cannot
	// decrypt: enter them again.
	NeedsSecrets []string `json:"needsSecrets,omitempty"`
	// Outbox are the tile's first waiting or failed messages.
	Outbox     []outboxLine `json:"-"`
	OutboxMore int          `json:"-"`
}

// outboxLine is one outbox message on a tile.
type outboxLine struct {
	store.OutboxMessage
	Summary string
}

// summary says what a message announces, in a line.
func summary(m store.OutboxMessage) string {
	if len(m.Updates) == 0 {
		return "(no update)"
	}
	e := m.Updates[0]
	s := e.Reference + " → " + e.ToTag
	if e.Update == "digest" {
		s = e.Reference + ": new digest " + shortDigest(e.ToDigest)
	}
	if n := len(m.Updates); n > 1 {
		s = fmt.Sprintf("%d updates: %s, …", n, s)
	}
	return s
}

// serviceOf names the service a notifier speaks to: its type for the
// webhook and Apprise, else its url's scheme (ntfy, gotify, discord, …).
func serviceOf(typ, redacted string) string {
	if typ == notify.TypeWebhook || typ == notify.TypeApprise {
		return typ
	}
	if scheme, _, ok := strings.Cut(redacted, "://"); ok && scheme != "" {
		return strings.ToLower(scheme)
	}
	return typ
}

// serviceTitles are the services' names on the tiles.
var serviceTitles = map[string]string{
	"ntfy": "ntfy", "gotify": "Gotify", "discord": "Discord", "slack": "Slack", "telegram": "Telegram",
	"pushover": "Pushover", "matrix": "Matrix", "smtp": "Email (SMTP)", "teams": "Microsoft Teams",
	"webhook": "Webhook (JSON)", "apprise": "Apprise API",
}

func serviceTitle(service string) string {
	if t, ok := serviceTitles[service]; ok {
		return t
	}
	return service
}

// listNotifiers joins each notifier's settings and state: the config
// file's, then the UI's (by name), then those saved in the UI that are not
// running.
func (s *Server) listNotifiers() ([]notifierView, error) {
	recs, err := s.Store.Notifiers()
	if err != nil {
		return nil, err
	}
	status := map[string]notify.Status{}
	for _, st := range s.Notifiers.Status() {
		status[st.Name] = st
	}
	specs := s.Notifiers.Specs()
	out := make([]notifierView, 0, len(specs))
	running := map[string]bool{}
	for _, sp := range specs {
		running[sp.Name] = true
		st, ok := status[sp.Name]
		if !ok {
			st = notify.Status{Name: sp.Name, Type: sp.Type, URL: sp.Redacted()}
		}
		src := "file"
		if sp.Source == notify.SourceUI {
			src = "ui"
		}
		v := notifierView{
			Status:    st,
			Service:   serviceOf(sp.Type, st.URL),
			Source:    src,
			ReadOnly:  src == "file",
			Active:    true,
			Threshold: sp.Threshold,
			Images:    sp.Images(),
			Digest:    sp.Digest,
			Batch:     sp.Batch,
			Test:      s.notifierTests.get(sp.Name),
		}
		if st.Queued+st.Undelivered > 0 {
			msgs, err := s.Notifiers.Outbox(sp.Name)
			if err != nil {
				return nil, err
			}
			for i, m := range msgs {
				if i == outboxOnTile {
					v.OutboxMore = len(msgs) - i
					break
				}
				v.Outbox = append(v.Outbox, outboxLine{OutboxMessage: m, Summary: summary(m)})
			}
		}
		out = append(out, v)
	}
	for _, rec := range recs {
		if running[rec.Name] {
			continue
		}
		redacted := notify.RedactURL(rec.Secrets["url"])
		typ := rec.Settings["type"]
		out = append(out, notifierView{
			Status:       notify.Status{Name: rec.Name, Type: typ, URL: redacted},
			Service:      serviceOf(typ, redacted),
			Source:       "ui",
			Threshold:    rec.Settings["threshold"],
			Images:       rec.Settings["images"],
			Batch:        rec.Settings["batch"] == "true",
			NeedsSecrets: rec.Unreadable,
		})
	}
	return out, nil
}

// errNoNotifiers answers when the server was built without notifiers.
var errNoNotifiers = &opError{Status: http.StatusServiceUnavailable, Msg: "notifications are not available in this server"}

// testNotifier sends a test message through a notifier and records the
// outcome for its tile. An unknown name is a 404 opError; a failed send
// comes back as a notifierTest, its error free of the url's secrets.
func (s *Server) testNotifier(ctx context.Context, name string) (notifierTest, error) {
	if s.Notifiers == nil {
		return notifierTest{}, errNoNotifiers
	}
	known := false
	for _, sp := range s.Notifiers.Specs() {
		known = known || sp.Name == name
	}
	if !known {
		if recs, err := s.Store.Notifiers(); err == nil && findNotifier(recs, name) != nil {
			return notifierTest{}, &opError{Status: http.StatusConflict, Msg: "notifier " + name + " is not running: its saved settings no longer validate; edit it"}
		}
		return notifierTest{}, &opError{Status: http.StatusNotFound, Msg: "no notifier is named " + name}
	}
	ctx, cancel := context.WithTimeout(ctx, notifierTestTimeout)
	defer cancel()
	start := time.Now()
	err := s.Notifiers.Test(ctx, name)
	if errors.Is(err, notify.ErrUnknown) {
		return notifierTest{}, &opError{Status: http.StatusNotFound, Msg: "no notifier is named " + name}
	}
	res := notifierTest{TestedAt: time.Now().UTC(), OK: err == nil, TookMS: time.Since(start).Milliseconds()}
	if err != nil {
		res.Error = err.Error()
		var se *notify.SendError
		if errors.As(err, &se) {
			res.Status, res.Class = se.Status, se.Class
		}
		s.Log.Warn("notifier test failed", "notifier", name, "err", res.Error)
	}
	s.notifierTests.set(name, res)
	return res, nil
}

// ---- Page ----

type notificationsPage struct {
	base
	Available bool
	Tiles     []notifierView
}

func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request) {
	p := notificationsPage{base: base{Title: "Notifications", Page: "settings"}, Available: s.Notifiers != nil}
	if p.Available {
		tiles, err := s.listNotifiers()
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		p.Tiles = tiles
	}
	q := r.URL.Query()
	if name := q.Get("saved"); name != "" && checkName(name) == "" {
		p.Flash = "Saved " + name + ": it announces the next updates."
	}
	if name := q.Get("deleted"); name != "" && checkName(name) == "" {
		p.Flash = "Deleted " + name + "."
	}
	if name := q.Get("retried"); name != "" && checkName(name) == "" {
		p.Flash = "Retrying the notifications of " + name + " now."
	}
	if name := q.Get("tested"); name != "" {
		for _, t := range p.Tiles {
			if t.Name != name || t.Test == nil {
				continue
			}
			p.Flash = "Tested " + name + ": the test message was sent."
			if !t.Test.OK {
				p.Flash = "Tested " + name + ": the test message was not sent; its tile says why."
			}
		}
	}
	s.render(w, http.StatusOK, "notifications", p)
}

// testNotifierForm is the tile's Test button, without JavaScript.
func (s *Server) testNotifierForm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.testNotifier(r.Context(), name); err != nil {
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings/notifications?tested="+url.QueryEscape(name)+"#notifier-"+url.PathEscape(name), http.StatusSeeOther)
}

// ---- API ----

func (s *Server) apiListNotifiers(w http.ResponseWriter, r *http.Request) {
	if s.Notifiers == nil {
		s.fail(w, r, errNoNotifiers)
		return
	}
	list, err := s.listNotifiers()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]notifierView{"notifiers": list})
}

// apiTestNotifier answers 200 {"ok": true} when the test message was sent,
// 502 {"error": "..."} when the receiver failed.
func (s *Server) apiTestNotifier(w http.ResponseWriter, r *http.Request) {
	res, err := s.testNotifier(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !res.OK {
		writeJSON(w, http.StatusBadGateway, res)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// ---- Outbox ----

// knownNotifier answers an opError unless name is a running notifier, or
// (when saved is true) one saved in the UI that is not running.
func (s *Server) knownNotifier(name string, saved bool) error {
	if s.Notifiers == nil {
		return errNoNotifiers
	}
	for _, sp := range s.Notifiers.Specs() {
		if sp.Name == name {
			return nil
		}
	}
	if recs, err := s.Store.Notifiers(); err == nil && findNotifier(recs, name) != nil {
		if saved {
			return nil
		}
		return &opError{Status: http.StatusConflict, Msg: "notifier " + name + " is not running: its saved settings no longer validate; edit it"}
	}
	return &opError{Status: http.StatusNotFound, Msg: "no notifier is named " + name}
}

// apiNotifierOutbox lists a notifier's waiting and failed messages.
func (s *Server) apiNotifierOutbox(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.knownNotifier(name, true); err != nil {
		s.fail(w, r, err)
		return
	}
	msgs, err := s.Notifiers.Outbox(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]store.OutboxMessage{"messages": msgs})
}

// retryNotifier is Retry now: every message of the notifier's outbox is
// tried at once, failed ones included.
func (s *Server) retryNotifier(name string) (int, error) {
	if err := s.knownNotifier(name, false); err != nil {
		return 0, err
	}
	n, err := s.Notifiers.Retry(name)
	if errors.Is(err, notify.ErrUnknown) {
		return 0, &opError{Status: http.StatusNotFound, Msg: "no notifier is named " + name}
	}
	return n, err
}

func (s *Server) apiRetryNotifier(w http.ResponseWriter, r *http.Request) {
	n, err := s.retryNotifier(r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"messages": n})
}

// retryNotifierForm is the tile's Retry now button, without JavaScript.
func (s *Server) retryNotifierForm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.retryNotifier(name); err != nil {
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings/notifications?retried="+url.QueryEscape(name)+"#notifier-"+url.PathEscape(name), http.StatusSeeOther)
}
