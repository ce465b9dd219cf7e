package registries

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ECR is Amazon Elastic Container Registry. An instance with keys reads the
// private registries of its region with the token GetAuthorizationToken
// hands out; the default anonymous instance reads public.ecr.aws.
type ECR struct {
	// Endpoint overrides the ECR API endpoint. Tests point it at a local
	// server that speaks ECR's JSON protocol; admins never need it.
	Endpoint string
	// HTTPClient carries the ECR API calls (nil: the instance's transport,
	// with its deadlines and size caps).
	HTTPClient *http.Client
}

func (ECR) Spec() Spec {
	return Spec{
		Kind:        "ecr",
		Title:       "Amazon ECR",
		Description: "Amazon Elastic Container Registry. The IAM user needs the AmazonEC2ContainerRegistryReadOnly policy (or higher). Anonymous by default, for public.ecr.aws.",
		Variables: withShared(
			// The region names the host of the ECR API the keys sign
			// requests for (api.ecr.<region>.amazonaws.com) and of the
			// registries the token is then sent to.
			Variable{Name: "region", Required: true, Endpoint: true, Description: "A valid AWS Region Code", Supported: "AWS Region list"},
			Variable{Name: "accesskey", Required: true, Description: "A valid AWS Access Key Id", Supported: "Standard AWS Credentials"},
			Variable{Name: "secretaccesskey", Required: true, Secret: true, Description: "A valid AWS Secret Access Key", Supported: "Standard AWS Credentials"},
		),
		Default:        true,
		Example:        Values{"region": "eu-west-1", "accesskey": "AKIAIOSFODNN7EXAMPLE", "secretaccesskey": "<secret access key>"},
		CredentialHint: "ECR expects the access key and secret of an IAM user with the AmazonEC2ContainerRegistryReadOnly policy, in the registry's region",
	}
}

// Hosts: a configured instance serves its region's private registries,
// whose account an image names; the default serves public.ecr.aws.
func (ECR) Hosts(v Values) (show, test string) {
	if v.Has("region") {
		return "*.dkr.ecr." + v["region"] + ".amazonaws.com", ""
	}
	return "public.ecr.aws", "public.ecr.aws"
}

// ecrHost matches private ECR registries: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn].
var ecrHost = regexp.MustCompile(`^\d{12}\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

func (ECR) Serves(v Values, host string) bool {
	host = strings.ToLower(host)
	m := ecrHost.FindStringSubmatch(host)
	if !v.Has("region") {
		return m != nil || host == "public.ecr.aws"
	}
	return m != nil && m[2] == v["region"]
}

func (e ECR) Keychain(v Values, rt http.RoundTripper) (authn.Keychain, error) {
	if !v.Has("accesskey") {
		return anonymous, nil
	}
	key, secret := v["accesskey"], v["secretaccesskey"]
	opts := ecr.Options{
		Region: v["region"],
		Credentials: aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, Source: "tagwatch"}, nil
		})),
	}
	if e.Endpoint != "" {
		opts.BaseEndpoint = aws.String(e.Endpoint)
	}
	// The SDK retries a timed-out call; past tagwatch's own request
	// deadline or size cap that only multiplies the wait (three attempts
	// made a 2 s limit last over 5 s). Other errors keep the SDK's retries.
	opts.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(pastLimits)}, o.Retryables...)
	})
	// The instance's transport bounds every API call in time and size,
	// like a registry request.
	opts.HTTPClient = &http.Client{Transport: newCredentialCalls(rt)}
	if e.HTTPClient != nil {
		opts.HTTPClient = e.HTTPClient
	}
	return staticKeychain{&ecrAuth{api: ecr.New(opts)}}, nil
}

// pastLimits says not to retry a call that hit tagwatch's request deadline
// or body cap: the next attempt would meet the same limit.
func pastLimits(err error) aws.Ternary {
	var timeout *RequestTimeoutError
	var body *BodyLimitError
	if errors.As(err, &timeout) || errors.As(err, &body) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// ecrAuth turns AWS keys into registry credentials with GetAuthorizationToken
// and keeps them until shortly before they expire (12 hours on AWS).
type ecrAuth struct {
	api *ecr.Client

	mu      sync.Mutex
	cfg     authn.AuthConfig
	expires time.Time
}

func (a *ecrAuth) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

func (a *ecrAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Until(a.expires) > 5*time.Minute {
		cfg := a.cfg
		return &cfg, nil
	}
	out, err := a.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("ecr GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, fmt.Errorf("ecr GetAuthorizationToken: the answer holds no token")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return nil, fmt.Errorf("ecr GetAuthorizationToken: token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, fmt.Errorf("ecr GetAuthorizationToken: token is not user:password")
	}
	a.cfg = authn.AuthConfig{Username: user, Password: pass}
	a.expires = time.Now().Add(time.Hour)
	if d.ExpiresAt != nil {
		a.expires = *d.ExpiresAt
	}
	cfg := a.cfg
	return &cfg, nil
}
