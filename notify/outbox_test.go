package notify_test

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
)

// TestRouteInTheHistoryTransaction records updates the way the daemon
// does: the messages are in the outbox when AppendHistory returns, before
// any send, with the filter and batch semantics of each notifier; Wake
// sends them.
func TestRouteInTheHistoryTransaction(t *testing.T) {
	batch, single := newReceiver(t, nil), newReceiver(t, nil)
	st := openStore(t, "")
	o := fast(nil)
	n := start(t, st, map[string]map[string]string{
		"batch":  {"url": batch.URL, "type": "webhook", "batch": "true", "threshold": "minor"},
		"single": {"url": single.URL, "type": "webhook", "images": "redis"},
	}, o)
	ups := []store.HistoryEntry{
		update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0"),
		update("docker.io/library/redis:7.2.4", "patch", "7.2.4", "7.2.5"),
		update("docker.io/library/redis:7.0.0", "major", "7.0.0", "8.0.0"),
	}
	saved, err := st.AppendHistory(ups, store.WithOutbox(n.Route))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Outbox("batch")
	s, _ := st.Outbox("single")
	if len(b) != 1 || len(b[0].Updates) != 2 || b[0].Updates[0].Seq != saved[0].Seq || b[0].Updates[1].Seq != saved[2].Seq {
		t.Errorf("batch outbox %+v", b)
	}
	if len(s) != 2 || s[0].Updates[0].Seq != saved[1].Seq || s[1].Updates[0].Seq != saved[2].Seq {
		t.Errorf("single outbox %+v", s)
	}
	n.Wake()
	m := decodeJSON(t, batch.wait(t, 1)[0].Body)
	if m["title"] != "tagwatch: 2 new updates" {
		t.Errorf("batch title %v", m["title"])
	}
	single.wait(t, 2)
	waitFor(t, "the outbox to empty", func() bool {
		c, err := st.OutboxCounts()
		return err == nil && len(c) == 0
	})
	for _, e := range saved[1:] {
		if sent, _ := st.Sent("single", notify.Key(e)); !sent {
			t.Errorf("%s not marked sent", e.Reference)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if batch.count() != 1 || single.count() != 2 {
		t.Errorf("batch got %d messages, single %d; want 1 and 2", batch.count(), single.count())
	}
}

// TestOutboxSurvivesRestart: a message whose receiver is down stays in the
// outbox across Close and a new start on the same file, and goes out once
// when the receiver is back; nothing is sent twice.
func TestOutboxSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tagwatch.db")
	addr := freeAddr(t)
	settings := map[string]map[string]string{"hook": {"url": "http://" + addr + "/hook", "type": "webhook"}}

	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n := start(t, st, settings, fast(nil))
	e := update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0")
	if _, err := st.AppendHistory([]store.HistoryEntry{e}, store.WithOutbox(n.Route)); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	status := waitStatus(t, n, func(s notify.Status) bool { return s.Retries >= 1 })
	if !strings.Contains(status.LastError, "refused") || status.Queued != 1 {
		t.Errorf("status while the receiver is down: %+v", status)
	}
	n.Close(ctxTimeout(t, 5*time.Second))
	msgs, err := st.Outbox("hook")
	if err != nil || len(msgs) != 1 || msgs[0].State != store.OutboxWaiting || msgs[0].Tries < 1 {
		t.Fatalf("outbox after Close: %+v, %v", msgs, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	rc := newReceiverAt(t, addr, nil)
	st2 := openStore(t, path)
	n2 := start(t, st2, settings, fast(nil))
	h := rc.wait(t, 1)[0]
	if ref := decodeJSON(t, h.Body)["updates"].([]any)[0].(map[string]any)["reference"]; ref != e.Reference {
		t.Errorf("sent %v", ref)
	}
	waitStatus(t, n2, func(s notify.Status) bool { return s.Sent == 1 && s.Queued == 0 })
	time.Sleep(100 * time.Millisecond)
	if rc.count() != 1 {
		t.Errorf("the receiver got %d messages, want 1", rc.count())
	}
	if sent, _ := st2.Sent("hook", notify.Key(e)); !sent {
		t.Error("not marked sent")
	}
}

// TestNotifierAddedLater: a notifier added after updates were recorded
// does not announce them; it announces the next ones.
func TestNotifierAddedLater(t *testing.T) {
	first, later := newReceiver(t, nil), newReceiver(t, nil)
	st := openStore(t, "")
	n := start(t, st, map[string]map[string]string{"first": {"url": first.URL, "type": "webhook"}}, fast(nil))
	old := update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0")
	if _, err := st.AppendHistory([]store.HistoryEntry{old}, store.WithOutbox(n.Route)); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	first.wait(t, 1)

	specs := append(n.Specs(), mustParse(t, "later", map[string]string{"url": later.URL, "type": "webhook"}))
	if err := n.Apply(specs); err != nil {
		t.Fatal(err)
	}
	next := update("docker.io/library/redis:7.2.4", "patch", "7.2.4", "7.2.5")
	if _, err := st.AppendHistory([]store.HistoryEntry{next}, store.WithOutbox(n.Route)); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	h := later.wait(t, 1)
	first.wait(t, 2)
	time.Sleep(100 * time.Millisecond)
	if later.count() != 1 {
		t.Fatalf("the later notifier got %d messages, want 1 (the update after it was added)", later.count())
	}
	if ref := decodeJSON(t, h[0].Body)["updates"].([]any)[0].(map[string]any)["reference"]; ref != next.Reference {
		t.Errorf("the later notifier announced %v", ref)
	}
}

// TestRetryNow: a receiver that refuses a message (4xx) gets it once, and
// the message is kept as failed; Retry now sends it again, once the
// receiver takes it.
func TestRetryNow(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if refuse.Load() {
			http.Error(w, "payload rejected", http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	st := openStore(t, "")
	n := start(t, st, map[string]map[string]string{"hook": {"url": rc.URL, "type": "webhook"}}, fast(nil))
	n.Notify([]store.HistoryEntry{update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0")})
	status := waitStatus(t, n, func(s notify.Status) bool { return s.Undelivered == 1 && s.Failed == 1 })
	time.Sleep(100 * time.Millisecond)
	if rc.count() != 1 || status.Retries != 0 || status.Failed != 1 || !strings.Contains(status.LastError, "422") {
		t.Fatalf("a refused message: %d tries, status %+v", rc.count(), status)
	}
	msgs, _ := n.Outbox("hook")
	// The reason names the status, never what the receiver wrote.
	if len(msgs) != 1 || msgs[0].State != store.OutboxFailed || !strings.Contains(msgs[0].LastError, "(422 Unprocessable Entity)") ||
		strings.Contains(msgs[0].LastError, "payload rejected") {
		t.Fatalf("outbox %+v", msgs)
	}

	refuse.Store(false)
	if k, err := n.Retry("hook"); err != nil || k != 1 {
		t.Fatalf("Retry = %d, %v", k, err)
	}
	rc.wait(t, 2)
	waitStatus(t, n, func(s notify.Status) bool { return s.Sent == 1 && s.Undelivered == 0 && s.Queued == 0 })
	if _, err := n.Retry("nope"); !errors.Is(err, notify.ErrUnknown) {
		t.Errorf("Retry of an unknown notifier: %v", err)
	}
}

// TestBatchLeftByAChangedNotifier: messages a notifier routed while it
// batched go out with the batch templates after it stopped batching.
func TestBatchLeftByAChangedNotifier(t *testing.T) {
	addr := freeAddr(t)
	st := openStore(t, "")
	url := "http://" + addr + "/hook"
	n := start(t, st, map[string]map[string]string{"hook": {"url": url, "type": "webhook", "batch": "true"}}, fast(nil))
	var ups []store.HistoryEntry
	for i := range 3 {
		ups = append(ups, update(fmt.Sprintf("docker.io/library/app%d:1.0.0", i), "major", "1.0.0", "2.0.0"))
	}
	if _, err := st.AppendHistory(ups, store.WithOutbox(n.Route)); err != nil {
		t.Fatal(err)
	}
	if err := n.Apply([]*notify.Spec{mustParse(t, "hook", map[string]string{"url": url, "type": "webhook", "title": "{{.Reference}}"})}); err != nil {
		t.Fatal(err)
	}
	rc := newReceiverAt(t, addr, nil)
	n.Retry("hook")
	m := decodeJSON(t, rc.wait(t, 1)[0].Body)
	if m["title"] != "tagwatch: 3 new updates" || len(m["updates"].([]any)) != 3 {
		t.Errorf("message %v", m)
	}
}

// TestExpireOrphans: the waiting messages of a notifier no longer
// configured are given up; the others' are left alone.
func TestExpireOrphans(t *testing.T) {
	st := openStore(t, "")
	e := update("docker.io/library/nginx:1.25.3", "minor", "1.25.3", "1.26.0")
	if _, err := st.AddOutbox([]store.OutboxMessage{{Notifier: "gone", Updates: []store.HistoryEntry{e}}, {Notifier: "kept", Updates: []store.HistoryEntry{e}}}); err != nil {
		t.Fatal(err)
	}
	k, err := notify.ExpireOrphans(st, []string{"kept", "other"}, time.Now())
	if err != nil || k != 1 {
		t.Fatalf("ExpireOrphans = %d, %v", k, err)
	}
	gone, _ := st.Outbox("gone")
	kept, _ := st.Outbox("kept")
	if len(gone) != 1 || gone[0].State != store.OutboxFailed || !strings.Contains(gone[0].LastError, "no longer configured") ||
		len(kept) != 1 || kept[0].State != store.OutboxWaiting {
		t.Errorf("gone %+v, kept %+v", gone, kept)
	}
}
