package notify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
)

func mustParse(t *testing.T, name string, settings map[string]string) *notify.Spec {
	t.Helper()
	s, err := notify.Parse(name, settings)
	if err != nil {
		t.Fatalf("notifier %s: %v", name, err)
	}
	return s
}

func statusOf(n *notify.Notifiers, name string) (notify.Status, bool) {
	for _, st := range n.Status() {
		if st.Name == name {
			return st, true
		}
	}
	return notify.Status{}, false
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestApply replaces the running set: an unchanged notifier keeps its
// sender, outbox and counters; a removed one stops; an added one receives.
func TestApply(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	// keep: the first message goes through, the next ones hang until release.
	keepRC := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n > 1 {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// gone: hangs until its request is abandoned.
	goneDone := make(chan struct{}, 10)
	goneRC := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		<-r.Context().Done()
		goneDone <- struct{}{}
	})
	addRC := newReceiver(t, nil)
	chgRC := newReceiver(t, nil)

	// keep leaves out the noise below, so that its counts are exact.
	keepSet := map[string]string{"url": keepRC.URL + "/k", "type": "webhook", "images": "library/[abc]"}
	chgSet := map[string]string{"url": chgRC.URL + "/c", "type": "webhook"}
	o := fast(nil)
	o.Timeout = 30 * time.Second
	n, err := notify.New([]*notify.Spec{
		mustParse(t, "keep", keepSet),
		mustParse(t, "gone", map[string]string{"url": goneRC.URL + "/g", "type": "webhook"}),
		mustParse(t, "chg", chgSet),
	}, openStore(t, ""), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })

	n.Notify([]store.HistoryEntry{update("docker.io/library/a:1", "major", "1", "2")})
	waitFor(t, "the first message", func() bool { st, _ := statusOf(n, "keep"); return st.Sent == 1 })
	waitFor(t, "chg's message", func() bool { st, _ := statusOf(n, "chg"); return st.Sent == 1 })
	var more []store.HistoryEntry
	for i := range 3 {
		more = append(more, update(fmt.Sprintf("docker.io/library/b%d:1", i), "major", "1", "2"))
	}
	n.Notify(more)
	// keep: one send hanging, three in its outbox (that one included).
	waitFor(t, "keep's queue", func() bool { st, _ := statusOf(n, "keep"); return st.Queued == 3 && keepRC.count() == 2 })
	waitFor(t, "gone's send", func() bool { return goneRC.count() == 1 })
	waitFor(t, "chg's messages", func() bool { st, _ := statusOf(n, "chg"); return st.Sent == 4 })

	// A name given twice: an error, and nothing changes.
	if err := n.Apply([]*notify.Spec{mustParse(t, "keep", keepSet), mustParse(t, "keep", keepSet)}); err == nil {
		t.Fatal("Apply took a name twice")
	}
	if len(n.Specs()) != 3 {
		t.Fatalf("a failed Apply changed the set: %v", n.Names())
	}

	// Apply while cycles keep notifying and the UI reads the status.
	stop, running := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			if i == 10 {
				close(running)
			}
			select {
			case <-stop:
				return
			default:
			}
			n.Notify([]store.HistoryEntry{update("docker.io/library/noise:1", "digest", "1", "1")})
			_ = n.Status()
			_ = n.Specs()
		}
	}()
	<-running
	err = n.Apply([]*notify.Spec{
		mustParse(t, "keep", keepSet), // same settings, new Spec
		mustParse(t, "chg", map[string]string{"url": chgRC.URL + "/c", "type": "webhook", "threshold": "minor"}),
		mustParse(t, "added", map[string]string{"url": addRC.URL + "/a", "type": "webhook", "batch": "true"}),
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(n.Names()); got != "[keep chg added]" {
		t.Errorf("names %s", got)
	}

	// The removed one stopped: its send in flight was abandoned.
	select {
	case <-goneDone:
	case <-time.After(5 * time.Second):
		t.Error("the removed notifier's send was not abandoned")
	}
	if _, ok := statusOf(n, "gone"); ok {
		t.Error("the removed notifier is still listed")
	}
	if err := n.Test(context.Background(), "gone"); !errors.Is(err, notify.ErrUnknown) {
		t.Errorf("Test(gone) = %v", err)
	}

	// The unchanged one kept its counters and queue; the changed one
	// restarted, and drops the noise left in its outbox, which its new
	// threshold does not want.
	if st, _ := statusOf(n, "keep"); st.Sent != 1 || st.Queued != 3 {
		t.Errorf("keep after Apply: %+v", st)
	}
	if st, _ := statusOf(n, "chg"); st.Sent != 0 {
		t.Errorf("chg kept the counters of its old settings: %+v", st)
	}
	waitFor(t, "chg's outbox to empty", func() bool { st, _ := statusOf(n, "chg"); return st.Queued == 0 })
	if st, _ := statusOf(n, "chg"); st.Sent != 0 {
		t.Errorf("chg sent what its new threshold does not want: %+v", st)
	}

	// The added one receives; keep delivers its queue once released.
	n.Notify([]store.HistoryEntry{update("docker.io/library/c:1", "major", "1", "2")})
	addRC.wait(t, 1)
	unblock()
	waitFor(t, "keep's queue to drain", func() bool { st, _ := statusOf(n, "keep"); return st.Sent == 5 && st.Queued == 0 })
	if c := goneRC.count(); c != 1 {
		t.Errorf("the removed notifier sent %d requests, want 1", c)
	}

	n.Close(ctxTimeout(t, 5*time.Second))
	if err := n.Apply(nil); !errors.Is(err, notify.ErrClosed) {
		t.Errorf("Apply after Close = %v", err)
	}
}
