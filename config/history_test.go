package config_test

import (
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
)

const day = 24 * time.Hour

func TestHistoryAndNotifySettings(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		env     []string
		history config.History
		notify  config.Notify
	}{
		{"defaults", "", nil, config.DefaultHistory, config.DefaultNotify},
		{"file", "history:\n  keep: 5000\n  maxage: 90d\nnotify:\n  retryfor: 12h\n", nil,
			config.History{Keep: 5000, MaxAge: 90 * day}, config.Notify{RetryFor: 12 * time.Hour}},
		{"no limits", "history: {keep: 0, maxage: 0}\n", nil, config.History{}, config.DefaultNotify},
		{"environment over the file", "history:\n  keep: 5000\n  maxage: 90d\n",
			[]string{"TAGWATCH_HISTORY_KEEP=200", "TAGWATCH_NOTIFY_RETRYFOR_FILE=" + secretFile(t, "1d12h\n")},
			config.History{Keep: 200, MaxAge: 90 * day}, config.Notify{RetryFor: 36 * time.Hour}},
		{"environment alone", "", []string{"TAGWATCH_HISTORY_MAXAGE=30d"},
			config.History{Keep: config.DefaultHistory.Keep, MaxAge: 30 * day}, config.DefaultNotify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(write(t, tt.body), tt.env, registries.DefaultCatalog())
			if err != nil {
				t.Fatal(err)
			}
			if c.History != tt.history || c.Notify != tt.notify {
				t.Errorf("history %+v notify %+v, want %+v %+v", c.History, c.Notify, tt.history, tt.notify)
			}
		})
	}
}

func TestHistoryAndNotifyErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want string
	}{
		{"negative keep", "history:\n  keep: -1\n", nil, `:2: history.keep: "-1" is not a number of entries`},
		{"keep not a number", "history:\n  maxage: 30d\n  keep: lots\n", nil, `:3: history.keep: "lots" is not a number`},
		{"bad age", "history: {maxage: 1 year}\n", nil, `:1: history.maxage: "1 year" is not a duration (365d, 36h, 1d12h, 90m); 0: no limit`},
		// 0 is refused here: the message must not offer it (it once said "90m; 0 for none").
		{"bad retry", "notify:\n  retryfor: a day\n", nil, `:2: notify.retryfor: "a day" is not a duration (365d, 36h, 1d12h, 90m)`},
		{"zero retry", "\nnotify:\n  retryfor: 0\n", nil, ":3: notify.retryfor: must be more than 0"},
		{"unknown key", "history:\n  kep: 10\n", nil, ":2: history.kep: is not a setting here (known: keep, maxage)"},
		{"from the environment", "", []string{"TAGWATCH_HISTORY_MAXAGE=soon"},
			`environment TAGWATCH_HISTORY_MAXAGE: history.maxage: "soon" is not a duration`},
		{"unknown variable", "", []string{"TAGWATCH_HISTORY_KEEPS=1"}, "environment TAGWATCH_HISTORY_KEEPS: history.keeps: is not a tagwatch setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadError(t, tt.body, tt.env)
			mentions(t, err, p, tt.want)
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "365d": 365 * day, "1d12h": 36 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, " 2d ": 2 * day, "0d": 0,
	} {
		if got, err := config.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1y", "-1d", "-3h", "1.5d", "d12h", "12", "99999d"} {
		if got, err := config.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}
