package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

func TestNotifiersLoad(t *testing.T) {
	p := write(t, `notifiers:
  phone: {url: "ntfy://ntfy.sh/mytopic", threshold: minor, images: '^ghcr\.io/home-assistant/', digest: false, title: 'up: {{.Reference}}'}
  hook:  {url: "https://hooks.example/x", type: webhook, batch: true}
  mail:  {url: "smtp://user:pass@mail.lan:587/?from=tagwatch@lan&to=me@lan"}
  apprise: {url: "http://apprise.lan:8000/notify/tagwatch", type: apprise}
`)
	secret := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(secret, []byte("gotify://gotify.lan/AbCdEfGhIjKlMnO\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p, []string{
		"TAGWATCH_NOTIFIER_PHONE_THRESHOLD=patch",
		"TAGWATCH_NOTIFIER_MY_GOTIFY_URL_FILE=" + secret,
	}, registries.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range c.Notifiers {
		names = append(names, n.Name+"/"+n.Type)
	}
	if got := strings.Join(names, " "); got != "apprise/apprise hook/webhook mail/shoutrrr my_gotify/shoutrrr phone/shoutrrr" {
		t.Fatalf("notifiers %s", got)
	}
	phone := c.Notifiers[4]
	if phone.Threshold != "patch" || phone.Digest == nil || *phone.Digest || phone.Images() != `^ghcr\.io/home-assistant/` {
		t.Errorf("phone: threshold %s digest %v images %q", phone.Threshold, phone.Digest, phone.Images())
	}
	if !c.Notifiers[1].Batch {
		t.Error("hook: batch not set")
	}
	if got := c.Notifiers[2].Redacted(); strings.Contains(got, "pass") {
		t.Errorf("mail url shown as %s", got)
	}
	if got := c.Notifiers[3].Redacted(); got != "gotify://gotify.lan/***" {
		t.Errorf("gotify url shown as %s", got)
	}
}

func TestNotifierErrorsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want string
	}{
		{"bad title template", "notifiers:\n  phone:\n    url: ntfy://ntfy.sh/t\n    title: '{{.Reference'\n", nil,
			":4: notifiers.phone.title: title:1: unclosed action"},
		{"unknown field in body", "notifiers:\n  phone:\n    url: ntfy://ntfy.sh/t\n    body: '{{.Nope}}'\n", nil,
			":4: notifiers.phone.body: body:1:2: executing \"body\" at <.Nope>: can't evaluate field Nope"},
		{"bad regex", "notifiers:\n  phone:\n    url: ntfy://ntfy.sh/t\n    images: '(['\n", nil,
			":4: notifiers.phone.images: bad regular expression"},
		{"bad threshold", "notifiers:\n  phone: {url: 'ntfy://ntfy.sh/t', threshold: huge}\n", nil,
			":2: notifiers.phone.threshold: unknown threshold \"huge\""},
		{"unknown service", "notifiers:\n  x:\n    url: nope://host/p\n", nil, ":3: notifiers.x.url: unknown service \"nope\""},
		{"http needs a type", "notifiers:\n  x:\n    url: https://hooks.example/x\n", nil, ":2: notifiers.x.type: an http(s) url needs type"},
		{"webhook needs http", "notifiers:\n  x:\n    url: ntfy://ntfy.sh/t\n    type: webhook\n", nil, ":3: notifiers.x.url: type webhook needs an http"},
		{"unknown setting", "notifiers:\n  x:\n    url: ntfy://ntfy.sh/t\n    treshold: minor\n", nil, ":4: notifiers.x.treshold: unknown setting"},
		{"url missing", "notifiers:\n  x: {threshold: minor}\n", nil, ":2: notifiers.x.url: is required"},
		{"bad name", "notifiers:\n  My.Phone: {url: 'ntfy://ntfy.sh/t'}\n", nil, ":2: notifiers.My.Phone: notifier name"},
		{"bad bool", "notifiers:\n  x:\n    url: ntfy://ntfy.sh/t\n    batch: maybe\n", nil, ":4: notifiers.x.batch: want true or false"},
		{"not a map", "notifiers:\n  x: ntfy://ntfy.sh/t\n", nil, ":2: notifiers.x: must be a map of settings"},
		{"service rejects its url", "notifiers:\n  mail:\n    url: smtp://mail.lan:587/?to=me@lan\n", nil, ":3: notifiers.mail.url: smtp url: fromAddress missing"},
		{"from the environment", "", []string{"TAGWATCH_NOTIFIER_PHONE_URL=ntfy://ntfy.sh/t", "TAGWATCH_NOTIFIER_PHONE_IMAGES=(["},
			"environment TAGWATCH_NOTIFIER_PHONE_IMAGES: notifiers.phone.images: bad regular expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			mentions(t, err, p, tt.want)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("not a config.Error: %T", err)
			}
		})
	}
}

// TestNotifierErrorsHideSecrets: a url the loader rejects is never echoed
// with its password or token.
func TestNotifierErrorsHideSecrets(t *testing.T) {
	for _, u := range []string{
		"smtp://me:hunter2secret@mail.lan:587/?to=me@lan",             // the service rejects it (no from)
		"gotify://gotify.lan/Atoken12345678?priority=high",            // bad query value
		"smtp://me:hunter2secret@mail.lan:5 87/?from=a@lan&to=me@lan", // not a url
		"discord://hunter2secret@12345/extra",                         // a path discord does not take
	} {
		p := write(t, "notifiers:\n  x:\n    url: '"+u+"'\n")
		_, err := config.Load(p, nil, registries.DefaultCatalog())
		if err == nil {
			t.Errorf("%s: no error", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") || strings.Contains(err.Error(), "Atoken12345678") {
			t.Errorf("the error shows the secret: %v", err)
		}
		if !strings.Contains(err.Error(), ":3: notifiers.x.url: ") {
			t.Errorf("error not placed: %v", err)
		}
	}
}
