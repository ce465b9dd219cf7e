package regtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Misbehaviour is one way a registry goes wrong, as real ones do on a bad
// day. A Hostile registry answers /v2/ like a registry and then misbehaves
// on its repositories' tag lists (or manifests).
type Misbehaviour string

const (
	// SlowBody answers every request but /v2/ with its headers at once,
	// then its body at one byte a second, for as long as the client stays:
	// tag lists, manifests, and token or credential requests alike.
	SlowBody Misbehaviour = "slow body"
	// EndlessLink answers every tag page with a Link header to another.
	EndlessLink Misbehaviour = "endless Link"
	// HugeTagList sends one tag list of HugeTagListBytes, generated as it
	// goes out (nothing that size is held in memory or on disk).
	HugeTagList Misbehaviour = "huge tag list"
	// GarbageJSON answers tag lists with 200 and a body that is not JSON.
	GarbageJSON Misbehaviour = "garbage JSON"
	// RedirectLoop redirects a tag list request to another URL of its own,
	// which redirects again, forever.
	RedirectLoop Misbehaviour = "redirect loop"
	// TooManyRequests answers every request, /v2/ included, with 429 and
	// Retry-After: 1, forever.
	TooManyRequests Misbehaviour = "429 forever"
	// HugeManifest answers manifest GETs with a 5 MiB manifest.
	HugeManifest Misbehaviour = "huge manifest"
)

// Misbehaviours lists every Misbehaviour.
var Misbehaviours = []Misbehaviour{SlowBody, EndlessLink, HugeTagList, GarbageJSON, RedirectLoop, TooManyRequests, HugeManifest}

// HugeTagListBytes is the size of a HugeTagList answer: 100 MB.
const HugeTagListBytes = 100_000_000

// Hostile is a running misbehaving registry on 127.0.0.1, plain HTTP.
type Hostile struct {
	Misbehaviour Misbehaviour
	Host         string // 127.0.0.1:PORT
	URL          string // http://127.0.0.1:PORT

	// Requests counts the requests it answered, by path kind ("ping",
	// "tags", "manifests", "other").
	requests [4]atomic.Int64
	// Sent counts the body bytes it sent.
	Sent atomic.Int64
}

// StartHostile starts a registry that misbehaves in way m, and stops it when
// the test ends.
func StartHostile(t testing.TB, m Misbehaviour) *Hostile {
	t.Helper()
	h := &Hostile{Misbehaviour: m}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	// A client cut off mid-body (a deadline, a cap) leaves the handler
	// writing into a dead connection; Close waits for it to notice.
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	h.Host = strings.TrimPrefix(srv.URL, "http://")
	return h
}

// Requests reports how many requests of a kind ("ping", "tags",
// "manifests", "other") it answered.
func (h *Hostile) Requests(kind string) int64 {
	for i, k := range []string{"ping", "tags", "manifests", "other"} {
		if k == kind {
			return h.requests[i].Load()
		}
	}
	return -1
}

func (h *Hostile) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	kind := 3
	switch {
	case p == "/v2/" || p == "/v2":
		kind = 0
	case strings.HasSuffix(p, "/tags/list"):
		kind = 1
	case strings.Contains(p, "/manifests/"):
		kind = 2
	}
	h.requests[kind].Add(1)
	if h.Misbehaviour == TooManyRequests {
		w.Header().Set("Retry-After", "1")
		h.write(w, http.StatusTooManyRequests, "application/json", `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
		return
	}
	if kind == 0 {
		h.write(w, http.StatusOK, "application/json", "{}")
		return
	}
	if h.Misbehaviour == SlowBody {
		// Tag lists, manifests, and anything off the API too: a token
		// or credential service can be just as slow.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			// No body to be slow with: net/http would eat the writes
			// while the client already took the answer as complete.
			return
		}
		h.stream(w, r, "", 1<<30, "", time.Second)
		return
	}
	repo := strings.TrimPrefix(p, "/v2/")
	switch {
	case kind == 1:
		repo = strings.TrimSuffix(repo, "/tags/list")
		h.tags(w, r, repo)
	case kind == 2 && h.Misbehaviour == HugeManifest:
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		h.stream(w, r, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","annotations":{"padding":"`, 5<<20, `"}}`, 0)
	default:
		h.write(w, http.StatusNotFound, "application/json", `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
	}
}

func (h *Hostile) tags(w http.ResponseWriter, r *http.Request, repo string) {
	switch h.Misbehaviour {
	case EndlessLink:
		n, _ := strconv.Atoi(r.URL.Query().Get("page"))
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?page=%d>; rel="next"`, repo, n+1))
		h.write(w, http.StatusOK, "application/json", fmt.Sprintf(`{"name":%q,"tags":["1.0.%d"]}`, repo, n))
	case HugeTagList:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		head := fmt.Sprintf(`{"name":%q,"tags":[`, repo)
		h.stream(w, r, head, HugeTagListBytes-len(head)-2, "]}", 0)
	case GarbageJSON:
		h.write(w, http.StatusOK, "application/json", "{\"name\": \""+repo+"\", \"tags\": [\"1.0.0\", <html>\x00\xff oops")
	case RedirectLoop:
		n, _ := strconv.Atoi(r.URL.Query().Get("hop"))
		http.Redirect(w, r, fmt.Sprintf("/v2/%s/tags/list?hop=%d", repo, n+1), http.StatusFound)
	default:
		h.write(w, http.StatusOK, "application/json", fmt.Sprintf(`{"name":%q,"tags":["1.0.0"]}`, repo))
	}
}

func (h *Hostile) write(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	n, _ := w.Write([]byte(body))
	h.Sent.Add(int64(n))
}

// stream sends head, then n bytes of filler ("1.0.0000001","1.0.0000002",…
// for a tag list, or x's), then tail; with every > 0 it sends one byte per
// interval. It stops when the client goes away.
func (h *Hostile) stream(w http.ResponseWriter, r *http.Request, head string, n int, tail string, every time.Duration) {
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	send := func(b []byte) bool {
		m, err := w.Write(b)
		h.Sent.Add(int64(m))
		return err == nil
	}
	if !send([]byte(head)) {
		return
	}
	if every > 0 {
		body := `{"name":"slow","tags":["1.0.0"]}`
		for i := 0; i < n; i++ {
			if !send([]byte{body[i%len(body)]}) {
				return
			}
			flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(every):
			}
		}
		return
	}
	// One 64 KiB chunk, sent over and over: generating every byte would
	// make the server, not the client, the bottleneck (under -race too).
	var chunk []byte
	if strings.HasSuffix(head, "[") {
		for i := 1; len(chunk) < 64<<10; i++ {
			chunk = fmt.Appendf(chunk, `"1.0.%07d",`, i)
		}
	} else {
		chunk = []byte(strings.Repeat("x", 64<<10))
	}
	last := []byte(`"1.0.0"`)
	if !strings.HasSuffix(head, "[") {
		last = nil
	}
	for n > len(chunk)+len(last) {
		if !send(chunk) {
			return
		}
		n -= len(chunk)
	}
	pad := append([]byte(strings.Repeat(" ", max(n-len(last), 0))), last...)
	if !send(pad) {
		return
	}
	send([]byte(tail))
}
