package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/web"
)

// phone is the viewport of a common phone (an iPhone 12 to 15), in CSS
// pixels, at its device pixel ratio.
const (
	phoneWidth, phoneHeight = 390, 844
	phoneScale              = 3
)

// TestBrowserPhone opens every page in headless Chromium emulating a 390 ×
// 844 phone, against a real server, daemon and registry, after a real
// check: no page scrolls sideways, the top navigation fits, and every value
// of every column of the dashboard's rows is on screen with its column's
// name beside it. The same pages at desktop width keep the table. Each page
// is saved as a screenshot at both widths ($TAGWATCH_SCREENSHOTS keeps them).
func TestBrowserPhone(t *testing.T) {
	requireChromium(t)
	reg := startRegistry(t) // team/app:1.0.0, alice's password
	reg.Push(t, "team/app:1.1.0", regtest.Image(t, "newer"))

	st := storetest.Open(t)
	lan := registries.Config{Kind: "custom", Name: "lan", Source: registries.SourceFile,
		Values: registries.Values{"url": reg.URL, "login": "alice", "password": alicePassword}}
	live, err := registries.NewLive(registries.DefaultCatalog(), []registries.Config{lan}, nil, registries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	imgs := watchtest.Images(t, reg.Host+"/team/app:1.0.0", reg.Host+"/team/a-much-longer-repository-name-for-narrow-screens:2.0.0")
	imgs[0].DisplayName = "Team app"
	log := testLog(t, slog.LevelWarn)
	d := listDaemon(st, live, log, imgs...)
	runDaemon(t, d)
	recv := startReceiver(t, false)
	n := startNotifiers(t, map[string]map[string]string{"hook": hookSettings(recv)})
	ts := serve(t, &web.Server{Store: st, Registries: live, Daemon: d, Auth: config.WebAuth{}, Log: log, Notifiers: n})

	b := newBrowser(t, ts.URL, 90*time.Second)
	b.run("phone viewport", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile))

	// A real check, started from the phone.
	b.open("/")
	b.click("#check-now")
	b.waitText("#check-text", "Done")
	b.open("/")
	b.waitText(`#image-rows tr[data-update="minor"]`, "Team app")
	b.waitText(`#image-rows tr[data-update="error"]`, "a-much-longer-repository-name")

	// Every column's value of every row: on screen, labelled.
	cells := b.dashboardCells()
	if len(cells) < 2*7-1 { // the ok row has no error
		t.Fatalf("only %d cells with a value:\n%s", len(cells), b.body())
	}
	for _, c := range cells {
		if !c.Visible || c.Left < 0 || c.Right > phoneWidth+0.5 {
			t.Errorf("row %d, %s: %q is not on screen (x %.0f to %.0f of %d; visible %v)", c.Row, c.Column, c.Text, c.Left, c.Right, phoneWidth, c.Visible)
		}
		if !strings.Contains(c.Label, c.Column) {
			t.Errorf("row %d: %q is not labelled %q (label %q)", c.Row, c.Text, c.Column, c.Label)
		}
	}
	for _, col := range []string{"Runs on", "Latest", "Update"} {
		if !b.anyCell(cells, col) {
			t.Errorf("no %s value on the phone", col)
		}
	}

	pages := []struct{ name, path, ready string }{
		{"dashboard", "/", "#image-rows"},
		{"history", "/history", "table"},
		{"registries", "/settings/registries", "#tiles"},
		{"registry-form", "/settings/registries/new/custom", "#reg-form"},
		{"registry-edit", "/settings/registries/hub/public/edit", "#reg-form"},
		{"notifications", "/settings/notifications", "#notifiers"},
		{"notifier-form", "/settings/notifications/new", "#notifier-form"},
	}
	for _, p := range pages {
		b.open(p.path)
		b.waitVisible(p.ready)
		if w := b.number(`document.documentElement.scrollWidth`); w > phoneWidth {
			t.Errorf("%s: the page is %v px wide on a %d px phone: it scrolls sideways", p.name, w, phoneWidth)
		}
		if out := b.eval(offscreen); out != "" {
			t.Errorf("%s: off screen at %d px:\n%s", p.name, phoneWidth, out)
		}
		b.screenshot("phone-" + p.name)
	}

	// The tiles stack: one column.
	b.open("/settings/registries")
	if cols := b.eval(`getComputedStyle(document.querySelector("#tiles")).gridTemplateColumns`); strings.Count(strings.TrimSpace(cols), " ") != 0 {
		t.Errorf("tiles on a phone: grid columns %q, want one", cols)
	}

	// At desktop width the dashboard is a table again.
	b.run("desktop viewport", chromedp.EmulateViewport(1280, 900))
	for _, p := range pages {
		b.open(p.path)
		b.waitVisible(p.ready)
		if w := b.number(`document.documentElement.scrollWidth`); w > 1280 {
			t.Errorf("%s: %v px wide at 1280", p.name, w)
		}
		b.screenshot("desktop-" + p.name)
	}
	b.open("/")
	if disp := b.eval(`getComputedStyle(document.querySelector("#image-rows td")).display`); disp != "table-cell" {
		t.Errorf("desktop dashboard cells display as %q, want table-cell", disp)
	}
	if lbl := b.eval(`getComputedStyle(document.querySelector("#image-rows td"), "::before").content`); lbl != "none" && lbl != "normal" {
		t.Errorf("desktop dashboard cells carry a label %s", lbl)
	}
}

// offscreen lists the visible elements that stick out of the viewport on
// the right or the left ("" when none do).
const offscreen = `(() => {
  const w = document.documentElement.clientWidth, out = [];
  for (const e of document.querySelectorAll("body *")) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(e).visibility === "hidden") continue;
    let clipped = false;
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === "hidden" || o === "auto" || o === "scroll") { clipped = true; break; }
    }
    if (!clipped && (r.right > w + 0.5 || r.left < -0.5)) {
      out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "") +
        " x " + Math.round(r.left) + ".." + Math.round(r.right) + ": " + (e.innerText || "").slice(0, 40).replace(/\n/g, " "));
    }
  }
  return out.slice(0, 15).join("\n");
})()`

// cell is one value of the dashboard as the phone shows it.
type cell struct {
	Row     int     `json:"row"`
	Column  string  `json:"column"`
	Label   string  `json:"label"`
	Text    string  `json:"text"`
	Left    float64 `json:"left"`
	Right   float64 `json:"right"`
	Visible bool    `json:"visible"`
}

// dashboardCells reads every non-empty cell of the dashboard's rows: its
// column (the table header's name), the label the page shows beside it, and
// where it is. Cells whose value is wider than the screen report their
// widest line.
func (b *browser) dashboardCells() []cell {
	b.t.Helper()
	js := `(() => {
  const heads = Array.from(document.querySelectorAll("#images thead th")).map((th) => th.textContent.trim());
  const out = [];
  document.querySelectorAll("#image-rows tr").forEach((tr, row) => {
    Array.from(tr.children).forEach((td, i) => {
      const text = td.innerText.trim();
      if (!text) return;
      const range = document.createRange();
      range.selectNodeContents(td);
      let left = Infinity, right = -Infinity;
      for (const r of range.getClientRects()) { if (r.width > 0) { left = Math.min(left, r.left); right = Math.max(right, r.right); } }
      const box = td.getBoundingClientRect(), style = getComputedStyle(td);
      let label = getComputedStyle(td, "::before").content;
      label = label === "none" || label === "normal" ? "" : label.replace(/^"|"$/g, "");
      out.push({row, column: heads[i], label, text: text.slice(0, 60),
        left: Math.min(left, box.left), right: Math.max(right, box.right),
        visible: style.display !== "none" && style.visibility !== "hidden" && box.width > 0 && box.height > 0});
    });
  });
  return JSON.stringify(out);
})()`
	var cells []cell
	if err := json.Unmarshal([]byte(b.eval(js)), &cells); err != nil {
		b.t.Fatal(err)
	}
	return cells
}

func (b *browser) anyCell(cells []cell, column string) bool {
	for _, c := range cells {
		if c.Column == column {
			return true
		}
	}
	return false
}

func (b *browser) number(expr string) float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return n
}

func (b *browser) waitVisible(sel string) {
	b.t.Helper()
	b.run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}
