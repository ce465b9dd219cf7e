package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
)

// hookReceiver is a webhook endpoint on a fixed loopback address that can
// be stopped and started again. It counts the requests that reached it and
// the messages it accepted (answered 204); while hold is set it answers
// nothing, until the sender goes away.
type hookReceiver struct {
	t    *testing.T
	addr string
	srv  *httptest.Server

	mu       sync.Mutex
	hold     bool
	seen     int
	accepted []notify.Payload
	arrived  chan struct{}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &hookReceiver{t: t, addr: addr, arrived: make(chan struct{}, 100)}
	t.Cleanup(h.stop)
	return h
}

func (h *hookReceiver) url() string { return "http://" + h.addr + "/hook" }

func (h *hookReceiver) start() {
	h.t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.seen++
		hold := h.hold
		h.mu.Unlock()
		h.arrived <- struct{}{}
		if hold {
			<-r.Context().Done()
			return
		}
		var p notify.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.accepted = append(h.accepted, p)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	h.srv = srv
}

func (h *hookReceiver) stop() {
	if h.srv != nil {
		h.srv.CloseClientConnections()
		h.srv.Close()
		h.srv = nil
	}
}

func (h *hookReceiver) counts() (seen int, accepted []notify.Payload) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen, append([]notify.Payload(nil), h.accepted...)
}

// updates are the accepted messages that are not tests.
func (h *hookReceiver) updates() []notify.Payload {
	_, all := h.counts()
	var out []notify.Payload
	for _, p := range all {
		if !p.Test {
			out = append(out, p)
		}
	}
	return out
}

// notifierState is a notifier as GET /api/v1/notifiers shows it.
type notifierState struct {
	Name      string    `json:"name"`
	Sent      int64     `json:"sent"`
	Queued    int       `json:"queued"`
	LastError string    `json:"lastError"`
	NextTryAt time.Time `json:"nextTryAt"`
}

func (c *child) notifier(t *testing.T, name string) notifierState {
	t.Helper()
	var list struct{ Notifiers []notifierState }
	c.getJSON(t, "/api/v1/notifiers", &list)
	for _, n := range list.Notifiers {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no notifier %s", name)
	return notifierState{}
}

// outboxSetup is a registry with team/app:1.0.0, and a config watching it
// with one webhook notifier whose retry window is short (its waits are at
// most a tenth of it: 2 s).
func outboxSetup(t *testing.T, hook *hookReceiver) (reg *regtest.Registry, first ggcr.Hash, args []string, db string) {
	t.Helper()
	reg = regtest.Start(t, regtest.Options{})
	first = reg.Push(t, "team/app:1.0.0", regtest.Image(t, "app"))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("images:\n  - image: %s/team/app:1.0.0\nnotifiers:\n  hook: {url: %q, type: webhook}\nnotify:\n  retryfor: 20s\n", reg.Host, hook.url())
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	db = filepath.Join(dir, "tagwatch.db")
	return reg, first, []string{"--config", cfg, "--data", db, "--listen", "127.0.0.1:0"}, db
}

// newVersion tags 1.1.0 and has the daemon check: one update is recorded.
func newVersion(t *testing.T, c *child, reg *regtest.Registry, first ggcr.Hash) {
	t.Helper()
	reg.Tag(t, "team/app", first, "1.1.0")
	before := c.status(t).Last.StartedAt
	res, err := http.Post(c.base+"/api/v1/check", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitFor(t, "the check to record the update", time.Minute, func() bool {
		s := c.status(t)
		return !s.Running && s.Last != nil && s.Last.StartedAt.After(before) && len(s.Last.Updates) == 1
	})
}

func stopServe(t *testing.T, c *child, sig syscall.Signal) {
	t.Helper()
	if err := c.exit(t, sig); sig == syscall.SIGTERM && err != nil {
		t.Errorf("serve exited with %v after SIGTERM", err)
	}
}

// onDisk reads the data file of a stopped daemon: the history, and the
// hook notifier's outbox and sent mark for the one update.
func onDisk(t *testing.T, db string) (hist []store.HistoryEntry, outbox []store.OutboxMessage, sent bool) {
	t.Helper()
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if hist, err = st.History(0, 0); err != nil {
		t.Fatal(err)
	}
	if outbox, err = st.Outbox("hook"); err != nil {
		t.Fatal(err)
	}
	if len(hist) > 0 {
		sent, _ = st.Sent("hook", notify.Key(hist[0]))
	}
	return hist, outbox, sent
}

// wantOneMessage waits for the update's message, then long enough for any
// second one (more than two of the notifier's longest waits), and checks
// there was exactly one and that it announces the update.
func wantOneMessage(t *testing.T, c *child, hook *hookReceiver, reg *regtest.Registry) {
	t.Helper()
	waitFor(t, "the message", time.Minute, func() bool { return len(hook.updates()) >= 1 })
	waitFor(t, "the notifier to record it", 10*time.Second, func() bool { n := c.notifier(t, "hook"); return n.Sent == 1 && n.Queued == 0 })
	time.Sleep(5 * time.Second)
	ups := hook.updates()
	if len(ups) != 1 {
		t.Fatalf("the receiver accepted %d messages for the update, want exactly 1", len(ups))
	}
	u := ups[0].Updates
	if len(u) != 1 || u[0].Reference != reg.Host+"/team/app:1.0.0" || u[0].LatestTag != "1.1.0" || u[0].Update != "minor" {
		t.Errorf("the message announces %+v", u)
	}
}

// TestNotificationSurvivesRestart: the webhook receiver stops, an update is
// recorded, tagwatch restarts, the receiver starts again: it gets exactly
// one message for the update.
func TestNotificationSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	hook := newHookReceiver(t)
	reg, first, args, db := outboxSetup(t, hook)
	hook.start()
	c := startServe(t, args...)
	waitFor(t, "the start-up cycle", time.Minute, func() bool { s := c.status(t); return !s.Running && s.Last != nil })
	// The receiver works: a test message goes through.
	res, err := http.Post(c.base+"/api/v1/notifiers/hook/test", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, acc := hook.counts(); res.StatusCode != http.StatusOK || len(acc) != 1 || !acc[0].Test {
		t.Fatalf("test message: %s, receiver got %+v", res.Status, acc)
	}

	hook.stop()
	newVersion(t, c, reg, first)
	waitFor(t, "a failed try", 30*time.Second, func() bool {
		n := c.notifier(t, "hook")
		return n.Queued == 1 && strings.Contains(n.LastError, "refused")
	})
	stopServe(t, c, syscall.SIGTERM)
	hist, outbox, sent := onDisk(t, db)
	if len(hist) != 1 || len(outbox) != 1 || outbox[0].State != store.OutboxWaiting || outbox[0].Tries < 1 || sent {
		t.Fatalf("after the stop: history %d, outbox %+v, sent %v", len(hist), outbox, sent)
	}
	t.Logf("stopped with the message waiting after %d tries: %s", outbox[0].Tries, outbox[0].LastError)

	c = startServe(t, args...)
	hook.start()
	wantOneMessage(t, c, hook, reg)
	stopServe(t, c, syscall.SIGTERM)
	if _, outbox, sent := onDisk(t, db); len(outbox) != 0 || !sent {
		t.Errorf("after delivery: outbox %+v, sent %v", outbox, sent)
	}
}

// TestNotificationSurvivesKill: tagwatch is SIGKILLed after it recorded an
// update and while it sends its message (the receiver has it and has not
// answered): the update and its waiting message are on disk, not marked
// sent, and once tagwatch runs again the receiver accepts exactly one.
func TestNotificationSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	hook := newHookReceiver(t)
	reg, first, args, db := outboxSetup(t, hook)
	hook.hold = true
	hook.start()
	c := startServe(t, args...)
	waitFor(t, "the start-up cycle", time.Minute, func() bool { s := c.status(t); return !s.Running && s.Last != nil })

	newVersion(t, c, reg, first)
	select {
	case <-hook.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not sent")
	}
	stopServe(t, c, syscall.SIGKILL)
	hist, outbox, sent := onDisk(t, db)
	if len(hist) != 1 || len(outbox) != 1 || outbox[0].State != store.OutboxWaiting || sent {
		t.Fatalf("after the kill: history %d, outbox %+v, sent %v", len(hist), outbox, sent)
	}
	if seen, acc := hook.counts(); seen != 1 || len(acc) != 0 {
		t.Fatalf("before the restart the receiver saw %d requests and accepted %d", seen, len(acc))
	}

	hook.mu.Lock()
	hook.hold = false
	hook.mu.Unlock()
	c = startServe(t, args...)
	wantOneMessage(t, c, hook, reg)
	if seen, _ := hook.counts(); seen != 2 {
		t.Errorf("the receiver saw %d requests, want 2: the one cut by the kill, and the one it accepted", seen)
	}
}
