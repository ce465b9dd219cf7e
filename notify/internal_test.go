package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"

	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/store"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ntfy://ntfy.sh/mytopic", "ntfy://ntfy.sh/***"},
		{"ntfy://user:pass@ntfy.lan/alerts?priority=high", "ntfy://***@ntfy.lan/***?priority=high"},
		{"gotify://gotify.lan/sub/AbCdEfGhIjKlMnO?priority=5", "gotify://gotify.lan/***?priority=5"},
		{"smtp://user:hunter2@mail.lan:587/?from=tagwatch@lan&to=me@lan", "smtp://***@mail.lan:587/?from=tagwatch@lan&to=me@lan"},
		{"discord://Xk2ZlR9aQ3_token@123456789012345678", "discord://***@***"},
		{"telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@home", "telegram://***@telegram?chats=@home"},
		{"pushover://shoutrrr:azGDORePK8gMaC0QOYAMyEEuzJnyUi@uQiRzpo4DXghDmr9QzzfQu27cmVRsG/?devices=phone", "pushover://***@***/?devices=phone"},
		{"https://discord.com/api/webhooks/123456789012345678/abcDEF123ghiJKL456mnoPQR789stuVWX", "https://discord.com/***"},
		{"https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/***"},
		{"https://ha.lan:8123/api/webhook/my-private-hook-id", "https://ha.lan:8123/***"},
		{"generic+https://example.com/api/SEKRET", "generic+https://example.com/***"},
		{"https://hooks.example/x?apikey=abc123&room=ops&sig=zz&k=1", "https://hooks.example/***?apikey=***&room=***&sig=***&k=***"},
		{"http://apprise.lan:8000/notify/tagwatch", "http://apprise.lan:8000/***"},
		{"matrix://bot:p4ssw0rd@matrix.lan/?rooms=!room:matrix.lan", "matrix://***@matrix.lan/?rooms=!room:matrix.lan"},
		{"%%bad", "(unparsable url)"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	spec, err := Parse("mail", map[string]string{"url": "smtp://me:hunter2secret@mail.lan:587/?from=a@lan&to=b@lan"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(f, spec); strings.Contains(got, "hunter2secret") {
			t.Errorf("%s prints the password: %s", f, got)
		}
	}
	if got := fmt.Sprintf("%+v", []*Spec{spec}); strings.Contains(got, "hunter2secret") {
		t.Errorf("a list prints the password: %s", got)
	}
	u, _ := url.Parse("gotify://gotify.lan/AbCdEfGhIjKlMnO?disabletls=yes")
	r := newRedactor(u)
	msg := `Post "http://gotify.lan/message?token=AbCdEfGhIjKlMnO": dial tcp: refused; invalid token "AbCdEfGhIjKlMnO"`
	if got := r.scrub(msg); strings.Contains(got, "AbCdEfGhIjKlMnO") {
		t.Errorf("scrub left the token: %s", got)
	}
}

// redirect sends discord.com's requests to a test server: shoutrrr's
// Discord service has a fixed host, but takes an HTTP client.
type redirect struct {
	to     *url.URL
	client *http.Client
}

func (r redirect) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host, req.Host = r.to.Scheme, r.to.Host, ""
	return r.client.Do(req)
}

// TestDiscord sends through shoutrrr's Discord service to a test server
// standing in for discord.com, and reads the webhook payload.
func TestDiscord(t *testing.T) {
	type got struct {
		path string
		body []byte
	}
	hits := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- got{r.URL.Path, b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	st := storetest.Open(t)
	spec, err := Parse("chat", map[string]string{"url": "discord://Xk2ZlR9aQ3tokenTOKENtoken@123456789012345678"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New([]*Spec{spec}, st, Options{Log: slog.New(slog.DiscardHandler), Backoff: []time.Duration{}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	target, _ := url.Parse(srv.URL)
	sh := n.byName["chat"].sender.(*shoutrrrSender)
	sh.mu.Lock()
	sh.svc.(*discord.Service).HTTPClient = redirect{to: target, client: srv.Client()}
	sh.mu.Unlock()

	n.Notify([]store.HistoryEntry{{
		Key: "k", Reference: "docker.io/library/nginx:1.25.3", Registry: "hub.public", Update: "major",
		FromTag: "1.25.3", ToTag: "2.0.0", ToDigest: "sha256:abc",
	}})
	select {
	case h := <-hits:
		if h.path != "/api/webhooks/123456789012345678/Xk2ZlR9aQ3tokenTOKENtoken" {
			t.Errorf("path %s", h.path)
		}
		var p struct {
			Embeds []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"embeds"`
		}
		if err := json.Unmarshal(h.body, &p); err != nil || len(p.Embeds) == 0 {
			t.Fatalf("payload %s: %v", h.body, err)
		}
		all := p.Embeds[0].Title
		for _, e := range p.Embeds { // one embed per line unless ?splitlines=no
			all += "\n" + e.Description
		}
		for _, w := range []string{"tagwatch: docker.io/library/nginx:1.25.3 major update", "1.25.3 → 2.0.0", "(major update)"} {
			if !strings.Contains(all, w) {
				t.Errorf("embed lacks %q:\n%s", w, h.body)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("discord got nothing; status %+v", n.Status())
	}
}
