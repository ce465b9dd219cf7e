package registries

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header  string
		attempt int
		want    time.Duration
		ok      bool
	}{
		{"", 0, time.Second, true},
		{"", 2, 4 * time.Second, true},
		{"3", 0, 3 * time.Second, true},
		{" 0 ", 1, 0, true},
		{"-1", 0, 0, false},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 0, 7 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, 0, true},
		{"soon", 0, 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.header, tt.attempt, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q, %d) = %v, %v; want %v, %v", tt.header, tt.attempt, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"100;w=21600", 100, 6 * time.Hour, true},
		{"76;w=21600", 76, 6 * time.Hour, true},
		{"200", 200, 0, true},
		{"", 0, 0, false},
		{"lots", 0, 0, false},
	}
	for _, tt := range tests {
		n, w, ok := parseRateLimit(tt.in)
		if n != tt.n || w != tt.window || ok != tt.ok {
			t.Errorf("parseRateLimit(%q) = %d, %v, %v; want %d, %v, %v", tt.in, n, w, ok, tt.n, tt.window, tt.ok)
		}
	}
}

func TestClassifyPath(t *testing.T) {
	for p, want := range map[string]RequestClass{
		"/v2/":                               RequestPing,
		"/v2":                                RequestPing,
		"/token":                             RequestToken,
		"/service/token":                     RequestToken,
		"/v2/token":                          RequestToken,
		"/v2/registry/auth":                  RequestToken,
		"/v2/_auth":                          RequestToken,
		"/artifactory/api/docker/x/v2/token": RequestToken,
		"/v2/team/app/tags/list":             RequestTags,
		"/v2/library/token/tags/list":        RequestTags,
		"/v2/team/app/manifests/1.0.0":       RequestManifest,
		"/v2/token/manifests/sha256:0123":    RequestManifest,
		"/v2/team/app/blobs/sha256:0123":     RequestOther,
		"/v2/team/app/blobs/uploads/":        RequestOther,
		"/v2/team/app/referrers/sha256:0123": RequestOther,
		"/v2/_catalog":                       RequestOther,
	} {
		if got := classifyPath(p); got != want {
			t.Errorf("classifyPath(%q) = %s; want %s", p, got, want)
		}
	}
}

// TestAPIPrefix: a url's path, as admins write it, gives the path the API
// is served under.
func TestAPIPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"/":                                     "",
		"/artifactory/api/docker/docker-local":  "/artifactory/api/docker/docker-local",
		"/artifactory/api/docker/docker-local/": "/artifactory/api/docker/docker-local",
		"/repository/docker-hosted/v2":          "/repository/docker-hosted",
		"/repository/docker-hosted/v2/":         "/repository/docker-hosted",
		"/v2/":                                  "",
	} {
		if got := apiPrefix(in); got != want {
			t.Errorf("apiPrefix(%q) = %q; want %q", in, got, want)
		}
	}
}
