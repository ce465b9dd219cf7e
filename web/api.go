package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// errorBody is every API error: a message and, for validation, the fields.
type errorBody struct {
	Error  string       `json:"error"`
	Fields []fieldError `json:"fields,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string, fields []fieldError) {
	writeJSON(w, code, errorBody{Error: msg, Fields: fields})
}

// fail answers an error from a registry operation: an opError with its
// status, ErrFromFile as a conflict, anything else as a 500 (logged, and
// not detailed to the client).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *opError
	switch {
	case errors.As(err, &oe):
		writeError(w, oe.Status, oe.Msg, oe.Fields)
	case errors.Is(err, registries.ErrFromFile):
		writeError(w, http.StatusConflict, err.Error(), nil)
	default:
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; see the daemon's log", nil)
	}
}

// maxBody bounds a request body: a registry's variables are small.
const maxBody = 1 << 20

// readJSON decodes an optional JSON body into v. It answers 415 for a body
// that is not JSON and 400 for one that does not decode; it reports false
// when it has answered.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large", nil)
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeError(w, http.StatusUnsupportedMediaType, "send application/json, not "+ct, nil)
			return false
		}
	} else {
		writeError(w, http.StatusUnsupportedMediaType, "send the body with Content-Type: application/json", nil)
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), nil)
		return false
	}
	return true
}

func (s *Server) apiHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.RegistryTests(); err != nil {
		s.Log.Error("health check: store", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "the store does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	if s.Daemon == nil {
		writeError(w, http.StatusServiceUnavailable, "no daemon is running checks", nil)
		return
	}
	writeJSON(w, http.StatusOK, s.Daemon.Status())
}

// apiWatchers lists the watchers and how their last listings went: an
// unreachable one carries its error and since when its images are stale.
func (s *Server) apiWatchers(w http.ResponseWriter, r *http.Request) {
	if s.Daemon == nil {
		writeError(w, http.StatusServiceUnavailable, "no daemon is running checks", nil)
		return
	}
	list := s.Daemon.Status().Watchers
	if list == nil {
		list = []store.WatcherState{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"watchers": list})
}

// checkAnswer is POST /check's answer: started says a new cycle was asked
// for; false means the request joined a cycle already running or queued,
// and then Message and Waiting say what that cycle is waiting for.
type checkAnswer struct {
	Started bool                   `json:"started"`
	Joined  bool                   `json:"joined"`
	Message string                 `json:"message"`
	Waiting []watcher.RegistryWait `json:"waiting,omitempty"`
}

func (s *Server) apiCheck(w http.ResponseWriter, r *http.Request) {
	if s.Daemon == nil {
		writeError(w, http.StatusServiceUnavailable, "no daemon is running checks", nil)
		return
	}
	started := s.Daemon.CheckNow()
	a := checkAnswer{Started: started, Joined: !started, Message: "a check has started"}
	if !started {
		st := s.Daemon.Status()
		a.Message, a.Waiting = joinedMessage(st), st.Waiting
	}
	w.Header().Set("Location", "/api/v1/status")
	writeJSON(w, http.StatusAccepted, a)
}

// joinedMessage tells someone who asked for a check while one runs what
// they joined: how long it has run, what it is waiting for, and by when it
// ends at the latest.
func joinedMessage(st watcher.Status) string {
	if !st.Running {
		return "a check is already queued; it starts as soon as the scheduler gets to it"
	}
	since := func(t time.Time) string { return registries.Duration(time.Since(t).Round(time.Second)) }
	msg := "joined the check running for " + since(st.StartedAt)
	if st.Summary != "" {
		msg += ": " + st.Summary
	}
	if !st.Deadline.IsZero() {
		msg += "; its deadline cuts it short in " + registries.Duration(time.Until(st.Deadline).Round(time.Second)) + " at the latest"
	}
	return msg
}

// updateKinds are the values ?update= takes besides "any".
var updateKinds = []string{"none", "major", "minor", "patch", "build", "prerelease", "digest", "unknown"}

// hasUpdate reports whether an image's result is an update to announce.
func hasUpdate(u string) bool { return u != "" && u != "none" && u != "unknown" }

// filterImages keeps the images that match: update is "", "any" or a
// kind; q is matched, case-insensitive, against the names, tags, registry
// and where the image runs.
func filterImages(imgs []store.Image, update, q, registry string) []store.Image {
	q = strings.ToLower(strings.TrimSpace(q))
	out := []store.Image{}
	for _, img := range imgs {
		switch {
		case update == "any" && !hasUpdate(img.Update),
			update != "" && update != "any" && img.Update != update && !(update == "unknown" && img.Update == ""),
			registry != "" && img.Registry != registry,
			q != "" && !strings.Contains(strings.ToLower(searchText(img)), q):
			continue
		}
		out = append(out, img)
	}
	return out
}

func searchText(img store.Image) string {
	parts := []string{img.DisplayName, img.Image, img.Reference, img.Registry, img.Tag, img.LatestTag, img.Update, img.Error}
	for _, l := range img.Where {
		parts = append(parts, l.Watcher, l.Container, l.Kind, l.Place)
	}
	return strings.Join(parts, " ")
}

func (s *Server) apiImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	update := q.Get("update")
	if update != "" && update != "any" && !slices.Contains(updateKinds, update) {
		writeError(w, http.StatusBadRequest, "update must be any or one of "+strings.Join(updateKinds, ", "), nil)
		return
	}
	imgs, err := s.Store.Images()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": filterImages(imgs, update, q.Get("q"), q.Get("registry"))})
}

// historyParams reads ?limit (1–1000, default 100) and ?before (a seq).
func historyParams(r *http.Request) (limit int, before uint64, msg string) {
	limit = 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, 0, "limit must be a number from 1 to 1000"
		}
		limit = n
	}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, "before must be a history entry's seq"
		}
		before = n
	}
	return limit, before, ""
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	limit, before, msg := historyParams(r)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg, nil)
		return
	}
	entries, err := s.Store.History(limit, before)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if entries == nil {
		entries = []store.HistoryEntry{}
	}
	body := map[string]any{"history": entries}
	if len(entries) == limit {
		body["next"] = entries[len(entries)-1].Seq
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) apiListRegistries(w http.ResponseWriter, r *http.Request) {
	list, err := s.listRegistries()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []registryView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"registries": list})
}

func (s *Server) apiGetRegistry(w http.ResponseWriter, r *http.Request) {
	v, err := s.registry(r.PathValue("kind"), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// registryBody is the body of POST /registries, PUT /registries/{kind}/{name}
// and POST /registries/test.
type registryBody struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Values map[string]string `json:"values"`
	Clear  []string          `json:"clear"`
	Image  string            `json:"image"` // tests only
}

func (s *Server) apiCreateRegistry(w http.ResponseWriter, r *http.Request) {
	var b registryBody
	if !readJSON(w, r, &b) {
		return
	}
	if b.Image != "" {
		writeError(w, http.StatusBadRequest, "image is for tests only", []fieldError{{Field: "image", Message: "is for tests only"}})
		return
	}
	if b.Kind == "" {
		writeError(w, http.StatusBadRequest, "kind is required", []fieldError{{Field: "kind", Message: "is required"}})
		return
	}
	v, err := s.saveRegistry(registryInput{Kind: b.Kind, Name: b.Name, Values: b.Values, Clear: b.Clear}, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/registries/"+v.Kind+"/"+v.Name)
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) apiPutRegistry(w http.ResponseWriter, r *http.Request) {
	var b registryBody
	if !readJSON(w, r, &b) {
		return
	}
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if (b.Kind != "" && b.Kind != kind) || (b.Name != "" && b.Name != name) || b.Image != "" {
		writeError(w, http.StatusBadRequest, "kind and name come from the path; image is for tests only", nil)
		return
	}
	v, err := s.saveRegistry(registryInput{Kind: kind, Name: name, Values: b.Values, Clear: b.Clear}, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiDeleteRegistry(w http.ResponseWriter, r *http.Request) {
	if err := s.removeRegistry(r.PathValue("kind"), r.PathValue("name"), false); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiResetRegistry(w http.ResponseWriter, r *http.Request) {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := s.removeRegistry(kind, name, true); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.registry(kind, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiTestRegistry(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Image string `json:"image"`
	}
	if !readJSON(w, r, &b) {
		return
	}
	tv, err := s.testSaved(r.Context(), r.PathValue("kind"), r.PathValue("name"), b.Image)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tv)
}

func (s *Server) apiTestUnsaved(w http.ResponseWriter, r *http.Request) {
	var b registryBody
	if !readJSON(w, r, &b) {
		return
	}
	if b.Kind == "" {
		writeError(w, http.StatusBadRequest, "kind is required", []fieldError{{Field: "kind", Message: "is required"}})
		return
	}
	tv, err := s.testUnsaved(r.Context(), registryInput{Kind: b.Kind, Name: b.Name, Values: b.Values, Clear: b.Clear}, b.Image)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tv)
}
