package regtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tagwatch/tagwatch/internal/regtest"
)

// TestFrontNamesTheUser: a Front's log says who made each request, the
// htpasswd user or the subject of the bearer token, so a test can tell
// which credentials fetched what.
func TestFrontNamesTheUser(t *testing.T) {
	skipShort(t)
	users := map[string]string{"alice": "a-pw", "bob": "b-pw"}
	for _, token := range []bool{false, true} {
		r := regtest.Start(t, regtest.Options{Users: users, Token: token})
		r.Push(t, "team/app:1.0.0", regtest.Image(t, "identity"))
		f := r.Front(t, regtest.FrontOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, user := range []string{"alice", "bob"} {
			ref, err := name.NewTag(f.Host+"/team/app:1.0.0", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: users[user]})
			if _, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
				t.Fatalf("token %v: %s: %v", token, user, err)
			}
		}
		cancel()
		var got []string
		for _, q := range f.Log() {
			if strings.Contains(q.Path, "/manifests/") {
				got = append(got, q.User+" "+q.Method+" "+q.Path)
				if q.Status != 200 {
					t.Errorf("token %v: %+v", token, q)
				}
			}
		}
		want := "alice HEAD /v2/team/app/manifests/1.0.0,bob HEAD /v2/team/app/manifests/1.0.0"
		if strings.Join(got, ",") != want {
			t.Errorf("token %v: the Front saw %q, want %q", token, got, want)
		}
	}
}
