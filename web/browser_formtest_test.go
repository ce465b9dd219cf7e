package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/web"
)

// TestBrowserFormTestKeptOnSave: in headless Chromium, a registry's
// settings tested in the form (against a real registry with htpasswd auth)
// and then saved unchanged give a tile that shows that test's result and
// time; saved with other settings, the tile says it was not tested.
func TestBrowserFormTestKeptOnSave(t *testing.T) {
	requireChromium(t)
	reg := startRegistry(t)
	st := storetest.Open(t)
	ts := serve(t, &web.Server{Store: st, Registries: defaultLive(t), Auth: config.WebAuth{}, Log: testLog(t, slog.LevelWarn)})
	b := newBrowser(t, ts.URL, 40*time.Second)
	mine := `article[data-id="custom.mine"]`

	b.open("/settings/registries/new/custom")
	b.fill("#f-name", "mine")
	b.fill("#f-url", reg.URL)
	b.fill("#f-login", "alice")
	b.fill("#f-password", alicePassword)
	b.click("#test-button")
	b.waitText("#test-result", "Connection ok")
	time.Sleep(1100 * time.Millisecond) // the save comes later than the test, as an admin's would
	b.click(`button[value="save"]`)
	b.waitText(".flash", "Saved custom.mine")
	b.waitText(mine+" .test-line.ok", "Connection ok")
	b.screenshot("form-test-kept")

	// The tile's time is the test's, which ran before the save.
	var got struct {
		Test *struct {
			TestedAt time.Time `json:"testedAt"`
			OK       bool      `json:"ok"`
		} `json:"test"`
	}
	res, err := http.Get(ts.URL + "/api/v1/registries/custom/mine")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if err := json.Unmarshal(body, &got); err != nil || got.Test == nil || !got.Test.OK {
		t.Fatalf("GET custom.mine: %v %s", err, body)
	}
	saved, err := st.Registries()
	if err != nil || len(saved) != 1 {
		t.Fatalf("saved: %+v, %v", saved, err)
	}
	if !got.Test.TestedAt.Before(saved[0].UpdatedAt) {
		t.Errorf("test at %v, saved at %v: the tile shows a test made after the save, not the form's", got.Test.TestedAt, saved[0].UpdatedAt)
	}
	stamp := got.Test.TestedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	if dt := b.eval(`document.querySelector('` + mine + ` .test-line time').getAttribute("datetime")`); dt != stamp {
		t.Errorf("the tile's test time is %q, the test ran at %q", dt, stamp)
	}
	if txt := b.text(mine + " .test-line"); !strings.Contains(txt, "just now") {
		t.Errorf("the tile's test line: %q", txt)
	}

	// Edited to a password never tested: the tile no longer claims a test.
	b.click(mine + ` a[href$="/edit"]`)
	b.fill("#f-password", wrongPassword)
	b.click(`button[value="save"]`)
	b.waitText(mine, "Not tested yet")
}
