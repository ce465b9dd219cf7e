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

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// ACR is Azure Container Registry, read with a service principal.
//
// Without tenantid the client id and secret are sent as a docker login
// would send them (ACR accepts a service principal as username/password).
// With tenantid, tagwatch asks Azure AD for a token with azidentity and
// exchanges it at the registry's /oauth2/exchange for an ACR refresh token,
// the path Azure recommends (it also works where admin-style basic auth
// is turned off).
type ACR struct {
	// AuthorityHost overrides Azure AD's authority (https://login.microsoftonline.com/);
	// tests point it at a local one.
	AuthorityHost string
	// HTTPClient carries the Azure AD calls (nil: the instance's transport,
	// with its deadlines and size caps).
	HTTPClient *http.Client
}

// acrScope is the audience of the Azure AD token ACR takes in an exchange.
const acrScope = "https://containerregistry.azure.net/.default"

// acrUser is the username ACR expects alongside a refresh token.
const acrUser = "00000000-0000-0000-0000-000000000000"

func (ACR) Spec() Spec {
	return Spec{
		Kind:        "acr",
		Title:       "Azure Container Registry",
		Description: "*.azurecr.io, with a service principal that has the AcrPull role. Set tenantid to use Azure AD tokens exchanged for ACR refresh tokens (recommended).",
		Variables: withShared(
			Variable{Name: "clientid", Required: true, Description: "Service Principal Client ID", Supported: "See Service Principal Auth"},
			Variable{Name: "clientsecret", Required: true, Secret: true, Description: "Service Principal Secret", Supported: "See Service Principal Auth"},
			// The client secret goes to the tenant's token endpoint
			// (login.microsoftonline.com/<tenantid>): another tenant, one
			// an attacker may own, would receive it. Setting or removing
			// tenantid also switches between Azure AD and sending the
			// secret to the registry itself as basic auth.
			Variable{Name: "tenantid", Endpoint: true, Description: "Azure AD tenant ID: when set, tokens come from Azure AD and are exchanged for ACR refresh tokens", Default: "client id and secret are sent as basic credentials"},
		),
		Example:        Values{"clientid": "11111111-2222-3333-4444-555555555555", "clientsecret": "<client secret>", "tenantid": "66666666-7777-8888-9999-000000000000"},
		CredentialHint: "ACR expects a service principal's client id and secret, with the AcrPull role on the registry",
	}
}

// Hosts: ACR registries are named by their owners; a test needs an image.
func (ACR) Hosts(Values) (show, test string) { return "*.azurecr.io", "" }

func (ACR) Serves(_ Values, host string) bool {
	host = strings.ToLower(host)
	for _, s := range []string{".azurecr.io", ".azurecr.cn", ".azurecr.us"} {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (a ACR) Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error) {
	if !v.Has("tenantid") {
		return basic(v["clientid"], v["clientsecret"]), nil
	}
	opts := &azidentity.ClientSecretCredentialOptions{}
	if a.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.AuthorityHost}
		opts.DisableInstanceDiscovery = true
	}
	// Azure AD calls go through the instance's transport, bounded in time
	// and size like a registry request.
	opts.Transport = &http.Client{Transport: newCredentialCalls(rt)}
	if a.HTTPClient != nil {
		opts.Transport = a.HTTPClient
	}
	cred, err := azidentity.NewClientSecretCredential(v["tenantid"], v["clientid"], v["clientsecret"], opts)
	if err != nil {
		return nil, &FieldError{Variable: "tenantid", Message: err.Error()}
	}
	return &acrKeychain{tenant: v["tenantid"], cred: cred, client: &http.Client{Transport: rt, Timeout: 30 * time.Second}, byHost: map[string]*acrAuth{}}, nil
}

// acrKeychain holds one refresh token per registry host: a refresh token
// names the registry it was exchanged at.
type acrKeychain struct {
	tenant string
	cred   azcore.TokenCredential
	client *http.Client

	mu     sync.Mutex
	byHost map[string]*acrAuth
}

func (k *acrKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	host := r.RegistryStr()
	if a, ok := k.byHost[host]; ok {
		return a, nil
	}
	a := &acrAuth{k: k, host: host}
	k.byHost[host] = a
	return a, nil
}

type acrAuth struct {
	k    *acrKeychain
	host string

	mu      sync.Mutex
	refresh string
	expires time.Time
}

func (a *acrAuth) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

func (a *acrAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refresh == "" || time.Until(a.expires) < 5*time.Minute {
		if err := a.exchange(ctx); err != nil {
			return nil, err
		}
	}
	return &authn.AuthConfig{Username: acrUser, IdentityToken: a.refresh}, nil
}

// exchange trades an Azure AD access token for an ACR refresh token.
func (a *acrAuth) exchange(ctx context.Context) error {
	tok, err := a.k.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{acrScope}})
	if err != nil {
		return fmt.Errorf("acr: azure ad token: %w", err)
	}
	reg, err := name.NewRegistry(a.host)
	if err != nil {
		return err
	}
	form := url.Values{
		"grant_type":   {"access_token"},
		"service":      {a.host},
		"tenant":       {a.k.tenant},
		"access_token": {tok.Token},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, reg.Scheme()+"://"+a.host+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := a.k.client.Do(req)
	if err != nil {
		return fmt.Errorf("acr: token exchange at %s: %w", a.host, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("acr: token exchange: %w", newTokenError(a.host, res))
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return fmt.Errorf("acr: token exchange: %w", protocolError("the answer of "+a.host+"/oauth2/exchange holds no refresh_token"))
	}
	a.refresh = out.RefreshToken
	// ACR refresh tokens live about three hours; the Azure AD token we traded
	// bounds it, so re-exchange when that one would have expired.
	a.expires = tok.ExpiresOn
	return nil
}
