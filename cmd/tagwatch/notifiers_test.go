package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/store"
)

// TestServeLoadsUINotifiers starts `tagwatch serve` on a file holding
// notifiers saved in the UI: the valid one runs after the config file's,
// the invalid one is logged and left out (and listed as not running), and
// one named like a config-file notifier does not replace it.
func TestServeLoadsUINotifiers(t *testing.T) {
	const token = "SavedT0kenAbcdefghij0123456"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tagwatch.yml")
	if err := os.WriteFile(cfg, []byte("notifiers:\n  phone:\n    url: \"ntfy://ntfy.example/alerts\"\n    threshold: major\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tagwatch.db")
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []store.Notifier{
		{Name: "team", Settings: map[string]string{"type": "webhook", "threshold": "minor"}, Secrets: map[string]string{"url": "https://hooks.example/" + token}},
		{Name: "broken", Settings: map[string]string{"threshold": "huge"}, Secrets: map[string]string{"url": "https://hooks.example/" + token}},
		{Name: "phone", Settings: map[string]string{"type": "webhook"}, Secrets: map[string]string{"url": "https://hooks.example/" + token}},
	} {
		if err := st.PutNotifier(n); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	c := startServe(t, "--config", cfg, "--data", db, "--listen", "127.0.0.1:0")
	var got struct {
		Notifiers []struct {
			Name      string `json:"name"`
			Source    string `json:"source"`
			Active    bool   `json:"active"`
			Type      string `json:"type"`
			URL       string `json:"url"`
			Threshold string `json:"threshold"`
		} `json:"notifiers"`
	}
	c.getJSON(t, "/api/v1/notifiers", &got)
	var names []string
	for _, n := range got.Notifiers {
		names = append(names, n.Name+":"+n.Source+":"+map[bool]string{true: "on", false: "off"}[n.Active])
		if strings.Contains(n.URL, token) {
			t.Errorf("notifier %s: url %s holds the token", n.Name, n.URL)
		}
	}
	if s := strings.Join(names, " "); s != "phone:file:on team:ui:on broken:ui:off" {
		t.Errorf("notifiers %s", s)
	}
	if p := got.Notifiers[0]; p.Type != "shoutrrr" || p.Threshold != "major" {
		t.Errorf("phone: %+v", p)
	}
}
