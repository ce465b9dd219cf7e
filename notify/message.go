package notify

import (
	"bytes"
	"errors"
	"strings"
	"text/template"
	"time"

	"github.com/tagwatch/tagwatch/store"
)

// Default templates. Title and body are Go text/templates over Data.
const (
	DefaultTitle = `tagwatch: {{.Reference}} {{.Update}} update`
	DefaultBody  = `{{with .DisplayName}}{{.}}: {{end}}{{.Image}}
{{if eq .Update "digest"}}{{.Tag}}: new image {{short .Digest}} → {{short .LatestDigest}}{{else}}{{.Tag}} → {{.LatestTag}}{{end}} ({{.Update}} update){{with .Where}}
on {{join . ", "}}{{end}}{{with .Link}}
{{.}}{{end}}`
	DefaultBatchTitle = `tagwatch: {{len .Updates}} new update{{if ne (len .Updates) 1}}s{{end}}`
	DefaultBatchBody  = `{{range .Updates}}- {{.Image}} {{if eq .Update "digest"}}{{.Tag}}: new image {{short .LatestDigest}}{{else}}{{.Tag}} → {{.LatestTag}}{{end}} ({{.Update}}){{with .Where}} on {{join . ", "}}{{end}}{{with .Link}} {{.}}{{end}}
{{end}}`
)

// Item is one update, as templates and the webhook payload see it.
type Item struct {
	Reference    string    `json:"reference"`             // the reference in use, normalized: host/repository:tag[@digest]
	Image        string    `json:"image"`                 // host/repository
	DisplayName  string    `json:"displayName,omitempty"` // tagwatch.display.name, when set
	Registry     string    `json:"registry"`              // registry instance, kind.name
	Platform     string    `json:"platform,omitempty"`    // os/arch the image was checked for
	Update       string    `json:"update"`                // major, minor, patch, build, prerelease or digest
	Tag          string    `json:"tag"`                   // the tag in use
	LatestTag    string    `json:"latestTag"`             // the tag offered (the same tag for a digest update)
	Digest       string    `json:"digest"`                // the digest in use
	LatestDigest string    `json:"latestDigest"`          // the digest behind latestTag now
	Link         string    `json:"link,omitempty"`        // release notes or registry page
	DetectedAt   time.Time `json:"detectedAt"`
	// Where are the places that run it: "watcher · place (kind)", e.g.
	// "k3s · media/Deployment/jellyfin/jellyfin (kubernetes)", "config list".
	Where []string `json:"where,omitempty"`
}

// Data is what the title and body templates see. Its Item fields are the
// update's ({{.Reference}}, {{.LatestTag}}); in a batch they are the first
// update's, and {{range .Updates}} walks them all.
type Data struct {
	Item
	Notifier string
	Updates  []Item // every update of the message: one unless batch
	Batch    bool
	Test     bool // a test message (the UI's Test button)
}

var funcs = template.FuncMap{
	"join": strings.Join,
	// short cuts a digest to its algorithm and 12 hex digits.
	"short": func(d string) string {
		alg, hex, ok := strings.Cut(d, ":")
		if !ok || len(hex) <= 12 {
			return d
		}
		return alg + ":" + hex[:12]
	},
}

// sample is the data a template is tried on at load time and the update a
// test message announces.
var sample = Item{
	Reference:    "docker.io/library/nginx:1.25.3",
	Image:        "docker.io/library/nginx",
	DisplayName:  "web",
	Registry:     "hub.public",
	Platform:     "linux/amd64",
	Update:       "minor",
	Tag:          "1.25.3",
	LatestTag:    "1.26.0",
	Digest:       "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
	LatestDigest: "sha256:9f8e7d6c5b4a30291807f6e5d4c3b2a19f8e7d6c5b4a30291807f6e5d4c3b2a1",
	Link:         "https://hub.docker.com/_/nginx",
	DetectedAt:   time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	Where:        []string{"local · web (docker)"},
}

// parseTemplate parses text (or def when text is empty) and tries it on
// sample data, single and batch, so that a field that does not exist fails
// at load time rather than at the first update.
func parseTemplate(name, text, def string) (*template.Template, error) {
	if strings.TrimSpace(text) == "" {
		text = def
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, cleanTemplateErr(err)
	}
	for _, d := range []Data{
		{Item: sample, Notifier: "test", Updates: []Item{sample}},
		{Item: sample, Notifier: "test", Updates: []Item{sample, sample}, Batch: true},
	} {
		if _, err := render(t, d); err != nil {
			return nil, cleanTemplateErr(err)
		}
	}
	return t, nil
}

func cleanTemplateErr(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "template: "))
}

func render(t *template.Template, d Data) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// item turns a history entry, and what the store knows of its image, into
// an Item.
func item(e store.HistoryEntry, img store.Image) Item {
	ref := e.Reference
	name, _, _ := strings.Cut(ref, "@")
	if e.FromTag != "" {
		name = strings.TrimSuffix(name, ":"+e.FromTag)
	}
	return Item{
		Reference:    ref,
		Image:        name,
		DisplayName:  img.DisplayName,
		Registry:     e.Registry,
		Platform:     img.Platform,
		Update:       e.Update,
		Tag:          e.FromTag,
		LatestTag:    e.ToTag,
		Digest:       e.FromDigest,
		LatestDigest: e.ToDigest,
		Link:         img.Link,
		DetectedAt:   e.At,
		Where:        places(img.Where),
	}
}

// places names where an image runs, with the kind of source that found it;
// a place whose watcher cannot be listed right now says so.
func places(locs []store.Location) []string {
	var out []string
	for _, l := range locs {
		s := l.String()
		var notes []string
		if l.Kind != "" && l.Kind != "config" {
			notes = append(notes, l.Kind)
		}
		if !l.StaleSince.IsZero() {
			notes = append(notes, "stale")
		}
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}

// message is one notification: rendered text plus the updates it announces.
type message struct {
	Notifier string
	Title    string
	Body     string
	Items    []Item
	Test     bool
}

// compose renders a message with the notifier's templates, falling back to
// the defaults when a template fails on real data (it passed on the sample).
//
// A notifier that does not batch gets several updates in one message only
// when it batched when they were routed: they go out with the default
// batch templates, its own being written for one update.
func (s *Spec) compose(items []Item, test bool) (message, error) {
	d := Data{Item: items[0], Notifier: s.Name, Updates: items, Batch: s.Batch || len(items) > 1, Test: test}
	m := message{Notifier: s.Name, Items: items, Test: test}
	title, body, defTitle, defBody := s.title, s.body, s.defaultTitle(), s.defaultBody()
	if d.Batch && !s.Batch {
		defTitle, defBody = DefaultBatchTitle, DefaultBatchBody
		title = template.Must(parseTemplate("title", "", defTitle))
		body = template.Must(parseTemplate("body", "", defBody))
	}
	var errs []error
	var err error
	if m.Title, err = render(title, d); err != nil {
		errs = append(errs, err)
		m.Title, _ = render(template.Must(parseTemplate("title", "", defTitle)), d)
	}
	if m.Body, err = render(body, d); err != nil {
		errs = append(errs, err)
		m.Body, _ = render(template.Must(parseTemplate("body", "", defBody)), d)
	}
	if test {
		m.Title = "[test] " + m.Title
	}
	return m, errors.Join(errs...)
}
