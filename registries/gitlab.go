package registries

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// GitLab is a GitLab container registry (gitlab.com or self-hosted). A
// personal access token (read_registry) is traded at authurl's /jwt/auth for
// a registry JWT scoped to one repository's pull.
type GitLab struct{}

func (GitLab) Spec() Spec {
	return Spec{
		Kind:        "gitlab",
		Title:       "GitLab Container Registry",
		Description: "A GitLab container registry: registry.gitlab.com (authurl https://gitlab.com) or a self-hosted one. The token needs the read_registry scope.",
		Variables: withShared(append(urlVariables("GitLab Registry base URL"),
			// The token goes to authurl (as Basic auth, for a JWT); the JWT
			// goes to url, which urlVariables already marks.
			Variable{Name: "authurl", Required: true, Endpoint: true, Description: "GitLab Authentication base URL"},
			Variable{Name: "token", Required: true, Secret: true, Description: "GitLab Personal Access Token"},
		)...),
		CredentialHint: "GitLab expects a personal, project or group access token with the read_registry scope, and authurl pointing at GitLab itself",
		Example:        Values{"url": "https://registry.gitlab.com", "authurl": "https://gitlab.com", "token": "<personal access token>"},
	}
}

func (GitLab) Serves(v Values, host string) bool { return servesURL(v, host) }

func (GitLab) Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error) {
	u, err := parseURL(v["authurl"])
	if err != nil || u == nil {
		return nil, &FieldError{Variable: "authurl", Message: fmt.Sprint(err)}
	}
	return &gitlabKeychain{
		authURL:  strings.TrimSuffix(u.String(), "/"),
		authHost: u.Scheme + "://" + u.Host,
		token:    v["token"],
		client:   &http.Client{Transport: rt, Timeout: 30 * time.Second},
		byRepo:   map[string]*gitlabAuth{},
	}, nil
}

type gitlabKeychain struct {
	authURL  string
	authHost string
	token    string
	client   *http.Client

	mu     sync.Mutex
	byRepo map[string]*gitlabAuth
}

// Resolve gives each repository its own authenticator: a GitLab registry
// JWT is scoped to one repository.
func (k *gitlabKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	// A registry (Instance.Test without a repository) gets a JWT without a
	// scope, as docker login asks for one: it opens /v2/ and nothing else.
	path := ""
	if s := r.String(); s != r.RegistryStr() {
		path = strings.TrimPrefix(s, r.RegistryStr()+"/")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.byRepo[path]; ok {
		return a, nil
	}
	a := &gitlabAuth{k: k, repo: path}
	k.byRepo[path] = a
	return a, nil
}

type gitlabAuth struct {
	k    *gitlabKeychain
	repo string

	mu      sync.Mutex
	jwt     string
	expires time.Time
}

func (a *gitlabAuth) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

func (a *gitlabAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jwt == "" || time.Until(a.expires) < 30*time.Second {
		if err := a.fetch(ctx); err != nil {
			return nil, err
		}
	}
	return &authn.AuthConfig{RegistryToken: a.jwt}, nil
}

func (a *gitlabAuth) fetch(ctx context.Context) error {
	q := url.Values{
		"service":       {"container_registry"},
		"client_id":     {"tagwatch"},
		"offline_token": {"false"},
	}
	if a.repo != "" {
		q.Set("scope", "repository:"+a.repo+":pull")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.k.authURL+"/jwt/auth?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	// GitLab checks the token; the username is not looked at for a personal access token.
	req.SetBasicAuth("tagwatch", a.k.token)
	res, err := a.k.client.Do(req)
	if err != nil {
		return fmt.Errorf("gitlab: token for %s: %w", a.repo, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("gitlab: token for %s: %w", a.repo, newTokenError(a.k.authHost, res))
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var out struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		return fmt.Errorf("gitlab: token for %s: %w", a.repo, protocolError("the answer of "+a.k.authHost+"/jwt/auth holds no token"))
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 300 // GitLab's default registry token lifetime
	}
	a.jwt, a.expires = out.Token, time.Now().Add(time.Duration(out.ExpiresIn)*time.Second)
	return nil
}
