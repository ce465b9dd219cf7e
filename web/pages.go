package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// pages are the parsed templates, one set per page, each with the layout.
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"ago":     ago,
	"stamp":   stamp,
	"short":   shortDigest,
	"mark":    mark,
	"where":   where,
	"label":   updateLabel,
	"rank":    updateRank,
	"badge":   updateBadge,
	"source":  sourceLabel,
	"display": displayName,
	"unix":    func(t time.Time) int64 { return t.Unix() },
	"until":   until,
	"service": serviceTitle,
}

func mustParsePages() *pages {
	p := pages{}
	for _, name := range []string{"dashboard", "history", "registries", "notifications", "notifier", "form", "error", "backup"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
		p[name] = t
	}
	return &p
}

// base is what the layout needs of every page.
type base struct {
	Title string
	Page  string // nav entry to mark current
	Flash string
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := (*s.pages)[name].ExecuteTemplate(&b, "layout", data); err != nil {
		s.Log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

type errorPage struct {
	base
	Code    int
	Message string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusInternalServerError, "Something went wrong; the daemon's log says what."
	var oe *opError
	if errors.As(err, &oe) {
		code, msg = oe.Status, oe.Msg
	} else {
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.render(w, code, "error", errorPage{base: base{Title: http.StatusText(code)}, Code: code, Message: msg})
}

// ---- Dashboard ----

type dashboardPage struct {
	base
	Images  []store.Image
	All     int
	Updates int
	Errors  int
	// Acceptable counts the new digests waiting behind listed tags, which
	// Mark all as current accepts at once.
	Acceptable  int
	Q           string
	UpdatesOnly bool
	Status      *watcher.Status
	// Down are the watchers whose last listing failed.
	Down []store.WatcherState
}

func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.Store.Images()
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := dashboardPage{base: base{Title: "Dashboard", Page: "dashboard"}, All: len(imgs)}
	for _, img := range imgs {
		if hasUpdate(img.Update) {
			d.Updates++
		}
		if img.Error != "" {
			d.Errors++
		}
		if img.Acceptable() {
			d.Acceptable++
		}
	}
	d.Q = r.URL.Query().Get("q")
	d.UpdatesOnly = r.URL.Query().Get("updates") != ""
	update := ""
	if d.UpdatesOnly {
		update = "any"
	}
	d.Images = filterImages(imgs, update, d.Q, "")
	// Updates first, the biggest first, then by name.
	sort.SliceStable(d.Images, func(i, j int) bool {
		a, b := d.Images[i], d.Images[j]
		if ra, rb := updateRank(a.Update), updateRank(b.Update); ra != rb {
			return ra > rb
		}
		return displayName(a) < displayName(b)
	})
	if s.Daemon != nil {
		st := s.Daemon.Status()
		d.Status = &st
		for _, w := range st.Watchers {
			if w.Error != "" {
				d.Down = append(d.Down, w)
			}
		}
	}
	if r.URL.Query().Get("checking") != "" {
		d.Flash = "A check has started; reload the page to see its results."
	}
	if n := r.URL.Query().Get("accepted"); n != "" {
		d.Flash = acceptedFlash(n)
	}
	s.render(w, http.StatusOK, "dashboard", d)
}

// checkForm is "Check now" without JavaScript.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request) {
	if s.Daemon != nil {
		s.Daemon.CheckNow()
	}
	http.Redirect(w, r, "/?checking=1", http.StatusSeeOther)
}

// ---- History ----

type historyPage struct {
	base
	Entries []store.HistoryEntry
	Next    uint64
	Older   bool
}

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	limit, before, msg := historyParams(r)
	if msg != "" {
		s.errorPage(w, r, &opError{Status: http.StatusBadRequest, Msg: msg})
		return
	}
	entries, err := s.Store.History(limit, before)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	p := historyPage{base: base{Title: "History", Page: "history"}, Entries: entries, Older: before != 0}
	if len(entries) == limit {
		p.Next = entries[len(entries)-1].Seq
	}
	s.render(w, http.StatusOK, "history", p)
}

// ---- Settings → Registries ----

type kindCard struct {
	Kind, Title, Description string
}

type registriesPage struct {
	base
	Tiles []registryView
	Kinds []kindCard
	// NeedSecrets counts the tiles whose saved secrets this daemon's key
	// cannot decrypt.
	NeedSecrets int
	// Defaults are the titles of the kinds present anonymously with no
	// configuration, for the page's introduction.
	Defaults string
}

func (s *Server) kinds() []kindCard {
	cat := s.Registries.Catalog()
	var out []kindCard
	for _, k := range cat.Kinds() {
		sp := cat[k].Spec()
		out = append(out, kindCard{Kind: k, Title: sp.Title, Description: sp.Description})
	}
	return out
}

// defaultTitles lists the default kinds' titles: "Docker Hub, GHCR … and Quay".
func (s *Server) defaultTitles() string {
	cat := s.Registries.Catalog()
	var titles []string
	for _, c := range registries.Defaults(cat) {
		titles = append(titles, cat[c.Kind].Spec().Title)
	}
	return andList(titles)
}

func (s *Server) registriesPage(w http.ResponseWriter, r *http.Request) {
	tiles, err := s.listRegistries()
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	p := registriesPage{base: base{Title: "Registries", Page: "settings"}, Tiles: tiles, Kinds: s.kinds(), Defaults: s.defaultTitles()}
	q := r.URL.Query()
	for _, t := range tiles {
		if len(t.NeedsSecrets) > 0 {
			p.NeedSecrets++
		}
		switch t.ID {
		case q.Get("saved"):
			p.Flash = "Saved " + t.ID + "; the running daemon uses it from now on."
		case q.Get("tested"):
			p.Flash = "Tested " + t.ID + ": the connection works."
			if t.Test == nil || !t.Test.OK {
				p.Flash = "Tested " + t.ID + ": the connection failed; its tile says why."
			}
		case q.Get("reset"):
			p.Flash = "Reset " + t.ID + " to anonymous access."
		}
	}
	if id := q.Get("deleted"); id != "" && checkName(strings.ReplaceAll(id, ".", "")) == "" {
		p.Flash = "Deleted " + id + "."
	}
	s.render(w, http.StatusOK, "registries", p)
}

// formField is one variable in the form.
type formField struct {
	registries.Variable
	Value  string // non-secret only
	Stored bool   // a secret is saved: blank keeps it (while the endpoint is unchanged)
	Bool   bool   // a true/false variable: a select
	Error  string
	// Saved is an Endpoint variable's saved value: the page's script asks
	// for the secrets again as soon as one differs (the server decides).
	Saved string
}

type formPage struct {
	base
	Kind    string
	Spec    registries.Spec
	Name    string
	Editing bool
	Default bool // editing a default instance: saving overrides it
	Fields  []formField
	Image   string
	Errors  []string // errors not about one field
	Invalid bool     // some fields have errors
	Retype  bool     // secrets were typed: they are not sent back
	NameErr string
	Test    *testView
	Action  string
}

// form builds the form of a kind for an instance: its saved values (no
// secrets) or what was just posted.
func (s *Server) form(spec registries.Spec, name string, editing bool, posted url.Values) formPage {
	p := formPage{Kind: spec.Kind, Spec: spec, Name: name, Editing: editing, Default: s.isDefault(spec.Kind, name)}
	p.Page = "settings"
	if editing {
		p.Title = "Edit " + spec.Kind + "." + name
		p.Action = "/settings/registries/" + spec.Kind + "/" + name + "/edit"
	} else {
		p.Title = "Add " + spec.Title
		p.Action = "/settings/registries/new/" + spec.Kind
	}
	var saved registryView
	if editing {
		saved, _ = s.registry(spec.Kind, name)
	}
	// Posted settings that move the instance elsewhere cannot keep its
	// secrets: the inputs stop offering to.
	moved := false
	if posted != nil && saved.Source == registries.SourceUI {
		next := registries.Values{}
		for _, v := range spec.Variables {
			next[v.Name] = posted.Get("v." + v.Name)
		}
		moved = len(spec.ChangedEndpoints(saved.Values, next)) > 0
	}
	for _, v := range spec.Variables {
		if v.AliasOf != "" {
			continue // deprecated spellings: the API still takes them
		}
		f := formField{Variable: v, Bool: v.Supported == "true, false"}
		if v.Secret {
			// Only a secret saved in the UI can be kept; a default has none.
			f.Stored = saved.Source == registries.SourceUI && slices.Contains(saved.Secrets, v.Name) && !moved
			if posted == nil && slices.Contains(saved.NeedsSecrets, v.Name) {
				f.Error = "The saved " + v.Name + " cannot be decrypted with this daemon's key (it was saved with another): enter it again."
			}
		} else if posted != nil {
			f.Value = posted.Get("v." + v.Name)
		} else {
			f.Value = saved.Values[v.Name]
		}
		if v.Endpoint && saved.Source == registries.SourceUI {
			f.Saved = saved.Values[v.Name]
		}
		p.Fields = append(p.Fields, f)
	}
	if posted != nil {
		p.Image = posted.Get("image")
	}
	return p
}

// withErrors places an operation's errors beside their fields.
func (p *formPage) withErrors(err error) {
	top, invalid := placeErrors(err, " ", func(field, msg string) bool {
		if field == "name" {
			p.NameErr = msg
			return true
		}
		for i := range p.Fields {
			if p.Fields[i].Name == field {
				p.Fields[i].Error = joinMsg(p.Fields[i].Error, msg)
				return true
			}
		}
		return false
	})
	p.Errors = append(p.Errors, top...)
	p.Invalid = invalid
}

// placeErrors splits an operation's error into the messages for the top of
// a form and those place puts beside their field (place reports false for a
// field the form does not show; that one goes to the top, after sep).
func placeErrors(err error, sep string, place func(field, msg string) bool) (top []string, invalid bool) {
	var oe *opError
	if !errors.As(err, &oe) {
		return []string{"Something went wrong; the daemon's log says what."}, false
	}
	if len(oe.Fields) == 0 {
		top = append(top, oe.Msg)
	}
	for _, fe := range oe.Fields {
		if !place(fe.Field, fe.Message) {
			top = append(top, fe.Field+sep+fe.Message)
		}
	}
	return top, len(oe.Fields) > 0
}

func joinMsg(have, msg string) string {
	if have == "" {
		return msg
	}
	return have + "; " + msg
}

func (s *Server) spec(kind string) (registries.Spec, error) {
	p, err := s.Registries.Catalog().Provider(kind)
	if err != nil {
		return registries.Spec{}, &opError{Status: http.StatusNotFound, Msg: err.Error()}
	}
	return p.Spec(), nil
}

func (s *Server) newRegistryPage(w http.ResponseWriter, r *http.Request) {
	spec, err := s.spec(r.PathValue("kind"))
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "form", s.form(spec, "", false, nil))
}

func (s *Server) editRegistryPage(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	spec, err := s.spec(kind)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	v, err := s.registry(kind, name)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if !v.CanEdit {
		s.errorPage(w, r, &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s: %v", v.ID, registries.ErrFromFile)})
		return
	}
	s.render(w, http.StatusOK, "form", s.form(spec, name, true, nil))
}

func (s *Server) newRegistryForm(w http.ResponseWriter, r *http.Request) {
	s.registryForm(w, r, r.PathValue("kind"), "", false)
}

func (s *Server) editRegistryForm(w http.ResponseWriter, r *http.Request) {
	s.registryForm(w, r, r.PathValue("kind"), r.PathValue("name"), true)
}

// registryForm saves the form, or tests its settings (the "Test connection"
// button without JavaScript), through the same code as the API.
func (s *Server) registryForm(w http.ResponseWriter, r *http.Request, kind, name string, editing bool) {
	spec, err := s.spec(kind)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, &opError{Status: http.StatusBadRequest, Msg: "the form could not be read"})
		return
	}
	if !editing {
		name = strings.TrimSpace(r.PostForm.Get("name"))
	}
	in := registryInput{Kind: kind, Name: name, Values: registries.Values{}, Clear: r.PostForm["clear"]}
	for k, v := range r.PostForm {
		if vn, ok := strings.CutPrefix(k, "v."); ok && len(v) > 0 {
			in.Values[vn] = v[0]
		}
	}
	p := s.form(spec, name, editing, r.PostForm)
	for _, v := range spec.Variables {
		p.Retype = p.Retype || (v.Secret && strings.TrimSpace(in.Values[v.Name]) != "")
	}
	if r.PostForm.Get("action") == "test" {
		tv, err := s.testUnsaved(r.Context(), in, p.Image)
		code := http.StatusOK
		if err != nil {
			p.withErrors(err)
			code = statusOf(err)
		} else {
			p.Test = &tv
		}
		s.render(w, code, "form", p)
		return
	}
	v, err := s.saveRegistry(in, !editing)
	if err != nil {
		var oe *opError
		if errors.As(err, &oe) && oe.Status == http.StatusNotFound {
			s.errorPage(w, r, err)
			return
		}
		p.withErrors(err)
		s.render(w, statusOf(err), "form", p)
		return
	}
	http.Redirect(w, r, "/settings/registries?saved="+url.QueryEscape(v.ID)+"#reg-"+v.ID, http.StatusSeeOther)
}

func statusOf(err error) int {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.Status
	}
	return http.StatusInternalServerError
}

func (s *Server) testRegistryForm(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if _, err := s.testSaved(r.Context(), kind, name, ""); err != nil {
		s.errorPage(w, r, err)
		return
	}
	id := kind + "." + name
	http.Redirect(w, r, "/settings/registries?tested="+url.QueryEscape(id)+"#reg-"+id, http.StatusSeeOther)
}

func (s *Server) resetRegistryForm(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := s.removeRegistry(kind, name, true); err != nil {
		s.errorPage(w, r, err)
		return
	}
	id := kind + "." + name
	http.Redirect(w, r, "/settings/registries?reset="+url.QueryEscape(id)+"#reg-"+id, http.StatusSeeOther)
}

func (s *Server) deleteRegistryForm(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := s.removeRegistry(kind, name, false); err != nil {
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings/registries?deleted="+url.QueryEscape(kind+"."+name), http.StatusSeeOther)
}

// ---- Template helpers ----

// ago says how long ago t was, roughly: the dashboard's "last checked".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < 90*time.Minute:
		return fmt.Sprintf("%d min ago", max(1, int(d.Round(time.Minute)/time.Minute)))
	case d < 36*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Round(time.Hour)/time.Hour))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Round(24*time.Hour)/(24*time.Hour)))
	}
	return t.Format("2 Jan 2006")
}

// until says how long until t, roughly: a notification's next try.
func until(t time.Time) string {
	d := time.Until(t)
	switch {
	case d < 45*time.Second:
		return "now"
	case d < 90*time.Minute:
		return fmt.Sprintf("in %d min", max(1, int(d.Round(time.Minute)/time.Minute)))
	}
	return fmt.Sprintf("in %d h", int(d.Round(time.Hour)/time.Hour))
}

// stamp is the exact time, for tooltips and datetime attributes.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// monograms are the kinds' marks on the tiles; app.css gives each its colour
// (.k-<kind>).
var monograms = map[string]string{
	"acr": "Az", "custom": "R", "ecr": "EC", "forgejo": "Fj", "gcr": "G", "ghcr": "GH",
	"gitea": "Gt", "gitlab": "GL", "hub": "D", "lscr": "LS", "quay": "Q",
	"alicr": "Ali", "codeberg": "Cb", "dhi": "DHI", "docr": "DO", "elastic": "El", "harbor": "Hb",
	"icr": "IBM", "jfrog": "JF", "k8s": "K8s", "linode": "Li", "mcr": "MS", "nexus": "Nx",
	"ocir": "OCI", "proget": "PG", "scaleway": "Sw", "trueforge": "TF",
}

func mark(kind string) string {
	if m, ok := monograms[kind]; ok {
		return m
	}
	if kind == "" {
		return "?"
	}
	return strings.ToUpper(kind[:1])
}

// whereView is one place an image runs, as the dashboard shows it.
type whereView struct {
	Text       string // watcher · place
	Kind       string // docker, swarm, podman, kubernetes…; empty for the config list
	StaleSince time.Time
}

func where(locs []store.Location) []whereView {
	var out []whereView
	for _, l := range locs {
		v := whereView{Text: l.String(), Kind: l.Kind, StaleSince: l.StaleSince}
		if l.Watcher == watcher.StaticWatcher || v.Kind == watcher.KindConfig {
			v.Kind = ""
		}
		out = append(out, v)
	}
	return out
}

func displayName(img store.Image) string {
	switch {
	case img.DisplayName != "":
		return img.DisplayName
	case img.Image != "":
		return img.Image
	}
	return img.Reference
}

// updateRank orders update kinds by how much they matter.
func updateRank(u string) int {
	switch u {
	case "major":
		return 7
	case "minor":
		return 6
	case "patch":
		return 5
	case "build":
		return 4
	case "prerelease":
		return 3
	case "digest":
		return 2
	case "none":
		return 1
	}
	return 0
}

func updateLabel(img store.Image) string {
	switch {
	case img.Update == "" || img.Update == "unknown":
		if img.Error != "" {
			return "error"
		}
		return "unknown"
	}
	return img.Update
}

// updateBadge is the badge's CSS class.
func updateBadge(img store.Image) string { return "u-" + updateLabel(img) }

func sourceLabel(s registries.Source) string {
	switch s {
	case registries.SourceDefault:
		return "default"
	case registries.SourceFile:
		return "config file"
	case registries.SourceUI:
		return "UI"
	}
	return string(s)
}
