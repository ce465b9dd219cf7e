package web

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/store"
)

// Notifiers saved from Settings → Notifications live in the store; the
// running set is the config file's notifiers followed by them. A saved
// notifier may not take a config-file notifier's name.

// notifierInput is what the form or the API sends to save a notifier:
// settings as notify.Parse takes them. A blank url keeps the saved one.
type notifierInput struct {
	Name     string
	Settings map[string]string
}

// notifierBody is the body of POST /notifiers and PUT /notifiers/{name}.
type notifierBody struct {
	Name     string            `json:"name"`
	Settings map[string]string `json:"settings"`
}

// fileNotifier reports whether the running set has a config-file notifier
// of that name.
func (s *Server) fileNotifier(name string) bool {
	for _, sp := range s.Notifiers.Specs() {
		if sp.Name == name && sp.Source != notify.SourceUI {
			return true
		}
	}
	return false
}

func findNotifier(recs []store.Notifier, name string) *store.Notifier {
	for i := range recs {
		if recs[i].Name == name {
			return &recs[i]
		}
	}
	return nil
}

// notifierValues joins a record's settings and secrets as Parse takes them.
func notifierValues(rec store.Notifier) map[string]string {
	vals := map[string]string{}
	maps.Copy(vals, rec.Settings)
	maps.Copy(vals, rec.Secrets)
	return vals
}

// UINotifiers parses the notifiers saved in the UI, for the running set:
// those named like one in file, and those that no longer validate, are
// left out and reported through skip (err has no secret).
func UINotifiers(recs []store.Notifier, file []*notify.Spec, skip func(name string, err error)) []*notify.Spec {
	taken := map[string]bool{}
	for _, sp := range file {
		taken[sp.Name] = true
	}
	var out []*notify.Spec
	for _, rec := range recs {
		if taken[rec.Name] {
			skip(rec.Name, errors.New("the config file has a notifier of this name"))
			continue
		}
		if len(rec.Unreadable) > 0 {
			skip(rec.Name, errors.New("its saved url cannot be decrypted with this daemon's key; enter it again"))
			continue
		}
		sp, err := notify.Parse(rec.Name, notifierValues(rec))
		if err != nil {
			skip(rec.Name, err)
			continue
		}
		sp.Source = notify.SourceUI
		out = append(out, sp)
	}
	return out
}

// applyNotifiers makes the running set the config file's notifiers and recs.
func (s *Server) applyNotifiers(recs []store.Notifier) error {
	var file []*notify.Spec
	for _, sp := range s.Notifiers.Specs() {
		if sp.Source != notify.SourceUI {
			file = append(file, sp)
		}
	}
	ui := UINotifiers(recs, file, func(name string, err error) {
		s.Log.Warn("a notifier saved in the UI is invalid; left out", "notifier", name, "err", err)
	})
	return s.Notifiers.Apply(append(file, ui...))
}

// changeNotifiers applies next, then persists it with write; if writing
// fails, old is applied again.
func (s *Server) changeNotifiers(old, next []store.Notifier, write func() error) error {
	if err := s.applyNotifiers(next); err != nil {
		return err
	}
	if err := write(); err != nil {
		if err2 := s.applyNotifiers(old); err2 != nil {
			s.Log.Error("restoring the notifiers after a failed write", "err", err2)
		}
		return err
	}
	return nil
}

// prepareNotifier validates an input through notify.Parse, the config
// file's path, with a blank url filled from the saved notifier, and returns
// the record to save.
func (s *Server) prepareNotifier(in notifierInput, creating bool, recs []store.Notifier) (store.Notifier, error) {
	if msg := checkName(in.Name); msg != "" {
		return store.Notifier{}, &opError{Status: http.StatusBadRequest, Msg: "invalid notifier name",
			Fields: []fieldError{{Field: "name", Message: msg}}}
	}
	if s.fileNotifier(in.Name) {
		return store.Notifier{}, &opError{Status: http.StatusConflict, Msg: "notifier " + in.Name + " is defined in the config file: edit it there",
			Fields: []fieldError{{Field: "name", Message: "is defined in the config file"}}}
	}
	rec := findNotifier(recs, in.Name)
	switch {
	case creating && rec != nil:
		return store.Notifier{}, &opError{Status: http.StatusConflict, Msg: "notifier " + in.Name + " already exists; edit it instead",
			Fields: []fieldError{{Field: "name", Message: "is taken"}}}
	case !creating && rec == nil:
		return store.Notifier{}, &opError{Status: http.StatusNotFound, Msg: "no notifier " + in.Name + " saved in the UI"}
	}
	vals := map[string]string{}
	for k, v := range in.Settings {
		if k != "title" && k != "body" && k != "images" {
			v = strings.TrimSpace(v)
		}
		if v != "" {
			vals[k] = v
		}
	}
	if vals["url"] == "" && rec != nil {
		if slices.Contains(rec.Unreadable, "url") {
			return store.Notifier{}, &opError{Status: http.StatusBadRequest, Msg: "notifier " + in.Name + ": enter the url again",
				Fields: []fieldError{{Field: "url", Message: "the saved url cannot be decrypted with this daemon's key (it was saved with another); enter the url again"}}}
		}
		vals["url"] = rec.Secrets["url"]
	}
	if _, err := notify.Parse(in.Name, vals); err != nil {
		oe := &opError{Status: http.StatusBadRequest, Msg: "invalid settings for notifier " + in.Name}
		var fes notify.FieldErrors
		if errors.As(err, &fes) {
			for _, fe := range fes {
				if fe.Key == "" {
					oe.Fields = append(oe.Fields, fieldError{Field: "name", Message: fe.Msg})
				} else {
					oe.Fields = append(oe.Fields, fieldError{Field: fe.Key, Message: fe.Msg})
				}
			}
		} else {
			oe.Msg = err.Error()
		}
		return store.Notifier{}, oe
	}
	out := store.Notifier{Name: in.Name, Settings: map[string]string{}, Secrets: map[string]string{"url": vals["url"]}, UpdatedAt: time.Now().UTC()}
	for k, v := range vals {
		if k != "url" {
			out.Settings[k] = v
		}
	}
	return out, nil
}

// saveNotifier validates and saves a notifier from the UI or the API and
// applies it at once.
func (s *Server) saveNotifier(in notifierInput, creating bool) (notifierView, error) {
	if s.Notifiers == nil {
		return notifierView{}, errNoNotifiers
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.Store.Notifiers()
	if err != nil {
		return notifierView{}, err
	}
	rec, err := s.prepareNotifier(in, creating, recs)
	if err != nil {
		return notifierView{}, err
	}
	next := slices.DeleteFunc(slices.Clone(recs), func(r store.Notifier) bool { return r.Name == rec.Name })
	next = append(next, rec)
	if err := s.changeNotifiers(recs, next, func() error { return s.Store.PutNotifier(rec) }); err != nil {
		return notifierView{}, err
	}
	s.notifierTests.drop(rec.Name) // it tested other settings
	s.Log.Info("notifier saved", "notifier", rec.Name, "url", notify.RedactURL(rec.Secrets["url"]))
	return s.notifierByName(rec.Name)
}

// removeNotifier deletes a notifier saved in the UI.
func (s *Server) removeNotifier(name string) error {
	if s.Notifiers == nil {
		return errNoNotifiers
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fileNotifier(name) {
		return &opError{Status: http.StatusConflict, Msg: "notifier " + name + " is defined in the config file: remove it there"}
	}
	recs, err := s.Store.Notifiers()
	if err != nil {
		return err
	}
	if findNotifier(recs, name) == nil {
		return &opError{Status: http.StatusNotFound, Msg: "no notifier " + name + " saved in the UI"}
	}
	next := slices.DeleteFunc(slices.Clone(recs), func(r store.Notifier) bool { return r.Name == name })
	err = s.changeNotifiers(recs, next, func() error {
		_, err := s.Store.DeleteNotifier(name)
		return err
	})
	if err != nil {
		return err
	}
	s.notifierTests.drop(name)
	s.Log.Info("notifier deleted", "notifier", name)
	return nil
}

// notifierByName returns one notifier's view, or a 404.
func (s *Server) notifierByName(name string) (notifierView, error) {
	list, err := s.listNotifiers()
	if err != nil {
		return notifierView{}, err
	}
	for _, v := range list {
		if v.Name == name {
			return v, nil
		}
	}
	return notifierView{}, &opError{Status: http.StatusNotFound, Msg: "no notifier is named " + name}
}

// ---- API ----

func (s *Server) apiGetNotifier(w http.ResponseWriter, r *http.Request) {
	if s.Notifiers == nil {
		s.fail(w, r, errNoNotifiers)
		return
	}
	v, err := s.notifierByName(r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiCreateNotifier(w http.ResponseWriter, r *http.Request) {
	var b notifierBody
	if !readJSON(w, r, &b) {
		return
	}
	v, err := s.saveNotifier(notifierInput(b), true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/notifiers/"+url.PathEscape(v.Name))
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) apiPutNotifier(w http.ResponseWriter, r *http.Request) {
	var b notifierBody
	if !readJSON(w, r, &b) {
		return
	}
	name := r.PathValue("name")
	if b.Name != "" && b.Name != name {
		writeError(w, http.StatusBadRequest, "the name comes from the path", []fieldError{{Field: "name", Message: "differs from the path"}})
		return
	}
	v, err := s.saveNotifier(notifierInput{Name: name, Settings: b.Settings}, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiDeleteNotifier(w http.ResponseWriter, r *http.Request) {
	if err := s.removeNotifier(r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- Form ----

// notifierFormPage is the add/edit form. Values never hold the url.
type notifierFormPage struct {
	base
	Name       string
	Editing    bool
	Action     string
	Values     map[string]string
	FieldErrs  map[string]string
	Errors     []string
	Invalid    bool
	StoredURL  bool // editing: a url is saved; blank keeps it
	Retype     bool // a url was typed: it is not sent back
	Thresholds []string
	Bools      []string // the true/false settings: selects
}

func (s *Server) notifierForm(name string, editing bool, posted url.Values) (notifierFormPage, error) {
	p := notifierFormPage{base: base{Page: "settings"}, Name: name, Editing: editing, Values: map[string]string{},
		FieldErrs: map[string]string{}, Thresholds: notify.Thresholds, Bools: []string{"batch", "digest"}}
	if editing {
		p.Title = "Edit notifier " + name
		p.Action = "/settings/notifications/" + url.PathEscape(name) + "/edit"
		recs, err := s.Store.Notifiers()
		if err != nil {
			return p, err
		}
		rec := findNotifier(recs, name)
		if rec == nil {
			if s.fileNotifier(name) {
				return p, &opError{Status: http.StatusConflict, Msg: "notifier " + name + " is defined in the config file: edit it there"}
			}
			return p, &opError{Status: http.StatusNotFound, Msg: "no notifier " + name + " saved in the UI"}
		}
		p.StoredURL = rec.Secrets["url"] != ""
		if posted == nil {
			maps.Copy(p.Values, rec.Settings)
			if slices.Contains(rec.Unreadable, "url") {
				p.FieldErrs["url"] = "The saved url cannot be decrypted with this daemon's key (it was saved with another): enter it again."
			}
		}
	} else {
		p.Title = "Add notifier"
		p.Action = "/settings/notifications/new"
	}
	for _, k := range notify.Keys {
		if k != "url" && posted != nil {
			p.Values[k] = posted.Get(k)
		}
	}
	return p, nil
}

// withErrors places an operation's errors beside their fields.
func (p *notifierFormPage) withErrors(err error) {
	top, invalid := placeErrors(err, ": ", func(field, msg string) bool {
		if !slices.Contains(notify.Keys, field) && field != "name" {
			return false
		}
		p.FieldErrs[field] = joinMsg(p.FieldErrs[field], msg)
		return true
	})
	p.Errors = append(p.Errors, top...)
	p.Invalid = invalid
}

func (s *Server) newNotifierPage(w http.ResponseWriter, r *http.Request) {
	s.showNotifierForm(w, r, "", false)
}

func (s *Server) editNotifierPage(w http.ResponseWriter, r *http.Request) {
	s.showNotifierForm(w, r, r.PathValue("name"), true)
}

func (s *Server) showNotifierForm(w http.ResponseWriter, r *http.Request, name string, editing bool) {
	if s.Notifiers == nil {
		s.errorPage(w, r, errNoNotifiers)
		return
	}
	p, err := s.notifierForm(name, editing, nil)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "notifier", p)
}

func (s *Server) newNotifierForm(w http.ResponseWriter, r *http.Request) {
	s.postNotifierForm(w, r, "", false)
}

func (s *Server) editNotifierForm(w http.ResponseWriter, r *http.Request) {
	s.postNotifierForm(w, r, r.PathValue("name"), true)
}

// postNotifierForm saves the form through the same code as the API.
func (s *Server) postNotifierForm(w http.ResponseWriter, r *http.Request, name string, editing bool) {
	if s.Notifiers == nil {
		s.errorPage(w, r, errNoNotifiers)
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
	p, err := s.notifierForm(name, editing, r.PostForm)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	in := notifierInput{Name: name, Settings: map[string]string{}}
	for _, k := range notify.Keys {
		in.Settings[k] = r.PostForm.Get(k)
	}
	p.Retype = strings.TrimSpace(in.Settings["url"]) != ""
	v, err := s.saveNotifier(in, !editing)
	if err != nil {
		p.withErrors(err)
		s.render(w, statusOf(err), "notifier", p)
		return
	}
	http.Redirect(w, r, "/settings/notifications?saved="+url.QueryEscape(v.Name)+"#notifier-"+url.PathEscape(v.Name), http.StatusSeeOther)
}

func (s *Server) deleteNotifierForm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.removeNotifier(name); err != nil {
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings/notifications?deleted="+url.QueryEscape(name), http.StatusSeeOther)
}
