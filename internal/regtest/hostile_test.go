package regtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

// TestHostileIsWhatItSays reads each hostile registry's misbehaviour with a
// plain client, so that the tests built on them test what they claim.
func TestHostileIsWhatItSays(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, h *regtest.Hostile, path string) *http.Response {
		t.Helper()
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, m := range regtest.Misbehaviours {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			h := regtest.StartHostile(t, m)
			ping := get(t, h, "/v2/")
			if want := map[bool]int{true: 429, false: 200}[m == regtest.TooManyRequests]; ping.StatusCode != want {
				t.Errorf("/v2/: %d, want %d", ping.StatusCode, want)
			}
			pinged := h.Sent.Load()
			res := get(t, h, "/v2/team/app/tags/list")
			switch m {
			case regtest.HugeTagList:
				head := make([]byte, 64)
				io.ReadFull(res.Body, head)
				n, err := io.Copy(io.Discard, res.Body)
				if err != nil || n+64 != regtest.HugeTagListBytes {
					t.Errorf("read %d bytes, %v; want %d", n+64, err, regtest.HugeTagListBytes)
				}
				if !bytes.HasPrefix(head, []byte(`{"name":"team/app","tags":["1.0.0000001","1.0.0000002",`)) {
					t.Errorf("the list starts %q", head)
				}
			case regtest.EndlessLink:
				if l := res.Header.Get("Link"); l != `</v2/team/app/tags/list?page=1>; rel="next"` {
					t.Errorf("Link: %q", l)
				}
			case regtest.GarbageJSON:
				b, _ := io.ReadAll(res.Body)
				if json.Valid(b) || res.StatusCode != 200 {
					t.Errorf("%d %q is valid JSON", res.StatusCode, b)
				}
			case regtest.RedirectLoop:
				if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasSuffix(loc, "/v2/team/app/tags/list?hop=1") {
					t.Errorf("%d to %q", res.StatusCode, loc)
				}
			case regtest.TooManyRequests:
				if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" {
					t.Errorf("%d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
				}
			case regtest.SlowBody:
				b := make([]byte, 2)
				n, _ := io.ReadFull(res.Body, b)
				if sent := h.Sent.Load() - pinged; n != 2 || sent > 3 {
					t.Errorf("read %d bytes after a second; the server sent %d, want them one a second", n, sent)
				}
			case regtest.HugeManifest:
				m := get(t, h, "/v2/team/app/manifests/latest")
				n, _ := io.Copy(io.Discard, m.Body)
				if n < 5<<20 {
					t.Errorf("manifest of %d bytes, want over 5 MiB", n)
				}
			}
		})
	}
}
