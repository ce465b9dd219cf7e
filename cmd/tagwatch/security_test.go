package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

// tagwatchStdin runs the command in a child process with stdin, as a user
// would from a shell: `printf 'pw\n' | tagwatch config hash-password`.
func tagwatchStdin(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$")
	cmd.Env = append(os.Environ(), "TWTEST_SERVE_ARGS="+strings.Join(args, "\x1f"))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestHashPasswordAndToken: the two commands make what web.auth wants, and
// config validate takes what they make.
func TestHashPasswordAndToken(t *testing.T) {
	out, errOut, code := tagwatchStdin(t, "correct horse battery\n", "config", "hash-password", "--cost", "6")
	hash := strings.TrimSpace(out)
	if code != 0 || bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")) != nil {
		t.Fatalf("hash-password: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 6 {
		t.Errorf("cost %d, want 6", cost)
	}
	if _, errOut, code := tagwatchStdin(t, "", "config", "hash-password"); code != exitUsage || !strings.Contains(errOut, "no password on stdin") {
		t.Errorf("empty stdin: exit %d, %q", code, errOut)
	}
	if _, errOut, code := tagwatchStdin(t, "pw\n", "config", "hash-password", "--cost", "20"); code != exitUsage || !strings.Contains(errOut, "want 4 to 14") {
		t.Errorf("--cost 20: exit %d, %q", code, errOut)
	}

	tok1, _, code1 := tagwatch(t, nil, "config", "token")
	tok2, _, _ := tagwatch(t, nil, "config", "token")
	tok1, tok2 = strings.TrimSpace(tok1), strings.TrimSpace(tok2)
	if code1 != 0 || len(tok1) != 43 || tok1 == tok2 {
		t.Errorf("config token: exit %d, %q then %q", code1, tok1, tok2)
	}

	dir := t.TempDir()
	for name, v := range map[string]string{"hash": hash, "token": tok1} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code = tagwatch(t, []string{"TAGWATCH_WEB_AUTH_USERNAME=admin", "TAGWATCH_WEB_AUTH_PASSWORD_FILE=" + filepath.Join(dir, "hash"),
		"TAGWATCH_WEB_AUTH_TOKEN_FILE=" + filepath.Join(dir, "token"), "TAGWATCH_WEB_LISTEN=0.0.0.0:8080"}, "config", "validate")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("validate with what they made: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConfigValidateWebAuth: a bad web.auth fails config validate (exit 2)
// with file:line: field and says how to make the value, quoting neither a
// password nor a token; so does a url holding a password.
func TestConfigValidateWebAuth(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yml")
	body := "registries:\n  custom:\n    lan:\n      url: ftp://user:Url-Pa55word@r.lan\n" +
		"web:\n  listen: 127.0.0.1:8080\n  auth:\n    username: admin\n    password: Clear-Pa55word\n    token: short-T0ken\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := tagwatch(t, nil, "config", "validate", "--config", p)
	if code != exitUsage || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"tagwatch: " + p + ":4: registries.custom.lan.url: must start with http:// or https://, not ftp://\n",
		"tagwatch: " + p + ":9: web.auth.password: must be a bcrypt hash ($2a$…, $2b$… or $2y$…), not a password in clear; make one with `tagwatch config hash-password`",
		"tagwatch: " + p + ":10: web.auth.token: is 11 characters long; use at least 24 random characters: make one with `tagwatch config token`",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, secret := range []string{"Url-Pa55word", "Clear-Pa55word", "short-T0ken"} {
		if strings.Contains(errOut, secret) {
			t.Errorf("stderr quotes %q:\n%s", secret, errOut)
		}
	}
	// serve refuses the same file, exit 2.
	if _, errOut, code := tagwatch(t, nil, "serve", "--config", p, "--data", filepath.Join(dir, "db")); code != exitUsage || !strings.Contains(errOut, "web.auth.token") {
		t.Errorf("serve: exit %d, %s", code, errOut)
	}
	// A short token from the environment too.
	if _, errOut, code := tagwatch(t, []string{"TAGWATCH_WEB_AUTH_TOKEN=abc"}, "config", "validate"); code != exitUsage ||
		!strings.Contains(errOut, "tagwatch: environment TAGWATCH_WEB_AUTH_TOKEN: web.auth.token: is 3 characters long") {
		t.Errorf("short token from the environment: exit %d, %s", code, errOut)
	}
}

// TestServeHostCheck runs `tagwatch serve` with web.hosts from the config
// file: a foreign Host is refused, loopback and the configured name are
// served, and `tagwatch healthcheck` (the image's HEALTHCHECK) still works.
func TestServeHostCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("web:\n  hosts: [tagwatch.example.com]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startServe(t, "--config", cfg, "--data", filepath.Join(dir, "db"), "--listen", "127.0.0.1:0")
	get := func(host string) int {
		req, err := http.NewRequest("GET", c.base+"/api/v1/registries", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	hostport := strings.TrimPrefix(c.base, "http://")
	for host, want := range map[string]int{hostport: 200, "localhost": 200, "[::1]:8080": 200, "tagwatch.example.com": 200,
		"evil.example": 403, "evil.example:" + strings.Split(hostport, ":")[1]: 403} {
		if got := get(host); got != want {
			t.Errorf("Host %s: %d, want %d", host, got, want)
		}
	}
	out, errOut, code := tagwatch(t, nil, "healthcheck", "--url", c.base+"/api/v1/healthz")
	if code != 0 {
		t.Errorf("healthcheck: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCheckSameWords: `tagwatch check` says what the dashboard and the tile
// say (web's TestSameWordsEverywhere), in its text and in --json.
func TestCheckSameWords(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "right-password"}})
	reg.Push(t, "team/app:1.0.0", regtest.Image(t, "same"))
	env := []string{"TAGWATCH_REGISTRY_CUSTOM_MINE_URL=" + reg.URL, "TAGWATCH_REGISTRY_CUSTOM_MINE_LOGIN=alice",
		"TAGWATCH_REGISTRY_CUSTOM_MINE_PASSWORD=wrong-password"}
	img := reg.Host + "/team/app:1.0.0"
	sentence := reg.Host + " refused the credentials of custom.mine (401). Check login and password. Use what docker login accepts for this registry: often a username or e-mail with an access token as the password."

	out, errOut, code := tagwatch(t, env, "check", img)
	if code != exitFailed || out != img+"\tcustom.mine\terror: "+sentence+"\n" {
		t.Errorf("check: exit %d\nstdout %q\nwant   %q\nstderr %s", code, out, img+"\tcustom.mine\terror: "+sentence+"\n", errOut)
	}
	out, _, _ = tagwatch(t, env, "check", "--json", img)
	var rs []struct {
		Error       string `json:"error"`
		ErrorDetail string `json:"errorDetail"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Error != sentence || !strings.HasPrefix(rs[0].ErrorDetail, sentence+" (list tags of ") {
		t.Errorf("check --json: %+v", rs)
	}
	if strings.Contains(out, "wrong-password") {
		t.Error("the output holds the password")
	}
}

// notifierURLs are real-looking urls of every service shoutrrr supports,
// and of a webhook and an Apprise API, each with the pieces that are
// secrets: none may show in the API, the page or the log.
var notifierURLs = []struct {
	name, url, typ string
	secrets        []string
}{
	{"bark", "bark://:BarkDeviceKeyS3cr3t1@api.day.app/", "", []string{"BarkDeviceKeyS3cr3t1"}},
	{"discord", "discord://DiscordT0kenS3cr3tAbc@123456789012345678", "", []string{"DiscordT0kenS3cr3tAbc", "123456789012345678"}},
	{"generic", "generic+https://example.com/api/GenericS3cr3tPath?token=GenQueryS3cr3t", "", []string{"GenericS3cr3tPath", "GenQueryS3cr3t"}},
	{"generic2", "generic://example.com/hooks/GenericPlainS3cr3t", "", []string{"GenericPlainS3cr3t"}},
	{"gotify", "gotify://gotify.example.com/AbCdEfGhIjKlMnO", "", []string{"AbCdEfGhIjKlMnO"}},
	{"googlechat", "googlechat://chat.googleapis.com/v1/spaces/SpaceS3cr3tId/messages?key=GChatKeyS3cr3t&token=GChatTokS3cr3t", "", []string{"SpaceS3cr3tId", "GChatKeyS3cr3t", "GChatTokS3cr3t"}},
	{"hangouts", "hangouts://chat.googleapis.com/v1/spaces/HangSpaceS3cr3t/messages?key=HangKeyS3cr3t&token=HangTokS3cr3t", "", []string{"HangSpaceS3cr3t", "HangKeyS3cr3t", "HangTokS3cr3t"}},
	{"ifttt", "ifttt://IftttWebhookKeyS3cr3t/?events=deploy", "", []string{"IftttWebhookKeyS3cr3t"}},
	{"lark", "lark://open.larksuite.com/LarkT0kenS3cr3t?secret=LarkSignS3cr3t", "", []string{"LarkT0kenS3cr3t", "LarkSignS3cr3t"}},
	{"join", "join://shoutrrr:JoinApiKeyS3cr3t12@join/?devices=phone1", "", []string{"JoinApiKeyS3cr3t12"}},
	{"logger", "logger://", "", nil},
	{"matrix", "matrix://bot:MatrixPassS3cr3t@matrix.example.com/?rooms=!room:example.com", "", []string{"MatrixPassS3cr3t"}},
	{"mattermost", "mattermost://mm.example.com/MattermostT0kenS3cr3t/alerts", "", []string{"MattermostT0kenS3cr3t"}},
	{"notifiarr", "notifiarr://NotifiarrApiKeyS3cr3t", "", []string{"NotifiarrApiKeyS3cr3t"}},
	{"ntfy", "ntfy://ntfy.sh/NtfyTopicS3cr3t", "", []string{"NtfyTopicS3cr3t"}},
	{"opsgenie", "opsgenie://api.opsgenie.com/OpsgenieKeyS3cr3t", "", []string{"OpsgenieKeyS3cr3t"}},
	{"pagerduty", "pagerduty://events.pagerduty.com/5f3e2a1b9c8d7e6f5a4b3c2d1e0f9a8b", "", []string{"5f3e2a1b9c8d7e6f5a4b3c2d1e0f9a8b"}},
	{"pushbullet", "pushbullet://PushbulletT0kenS3cr3t0123456789abc/device1", "", []string{"PushbulletT0kenS3cr3t0123456789abc"}},
	{"pushover", "pushover://shoutrrr:PushoverApiT0kenS3cr3t@PushoverUserKeyS3cr3t/?devices=phone", "", []string{"PushoverApiT0kenS3cr3t", "PushoverUserKeyS3cr3t"}},
	{"rocketchat", "rocketchat://rc.example.com/RocketT0kenAS3cr3t/RocketT0kenBS3cr3t/general", "", []string{"RocketT0kenAS3cr3t", "RocketT0kenBS3cr3t"}},
	{"signal", "signal://user:SignalPassS3cr3t@signal.example.com:8080/+15551234567/+15557654321", "", []string{"SignalPassS3cr3t", "15551234567"}},
	{"slack", "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook", "", []string{"WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi"}},
	{"slackbot", "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L", "", []string{"123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N"}},
	{"smtp", "smtp://user:SmtpPassS3cr3t@mail.example.com:587/?from=tagwatch@example.com&to=me@example.com", "", []string{"SmtpPassS3cr3t"}},
	{"teams", "teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=example.webhook.office.com", "",
		[]string{"11111111-4444-4444-8444-cccccccccccc", "33333333012222222222333333333344", "V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05"}},
	{"telegram", "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@channel", "", []string{"AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "110201543"}},
	{"wecom", "wecom://WecomKeyS3cr3t", "", []string{"WecomKeyS3cr3t"}},
	{"zulip", "zulip://bot%40zulip.example.com:ZulipBotKeyS3cr3t@zulip.example.com/?stream=alerts&topic=updates", "", []string{"ZulipBotKeyS3cr3t"}},
	{"homeassistant", "https://ha.lan:8123/api/webhook/my-private-hook-id", "webhook", []string{"my-private-hook-id"}},
	{"shortquery", "https://hooks.example/x?k=Sh0rt&sig=q7", "webhook", []string{"Sh0rt", "k=Sh0rt", "sig=q7"}},
	{"apprise", "http://apprise.lan:8000/notify/AppriseKeyS3cr3t", "apprise", []string{"AppriseKeyS3cr3t"}},
}

// TestNotifierURLsNeverShown runs `tagwatch serve` with a notifier of every
// kind in its config file, adds the same through the API as UI notifiers,
// and reads the notifiers API, the Settings → Notifications page and the
// log: no path or query secret, no userinfo, anywhere; the scheme and host
// are shown.
func TestNotifierURLsNeverShown(t *testing.T) {
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("notifiers:\n")
	for _, n := range notifierURLs {
		cfg.WriteString("  " + n.name + ": {url: '" + n.url + "'")
		if n.typ != "" {
			cfg.WriteString(", type: " + n.typ)
		}
		cfg.WriteString("}\n")
	}
	p := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(p, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startServe(t, "--config", p, "--data", filepath.Join(dir, "db"), "--listen", "127.0.0.1:0")
	read := func(method, path, body string) string {
		req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %s\n%s", method, path, res.Status, b.String())
		}
		return b.String()
	}
	// The same urls saved in the UI, under other names.
	for _, n := range notifierURLs {
		settings := map[string]string{"url": n.url}
		if n.typ != "" {
			settings["type"] = n.typ
		}
		body, _ := json.Marshal(map[string]any{"name": "ui-" + n.name, "settings": settings})
		read("POST", "/api/v1/notifiers", string(body))
	}
	api := read("GET", "/api/v1/notifiers", "")
	page := read("GET", "/settings/notifications", "")
	logText := c.logText(t)
	var listed struct {
		Notifiers []struct{ Name, URL string }
	}
	if err := json.Unmarshal([]byte(api), &listed); err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, n := range listed.Notifiers {
		shown[n.Name] = n.URL
	}
	for _, n := range notifierURLs {
		for _, s := range n.secrets {
			for where, text := range map[string]string{"the API": api, "the page": page, "the log": logText} {
				if strings.Contains(text, s) {
					t.Errorf("%s: %s shows %q", n.name, where, s)
				}
			}
		}
		for _, name := range []string{n.name, "ui-" + n.name} {
			u := shown[name]
			scheme, _, _ := strings.Cut(n.url, "://")
			if !strings.HasPrefix(u, scheme+"://") || (strings.Contains(n.url, "@") && !strings.Contains(u, "***@")) {
				t.Errorf("%s: shown as %q", name, u)
			}
			if !strings.Contains(logText, "name="+n.name+" ") {
				t.Errorf("%s: not in the start-up log", n.name)
			}
		}
		t.Logf("%-13s %s", n.name, shown[n.name])
	}
	for name, want := range map[string]string{"homeassistant": "https://ha.lan:8123/***", "generic": "generic+https://example.com/***?token=***",
		"shortquery": "https://hooks.example/***?k=***&sig=***", "ui-smtp": "smtp://***@mail.example.com:587/?from=tagwatch@example.com&to=me@example.com"} {
		if shown[name] != want {
			t.Errorf("%s: shown as %q, want %q", name, shown[name], want)
		}
	}
}
