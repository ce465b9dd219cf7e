package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
)

// registryView is one registry instance as the API answers it and a tile
// shows it. It never holds a secret: Secrets names the ones that are set.
type registryView struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Title     string            `json:"title"`
	Source    registries.Source `json:"source"` // default | file | ui
	Host      string            `json:"host"`
	Anonymous bool              `json:"anonymous"`
	// Active is false for an instance saved in the UI that the running set
	// left out (its settings no longer validate).
	Active   bool              `json:"active"`
	ReadOnly bool              `json:"readOnly"`
	Values   map[string]string `json:"values"`
	Secrets  []string          `json:"secrets"`
	// Repositories are the patterns of the repositories it is limited to
	// (its repositories variable, split); none: all of its hosts'.
	Repositories []string `json:"repositories"`
	// NeedsSecrets names saved secrets this daemon's key cannot decrypt
	// (the store was copied without its key): enter them again.
	NeedsSecrets []string       `json:"needsSecrets,omitempty"`
	Test         *testView      `json:"test,omitempty"`
	RateLimit    *rateLimitView `json:"rateLimit,omitempty"`

	// What the tile offers.
	CanEdit   bool `json:"-"`
	CanReset  bool `json:"-"`
	CanDelete bool `json:"-"`
}

// testView is a connection test's outcome: a status, a short classified
// reason and the time it took; never what the registry sent (issue 11:
// a test reports, it does not relay).
type testView struct {
	TestedAt time.Time `json:"testedAt"`
	OK       bool      `json:"ok"`
	// Status is the HTTP status that failed the test, when one did.
	Status int `json:"status,omitempty"`
	// Class sorts the failure (credentials, not-found, tls, timeout, …).
	Class registries.Class `json:"class,omitempty"`
	// Error is one sentence that says what to do, as the tile shows it;
	// ErrorDetail adds the facts behind it.
	Error       string `json:"error"`
	ErrorDetail string `json:"errorDetail,omitempty"`
	// TookMS is how long the test ran, in milliseconds.
	TookMS int64 `json:"tookMs"`
	// TagCount, with a test image, is how many tags the repository lists.
	TagCount *int `json:"tagCount,omitempty"`
}

type rateLimitView struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Window    int       `json:"window"` // seconds
	SeenAt    time.Time `json:"seenAt"`
}

// WindowText is the window in hours, as Docker Hub states it ("6 h").
func (r rateLimitView) WindowText() string {
	d := time.Duration(r.Window) * time.Second
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return d.String()
}

// isDefault reports whether kind.name is one of the default anonymous
// instances: those are reset, not deleted.
func (s *Server) isDefault(kind, name string) bool {
	p, err := s.Registries.Catalog().Provider(kind)
	return err == nil && p.Spec().Default && name == registries.DefaultName
}

// listRegistries returns every instance of the running set and the UI's
// saved instances the set left out, sorted by id.
func (s *Server) listRegistries() ([]registryView, error) {
	recs, err := s.Store.Registries()
	if err != nil {
		return nil, err
	}
	tests, err := s.lastTests()
	if err != nil {
		return nil, err
	}
	var out []registryView
	seen := map[string]bool{}
	for _, in := range s.Registries.Set().Instances() {
		seen[in.ID()] = true
		out = append(out, s.viewOf(in, findRecord(recs, in.Kind, in.Name), tests))
	}
	for _, rec := range recs {
		if id := rec.Kind + "." + rec.Name; !seen[id] {
			out = append(out, s.viewOfRecord(rec, tests))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// registry returns one instance's view, or a 404.
func (s *Server) registry(kind, name string) (registryView, error) {
	if _, err := s.Registries.Catalog().Provider(kind); err != nil {
		return registryView{}, &opError{Status: http.StatusNotFound, Msg: err.Error()}
	}
	recs, err := s.Store.Registries()
	if err != nil {
		return registryView{}, err
	}
	tests, err := s.lastTests()
	if err != nil {
		return registryView{}, err
	}
	if in, ok := s.Registries.Set().Instance(kind, name); ok {
		return s.viewOf(in, findRecord(recs, kind, name), tests), nil
	}
	if rec := findRecord(recs, kind, name); rec != nil {
		return s.viewOfRecord(*rec, tests), nil
	}
	return registryView{}, &opError{Status: http.StatusNotFound, Msg: fmt.Sprintf("no registry %s.%s", kind, name)}
}

func (s *Server) lastTests() (map[string]store.RegistryTest, error) {
	list, err := s.Store.RegistryTests()
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.RegistryTest, len(list))
	for _, t := range list {
		out[t.Kind+"."+t.Name] = t
	}
	return out, nil
}

func findRecord(recs []store.Registry, kind, name string) *store.Registry {
	for i := range recs {
		if recs[i].Kind == kind && recs[i].Name == name {
			return &recs[i]
		}
	}
	return nil
}

func (s *Server) viewOf(in *registries.Instance, rec *store.Registry, tests map[string]store.RegistryTest) registryView {
	vals, secrets := in.Public()
	sort.Strings(secrets)
	show, _ := in.Hosts()
	v := registryView{
		Kind:      in.Kind,
		Name:      in.Name,
		ID:        in.ID(),
		Title:     in.Spec().Title,
		Source:    in.Source,
		Host:      show,
		Anonymous: in.Anonymous(),
		Active:    true,
		Values:    vals,
		Secrets:   secrets,
	}
	if rl := in.Stats().RateLimit(); !rl.Seen.IsZero() {
		v.RateLimit = &rateLimitView{Limit: rl.Limit, Remaining: rl.Remaining, Window: int(rl.Window / time.Second), SeenAt: rl.Seen}
	}
	s.finishView(&v, rec, tests)
	return v
}

func (s *Server) viewOfRecord(rec store.Registry, tests map[string]store.RegistryTest) registryView {
	show, _ := s.Registries.Catalog().Hosts(rec.Kind, rec.Values)
	v := registryView{
		Kind:      rec.Kind,
		Name:      rec.Name,
		ID:        rec.Kind + "." + rec.Name,
		Source:    registries.SourceUI,
		Host:      show,
		Anonymous: len(rec.Secrets) == 0 && len(rec.Unreadable) == 0,
		Values:    maps.Clone(rec.Values),
		Secrets:   slices.Sorted(maps.Keys(rec.Secrets)),
	}
	if p, err := s.Registries.Catalog().Provider(rec.Kind); err == nil {
		v.Title = p.Spec().Title
	}
	if v.Values == nil {
		v.Values = map[string]string{}
	}
	s.finishView(&v, &rec, tests)
	return v
}

func (s *Server) finishView(v *registryView, rec *store.Registry, tests map[string]store.RegistryTest) {
	if v.Secrets == nil {
		v.Secrets = []string{}
	}
	// An instance left out of the running set may hold patterns that do
	// not parse: its tile shows the value as it is, with the others.
	repos, _ := registries.ParseRepositories(v.Values["repositories"])
	v.Repositories = append([]string{}, repos...)
	def := s.isDefault(v.Kind, v.Name)
	v.ReadOnly = v.Source == registries.SourceFile
	v.CanEdit = v.Source == registries.SourceUI || v.Source == registries.SourceDefault
	// A default's UI settings left out of the running set (its secrets
	// cannot be decrypted) still have a record to reset.
	v.CanReset = def && (v.Source == registries.SourceUI || (rec != nil && v.Source == registries.SourceDefault))
	v.CanDelete = !def && v.Source == registries.SourceUI
	if rec != nil && v.Source != registries.SourceFile && len(rec.Unreadable) > 0 {
		v.NeedsSecrets = slices.Clone(rec.Unreadable)
	}
	t, ok := tests[v.ID]
	// A test older than the saved settings tested other settings, unless it
	// was run from the form on exactly the settings then saved.
	if !ok || t.TestedAt.IsZero() || (rec != nil && t.TestedAt.Before(rec.UpdatedAt) && !t.Settings.Equal(rec.UpdatedAt)) {
		return
	}
	v.Test = &testView{TestedAt: t.TestedAt, OK: t.Error == "", Error: t.Error, ErrorDetail: t.Detail}
}

// registryInput is what the form or the API sends to save or test an instance.
type registryInput struct {
	Kind, Name string
	// Values may hold secrets. A secret left blank keeps the stored one.
	Values registries.Values
	// Clear names stored secrets to remove.
	Clear []string
}

// opError is a failed registry operation: its HTTP status, a message and,
// for validation, the broken variables.
type opError struct {
	Status int
	Msg    string
	Fields []fieldError
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *opError) Error() string { return e.Msg }

// fieldErrors flattens what Validate or Open reports into one error per
// form field: "login/password must not be defined" becomes two.
func fieldErrors(err error) []fieldError {
	var list []*registries.FieldError
	var ve registries.ValidationError
	var fe *registries.FieldError
	switch {
	case errors.As(err, &ve):
		list = ve
	case errors.As(err, &fe):
		list = []*registries.FieldError{fe}
	default:
		return nil
	}
	var out []fieldError
	for _, fe := range list {
		for _, f := range strings.Split(fe.Variable, "/") {
			out = append(out, fieldError{Field: f, Message: fe.Message})
		}
	}
	return out
}

// checkName is the config file's rule for names, as a message for a form
// field ("" when the name is good).
func checkName(name string) string {
	if err := config.CheckName(name); err != nil {
		return err.Error()
	}
	return ""
}

// prepare turns an input into a config the way the config file's would be
// checked (Spec.Validate through Live.Check), with blank secrets filled
// from the stored instance. It is the one validation path of the form, the
// API and the unsaved connection test.
func (s *Server) prepare(in registryInput, creating bool) (registries.Config, *registries.Instance, error) {
	p, err := s.Registries.Catalog().Provider(in.Kind)
	if err != nil {
		return registries.Config{}, nil, &opError{Status: http.StatusNotFound, Msg: err.Error()}
	}
	spec := p.Spec()
	if msg := checkName(in.Name); msg != "" {
		return registries.Config{}, nil, &opError{Status: http.StatusBadRequest, Msg: "invalid registry name",
			Fields: []fieldError{{Field: "name", Message: msg}}}
	}
	id := in.Kind + "." + in.Name
	if s.Registries.FromFile(in.Kind, in.Name) {
		return registries.Config{}, nil, &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s: %v", id, registries.ErrFromFile),
			Fields: []fieldError{{Field: "name", Message: "is defined in the config file"}}}
	}
	recs, err := s.Store.Registries()
	if err != nil {
		return registries.Config{}, nil, err
	}
	rec := findRecord(recs, in.Kind, in.Name)
	if creating && rec != nil {
		return registries.Config{}, nil, &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s already exists; edit it instead", id),
			Fields: []fieldError{{Field: "name", Message: "is taken"}}}
	}

	vals := registries.Values{}
	for k, v := range in.Values {
		vals[k] = v
	}
	clearing := map[string]bool{}
	var bad []fieldError
	for _, name := range in.Clear {
		if decl, ok := spec.Variable(name); !ok || !decl.Secret {
			bad = append(bad, fieldError{Field: name, Message: "is not a secret of " + in.Kind + " registries; only secrets can be cleared"})
		}
		clearing[name] = true
	}
	if len(bad) > 0 {
		return registries.Config{}, nil, &opError{Status: http.StatusBadRequest, Msg: "invalid settings for " + id, Fields: bad}
	}
	if rec != nil {
		if again := reuseSecrets(spec, *rec, vals, clearing); len(again) > 0 {
			return registries.Config{}, nil, &opError{Status: http.StatusBadRequest,
				Msg:    "registry " + id + ": enter the saved secrets again: they are only sent where they were saved for, and decrypted with the key they were saved with",
				Fields: again}
		}
	}
	c := registries.Config{Kind: in.Kind, Name: in.Name, Source: registries.SourceUI, Values: vals}
	inst, err := s.Registries.Check(c)
	if err != nil {
		oe := &opError{Status: http.StatusBadRequest, Msg: "invalid settings for " + id, Fields: fieldErrors(err)}
		if oe.Fields == nil {
			oe.Msg = err.Error()
		}
		return c, nil, redactOp(oe, vals, spec)
	}
	return c, inst, nil
}

// reuseSecrets fills the secrets the input leaves blank from the saved
// instance, where that is safe: only while every variable that says where
// they go (Spec.ChangedEndpoints) keeps its saved value, so that a url
// changed to another host never receives the saved password; and only
// secrets this daemon's key decrypts. It returns one error per secret that
// must be entered again instead (none when all could be reused); a secret
// being cleared needs nothing.
func reuseSecrets(spec registries.Spec, rec store.Registry, vals registries.Values, clearing map[string]bool) []fieldError {
	changed := spec.ChangedEndpoints(rec.Values, vals)
	var again []fieldError
	for _, decl := range spec.Variables {
		if !decl.Secret || decl.AliasOf != "" || clearing[decl.Name] || given(spec, vals, decl.Name) {
			continue
		}
		stored, ok := rec.Secrets[decl.Name]
		switch {
		case slices.Contains(rec.Unreadable, decl.Name):
			again = append(again, fieldError{Field: decl.Name,
				Message: "the saved " + decl.Name + " cannot be decrypted with this daemon's key (it was saved with another); enter the " + decl.Name + " again"})
		case !ok:
		case len(changed) > 0:
			again = append(again, fieldError{Field: decl.Name,
				Message: "the " + andList(changed) + " changed; enter the " + decl.Name + " again"})
		default:
			vals[decl.Name] = stored
		}
	}
	return again
}

// andList joins names as a sentence does: "url", "url and cafile",
// "url, cafile and insecure".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// given reports whether the input sets a variable, under its name or a
// deprecated alias (Hub's token for password).
func given(spec registries.Spec, vals registries.Values, name string) bool {
	if vals.Has(name) {
		return true
	}
	for _, d := range spec.Variables {
		if d.AliasOf == name && vals.Has(d.Name) {
			return true
		}
	}
	return false
}

// redact blanks any secret value that an error message might quote.
func redact(msg string, vals registries.Values, spec registries.Spec) string {
	for _, d := range spec.Variables {
		if v := strings.TrimSpace(vals[d.Name]); d.Secret && len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "••••")
		}
	}
	return msg
}

func redactOp(e *opError, vals registries.Values, spec registries.Spec) *opError {
	e.Msg = redact(e.Msg, vals, spec)
	for i := range e.Fields {
		e.Fields[i].Message = redact(e.Fields[i].Message, vals, spec)
	}
	return e
}

// record splits an opened instance's validated values into what the store
// keeps in the clear and its secrets.
func record(inst *registries.Instance) store.Registry {
	rec := store.Registry{Kind: inst.Kind, Name: inst.Name, Values: map[string]string{}, Secrets: map[string]string{}, UpdatedAt: time.Now().UTC()}
	for k, v := range inst.Values {
		if d, ok := inst.Spec().Variable(k); ok && d.Secret {
			rec.Secrets[k] = v
		} else {
			rec.Values[k] = v
		}
	}
	return rec
}

// uiConfigs turns the store's records into the configs Live.Apply takes,
// leaving out (and logging) those the config file owns or that no longer
// validate, as the daemon does at start-up.
func (s *Server) uiConfigs(recs []store.Registry) []registries.Config {
	var out []registries.Config
	for _, r := range recs {
		vals := registries.Values{}
		maps.Copy(vals, r.Values)
		maps.Copy(vals, r.Secrets)
		c := registries.Config{Kind: r.Kind, Name: r.Name, Source: registries.SourceUI, Values: vals}
		if s.Registries.FromFile(r.Kind, r.Name) {
			continue
		}
		if len(r.Unreadable) > 0 {
			// Without them it would run anonymously, or not validate:
			// leave it out until they are entered again.
			s.Log.Warn("a registry saved in the UI has secrets this daemon's key cannot decrypt; left out until they are entered again",
				"registry", c.ID(), "secrets", r.Unreadable)
			continue
		}
		if _, err := s.Registries.Check(c); err != nil {
			s.Log.Warn("a registry saved in the UI is invalid; left out", "registry", c.ID())
			continue
		}
		out = append(out, c)
	}
	return out
}

// change applies a new list of UI records to the running daemon, then
// persists it with write; if writing fails the old list is applied again.
func (s *Server) change(old, next []store.Registry, write func() error) error {
	if err := s.Registries.Apply(s.uiConfigs(next)); err != nil {
		return err
	}
	if err := write(); err != nil {
		if err2 := s.Registries.Apply(s.uiConfigs(old)); err2 != nil {
			s.Log.Error("restoring the registries after a failed write", "err", err2)
		}
		return err
	}
	return nil
}

// saveRegistry validates and saves an instance from the UI or the API and
// applies it to the running daemon at once.
func (s *Server) saveRegistry(in registryInput, creating bool) (registryView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, inst, err := s.prepare(in, creating)
	if err != nil {
		return registryView{}, err
	}
	recs, err := s.Store.Registries()
	if err != nil {
		return registryView{}, err
	}
	rec := record(inst)
	next := slices.DeleteFunc(slices.Clone(recs), func(r store.Registry) bool { return r.Kind == rec.Kind && r.Name == rec.Name })
	next = append(next, rec)
	if err := s.change(recs, next, func() error { return s.Store.PutRegistry(rec) }); err != nil {
		return registryView{}, err
	}
	s.Log.Info("registry saved", "registry", inst.ID(), "anonymous", inst.Anonymous())
	if tv, ok := s.formTests.find(inst, time.Now()); ok {
		// Tested in the form with these very settings: the tile shows it.
		t := store.RegistryTest{Kind: rec.Kind, Name: rec.Name, TestedAt: tv.TestedAt, Error: tv.Error, Detail: tv.ErrorDetail, Settings: rec.UpdatedAt}
		if err := s.Store.PutRegistryTest(t); err != nil {
			s.Log.Error("keeping the form's test of a saved registry", "registry", inst.ID(), "err", err)
		}
	}
	return s.registry(in.Kind, in.Name)
}

// removeRegistry deletes a UI instance (reset false) or resets a default
// instance to anonymous access by dropping its UI override (reset true).
func (s *Server) removeRegistry(kind, name string, reset bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.Registries.Catalog().Provider(kind); err != nil {
		return &opError{Status: http.StatusNotFound, Msg: err.Error()}
	}
	id := kind + "." + name
	if s.Registries.FromFile(kind, name) {
		return &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s: %v", id, registries.ErrFromFile)}
	}
	def := s.isDefault(kind, name)
	switch {
	case reset && !def:
		return &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s is not a default registry; delete it instead", id)}
	case !reset && def:
		return &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s is a default registry; reset it to anonymous access instead", id)}
	}
	recs, err := s.Store.Registries()
	if err != nil {
		return err
	}
	if findRecord(recs, kind, name) == nil {
		if reset {
			return nil // already anonymous
		}
		return &opError{Status: http.StatusNotFound, Msg: "no registry " + id + " saved in the UI"}
	}
	next := slices.DeleteFunc(slices.Clone(recs), func(r store.Registry) bool { return r.Kind == kind && r.Name == name })
	// The store drops the instance's last test with it: it tested the
	// settings just removed.
	err = s.change(recs, next, func() error {
		_, err := s.Store.DeleteRegistry(kind, name)
		return err
	})
	if err != nil {
		return err
	}
	if reset {
		s.Log.Info("registry reset to anonymous access", "registry", id)
	} else {
		s.Log.Info("registry deleted", "registry", id)
	}
	return nil
}

// testTimeout bounds a connection test.
const testTimeout = 30 * time.Second

// testSaved tests a running instance and records the outcome for its tile.
func (s *Server) testSaved(ctx context.Context, kind, name, image string) (testView, error) {
	if _, err := s.Registries.Catalog().Provider(kind); err != nil {
		return testView{}, &opError{Status: http.StatusNotFound, Msg: err.Error()}
	}
	inst, ok := s.Registries.Set().Instance(kind, name)
	if !ok {
		recs, err := s.Store.Registries()
		if err == nil && findRecord(recs, kind, name) != nil {
			return testView{}, &opError{Status: http.StatusConflict, Msg: fmt.Sprintf("registry %s.%s is not running: its saved settings no longer validate; edit it", kind, name)}
		}
		return testView{}, &opError{Status: http.StatusNotFound, Msg: fmt.Sprintf("no registry %s.%s", kind, name)}
	}
	tv := s.runTest(ctx, inst, image)
	if err := s.Store.PutRegistryTest(store.RegistryTest{Kind: kind, Name: name, TestedAt: tv.TestedAt, Error: tv.Error, Detail: tv.ErrorDetail}); err != nil {
		return testView{}, err
	}
	return tv, nil
}

// testUnsaved tests settings not saved yet: the form's "Test connection".
// The outcome is remembered for these exact settings (formTests): saving
// them puts it on the tile.
func (s *Server) testUnsaved(ctx context.Context, in registryInput, image string) (testView, error) {
	if in.Name == "" {
		in.Name = "unsaved"
	}
	_, inst, err := s.prepare(in, false)
	if err != nil {
		return testView{}, err
	}
	tv := s.runTest(ctx, inst, image)
	s.formTests.remember(inst, tv, time.Now())
	return tv, nil
}

// runTest tests an instance: with an image ("host/repository"), by listing
// its tags, which proves pull access; without, by the /v2/ handshake on the
// host the instance serves. It runs on an instance of its own whose
// connections refuse link-local and cloud metadata addresses (unless
// web.allowlinklocal): whoever can press Test must not reach those through
// tagwatch. The outcome is classified (registries.Explain); what the
// registry said goes to the debug log only.
func (s *Server) runTest(ctx context.Context, running *registries.Instance, image string) testView {
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	start := time.Now()
	tv := testView{}
	err := func() error {
		inst, err := running.Isolated(registries.Options{Transport: registries.TestTransport(s.AllowLinkLocal)})
		if err != nil {
			return err
		}
		if image = strings.TrimSpace(image); image != "" {
			img, err := registries.ParseImage(image)
			if err != nil {
				return err
			}
			if !inst.Serves(img.Host) {
				return fmt.Errorf("registry %s does not serve %s", inst.ID(), img.Host)
			}
			tags, err := inst.Tags(ctx, img)
			if err == nil {
				n := len(tags)
				tv.TagCount = &n
			}
			return err
		}
		_, host := inst.Hosts()
		if host == "" {
			return fmt.Errorf("%s serves more than one host: name a test image (host/repository) to test it", inst.ID())
		}
		return inst.Test(ctx, host, "")
	}()
	tv.TestedAt = time.Now().UTC()
	tv.TookMS = time.Since(start).Milliseconds()
	if err != nil {
		p := registries.Explain(err)
		tv.Status, tv.Class = p.Status, p.Class
		tv.Error = redact(p.Reason, running.Values, running.Spec())
		tv.ErrorDetail = redact(p.Detail, running.Values, running.Spec())
		s.Log.Info("registry tested", "registry", running.ID(), "ok", false, "reason", tv.Error, "took_ms", tv.TookMS)
		s.Log.Debug("registry test: what was said", "registry", running.ID(), "detail", tv.ErrorDetail, "said", registries.Raw(err))
	} else {
		tv.OK = true
		s.Log.Info("registry tested", "registry", running.ID(), "ok", true, "took_ms", tv.TookMS)
	}
	return tv
}
