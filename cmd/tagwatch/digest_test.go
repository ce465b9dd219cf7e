package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestListedDigestServe runs `tagwatch serve` on a config that lists a
// floating tag, with a webhook notifier, against a real registry. A new
// image pushed under the tag is a digest update: announced once, reported by
// every check, still after a restart on the same file, until Mark as current
// through the API; the next check then finds nothing.
func TestListedDigestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	hook := newHookReceiver(t)
	hook.start()
	reg := regtest.Start(t, regtest.Options{})
	first := reg.Push(t, "team/app:latest", regtest.Image(t, "first")).String()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	ref := reg.Host + "/team/app:latest"
	body := fmt.Sprintf("images:\n  - image: %s\nnotifiers:\n  hook: {url: %q, type: webhook}\n", ref, hook.url())
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tagwatch.db")
	args := []string{"--config", cfg, "--data", db, "--listen", "127.0.0.1:0"}

	c := startServe(t, args...)
	waitFor(t, "the start-up cycle", time.Minute, func() bool { s := c.status(t); return !s.Running && s.Last != nil })
	img := c.image(t, ref)
	if img.Update != "none" || img.Baseline != first || img.Digest != first {
		t.Fatalf("after the start-up cycle: %+v", img)
	}

	second := reg.Push(t, "team/app:latest", regtest.Image(t, "second")).String()
	pending := func(when string) store.Image {
		t.Helper()
		img := c.image(t, ref)
		if img.Update != "digest" || img.Digest != first || img.LatestDigest != second || img.Baseline != first {
			t.Fatalf("%s: update=%q digest=%q latestDigest=%q baseline=%q; want digest from %s to %s",
				when, img.Update, img.Digest, img.LatestDigest, img.Baseline, first, second)
		}
		return img
	}
	c.checkNow(t)
	pending("after the push")
	waitFor(t, "the notification", 30*time.Second, func() bool { return len(hook.updates()) == 1 })
	u := hook.updates()[0].Updates
	if len(u) != 1 || u[0].Reference != ref || u[0].Update != "digest" || u[0].Digest != first || u[0].LatestDigest != second {
		t.Errorf("the message announces %+v", u)
	}
	c.checkNow(t)
	pending("a check later")

	// check --state cannot share the running daemon's file.
	if _, errOut, code := tagwatch(t, nil, "check", "--state", db, ref); code != exitFailed || !strings.Contains(errOut, "--state "+db+" is locked by another tagwatch") {
		t.Errorf("check --state on serve's file: exit %d, %s", code, errOut)
	}

	stopServe(t, c, syscall.SIGTERM)
	c = startServe(t, args...)
	pending("after a restart")
	c.checkNow(t)
	img = pending("after a check by the restarted daemon")
	time.Sleep(3 * time.Second) // room for a second message, were one made
	if n := len(hook.updates()); n != 1 {
		t.Errorf("the receiver got %d messages for the one new image, want 1", n)
	}

	// Mark as current, through the API.
	res, err := http.Post(c.base+"/api/v1/images/"+url.PathEscape(img.Key)+"/accept", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var a struct {
		Accepted bool
		Image    store.Image
	}
	if err := json.Unmarshal(b, &a); err != nil || res.StatusCode != http.StatusOK || !a.Accepted || a.Image.Update != "none" || a.Image.Baseline != second {
		t.Fatalf("POST accept: %s %s", res.Status, b)
	}
	c.checkNow(t)
	if img := c.image(t, ref); img.Update != "none" || img.Baseline != second || img.Digest != second || img.AcceptedAt.IsZero() {
		t.Errorf("the check after Mark as current: %+v", img)
	}
	stopServe(t, c, syscall.SIGTERM)

	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hist, err := st.History(0, 0)
	if err != nil || len(hist) != 1 || hist[0].Update != "digest" || hist[0].FromDigest != first || hist[0].ToDigest != second {
		t.Errorf("history on disk: %+v, %v; want the one digest update", hist, err)
	}
	if n := len(hook.updates()); n != 1 {
		t.Errorf("the receiver got %d messages in all, want 1", n)
	}
}

// image is GET /api/v1/images's record of reference ref.
func (c *child) image(t *testing.T, ref string) store.Image {
	t.Helper()
	var list struct{ Images []store.Image }
	c.getJSON(t, "/api/v1/images", &list)
	for _, img := range list.Images {
		if img.Reference == ref {
			return img
		}
	}
	t.Fatalf("no image %s in %+v", ref, list.Images)
	return store.Image{}
}

// checkNow asks for a cycle and waits for it to end.
func (c *child) checkNow(t *testing.T) {
	t.Helper()
	var before time.Time // a restarted daemon that skipped its start-up check has no last cycle
	if last := c.status(t).Last; last != nil {
		before = last.StartedAt
	}
	res, err := http.Post(c.base+"/api/v1/check", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitFor(t, "the check", time.Minute, func() bool {
		s := c.status(t)
		return !s.Running && s.Last != nil && s.Last.StartedAt.After(before)
	})
}

// TestCheckState is `tagwatch check --state FILE` as a cron job runs it:
// the first run records the baseline; after a push every run reports a
// digest update (exit status 3, --json and the text line say so) and the
// file's history has it once; --accept moves the baseline, and the next run
// is clean (exit 0). The images come from TAGWATCH_IMAGES, then from the
// command line: the same record.
func TestCheckState(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	first := reg.Push(t, "team/app:latest", regtest.Image(t, "first")).String()
	ref := reg.Host + "/team/app:latest"
	state := filepath.Join(t.TempDir(), "state.db")
	env := []string{"TAGWATCH_IMAGES=" + ref}

	one := func(rs []watcher.Result) watcher.Result {
		t.Helper()
		if len(rs) != 1 {
			t.Fatalf("%d results: %+v", len(rs), rs)
		}
		return rs[0]
	}
	rs, code := checkJSON(t, env, "--state", state)
	if r := one(rs); code != 0 || r.Update != watcher.UpdateNone || r.Baseline != first || r.Digest != first || r.Error != "" {
		t.Fatalf("first run: exit %d, %+v", code, r)
	}

	second := reg.Push(t, "team/app:latest", regtest.Image(t, "second")).String()
	for run := 2; run <= 3; run++ {
		rs, code = checkJSON(t, env, "--state", state)
		if r := one(rs); code != exitUpdates || r.Update != watcher.UpdateDigest || r.Digest != first || r.LatestDigest != second || r.Baseline != first {
			t.Fatalf("run %d after the push: exit %d, %+v", run, code, r)
		}
	}
	out, errOut, code := tagwatch(t, env, "check", "--state", state)
	if code != exitUpdates || !strings.Contains(out, ref+"\tcustom."+reg.Host+"\tdigest update: latest → latest ("+second[:19]+")") {
		t.Errorf("text run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// Without --state the run knows no baseline: the same image is up to date.
	if rs, code := checkJSON(t, env); code != 0 || one(rs).Update != watcher.UpdateNone || one(rs).Baseline != second {
		t.Errorf("without --state: exit %d, %+v", code, rs)
	}
	if _, err := os.Stat(state + ".key"); err != nil {
		t.Errorf("no key file beside the state file: %v", err)
	}
	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := st.History(0, 0)
	st.Close()
	if err != nil || len(hist) != 1 || hist[0].Update != "digest" || hist[0].FromDigest != first || hist[0].ToDigest != second {
		t.Fatalf("the state file's history: %+v, %v; want one digest update", hist, err)
	}

	// --accept: needs the file, and a result for each image it names.
	if _, errOut, code := tagwatch(t, env, "check", "--accept"); code != exitUsage || !strings.Contains(errOut, "--accept needs --state FILE") {
		t.Errorf("--accept without --state: exit %d, %s", code, errOut)
	}
	if _, errOut, code := tagwatch(t, env, "check", "--state", state, "--accept", reg.Host+"/team/other:latest"); code != exitFailed || !strings.Contains(errOut, "has no result for "+reg.Host+"/team/other:latest") {
		t.Errorf("--accept of an image never checked: exit %d, %s", code, errOut)
	}
	out, errOut, code = tagwatch(t, env, "check", "--state", state, "--accept", "--json")
	var accepted []store.Image
	if err := json.Unmarshal([]byte(out), &accepted); err != nil || code != 0 || len(accepted) != 1 || accepted[0].Baseline != second || accepted[0].Update != "none" {
		t.Fatalf("--accept: exit %d, %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	rs, code = checkJSON(t, env, "--state", state)
	if r := one(rs); code != 0 || r.Update != watcher.UpdateNone || r.Baseline != second || r.Digest != second {
		t.Fatalf("after --accept: exit %d, %+v", code, r)
	}
	if out, _, code := tagwatch(t, env, "check", "--state", state, "--accept"); code != 0 || !strings.Contains(out, "nothing to accept") {
		t.Errorf("--accept with nothing waiting: exit %d, %s", code, out)
	}

	// The image named on the command line is the same record.
	third := reg.Push(t, "team/app:latest", regtest.Image(t, "third")).String()
	rs, code = checkJSON(t, nil, "--state", state, ref)
	if r := one(rs); code != exitUpdates || r.Update != watcher.UpdateDigest || r.Digest != second || r.LatestDigest != third {
		t.Fatalf("named on the command line: exit %d, %+v", code, r)
	}
	out, _, code = tagwatch(t, nil, "check", "--state", state, "--accept", ref)
	if code != 0 || !strings.Contains(out, ref+"\tcustom."+reg.Host+"\taccepted "+third+" as current") {
		t.Errorf("--accept %s: exit %d, %s", ref, code, out)
	}
	if rs, code := checkJSON(t, nil, "--state", state, ref); code != 0 || one(rs).Update != watcher.UpdateNone {
		t.Errorf("after accepting it by name: exit %d, %+v", code, rs)
	}
}
