package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tagwatch/tagwatch/store"
)

// Accepting a digest: an image listed in the config without @sha256: has a
// baseline, the digest accepted as current; a new image behind its tag is a
// digest update until the admin accepts it (Mark as current on the
// dashboard, or the API). Only that kind of update can be accepted: a newer
// tag of a listed image is moved to by changing the tag in the config, and a
// container's new digest by pulling it and recreating the container (its
// engine's digest says what runs).

// acceptAnswer is the answer of POST /api/v1/images/{key}/accept.
type acceptAnswer struct {
	// Accepted is false when there was nothing to accept (no update, or
	// one a check cleared meanwhile): accepting is idempotent.
	Accepted bool        `json:"accepted"`
	Image    store.Image `json:"image"`
}

// acceptOne accepts the digest update of the image stored under key. It
// answers an opError for an unknown key (404) or an update that cannot be
// accepted (409), saying what to do instead.
func (s *Server) acceptOne(key string) (acceptAnswer, error) {
	img, ok, err := s.Store.Image(key)
	if err != nil {
		return acceptAnswer{}, err
	}
	if !ok {
		return acceptAnswer{}, &opError{Status: http.StatusNotFound, Msg: "No image is watched under the key " + strconv.Quote(key) + "."}
	}
	if msg := notAcceptable(img); msg != "" {
		return acceptAnswer{}, &opError{Status: http.StatusConflict, Msg: msg}
	}
	if !img.Acceptable() {
		return acceptAnswer{Image: img}, nil
	}
	done, err := s.Store.AcceptDigests([]string{key}, time.Now().UTC())
	if err != nil {
		return acceptAnswer{}, err
	}
	if len(done) == 0 {
		// A check between the read and the accept cleared it.
		img, _, err = s.Store.Image(key)
		return acceptAnswer{Image: img}, err
	}
	s.Log.Info("digest accepted as current", "image", done[0].Reference, "platform", done[0].Platform, "digest", done[0].Baseline)
	return acceptAnswer{Accepted: true, Image: done[0]}, nil
}

// notAcceptable says why img's update cannot be accepted, and what to do
// instead; "" when it can be, or when there is nothing to accept.
func notAcceptable(img store.Image) string {
	if img.Acceptable() || !hasUpdate(img.Update) {
		return ""
	}
	name := img.Reference
	if img.Platform != "" {
		name += " (" + img.Platform + ")"
	}
	if img.Update != "digest" {
		if img.Baseline != "" {
			return fmt.Sprintf("%s has a newer tag, %s, not a new image behind %s: there is nothing to accept. The config file names the tag; change it there to move on.", name, img.LatestTag, img.Tag)
		}
		return fmt.Sprintf("%s has a newer tag, %s: there is nothing to accept. Change the tag where the image is deployed to move on.", name, img.LatestTag)
	}
	return fmt.Sprintf("The digest in use of %s is the one its engine runs: pull the image and recreate the container (or the service, or the pod) to make it current.", name)
}

func (s *Server) apiAcceptImage(w http.ResponseWriter, r *http.Request) {
	if !readJSON(w, r, &struct{}{}) {
		return
	}
	a, err := s.acceptOne(r.PathValue("key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// apiAcceptImages accepts every digest update that can be accepted, or
// those of the keys the body names ({"keys": [...]}). Images whose update
// cannot be accepted are left as they are (a newer tag, a container).
func (s *Server) apiAcceptImages(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Keys []string `json:"keys"`
	}
	if !readJSON(w, r, &b) {
		return
	}
	if b.Keys != nil {
		var missing []string
		for _, k := range b.Keys {
			if _, ok, err := s.Store.Image(k); err != nil {
				s.fail(w, r, err)
				return
			} else if !ok {
				missing = append(missing, strconv.Quote(k))
			}
		}
		if len(missing) > 0 {
			writeError(w, http.StatusNotFound, "no image is watched under the keys "+andList(missing), nil)
			return
		}
	}
	done, err := s.Store.AcceptDigests(b.Keys, time.Now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, img := range done {
		s.Log.Info("digest accepted as current", "image", img.Reference, "platform", img.Platform, "digest", img.Baseline)
	}
	writeJSON(w, http.StatusOK, map[string]any{"accepted": done})
}

// acceptForm is Mark as current without JavaScript: one image (key), or
// every one (no key).
func (s *Server) acceptForm(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	n := 0
	if key == "" {
		done, err := s.Store.AcceptDigests(nil, time.Now().UTC())
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		n = len(done)
	} else {
		a, err := s.acceptOne(key)
		if err != nil {
			s.errorPage(w, r, err) // a 404 or 409 shows its message
			return
		}
		if a.Accepted {
			n = 1
		}
	}
	http.Redirect(w, r, "/?accepted="+strconv.Itoa(n), http.StatusSeeOther)
}

// acceptedFlash is what the dashboard says after Mark as current; n is how
// many images were accepted, as the form's redirect says.
func acceptedFlash(n string) string {
	switch n {
	case "0":
		return "Nothing to mark as current: no new image was waiting to be accepted."
	case "1":
		return "Marked 1 image as current: its new digest is the baseline now, and the update is cleared."
	}
	if _, err := strconv.Atoi(n); err != nil {
		return ""
	}
	return "Marked " + n + " images as current: their new digests are the baselines now, and the updates are cleared."
}
