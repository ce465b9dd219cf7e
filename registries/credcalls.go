package registries

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// credentialCalls carries a cloud SDK's calls (the ECR API, Google's and
// Azure AD's token endpoints) over the instance's transport, so that they
// have its deadlines and size caps, and marks what fails there as the
// credential service's: Explain then says a token request timed out, not
// the registry. x/oauth2 flattens a transport error into text (%v), so the
// last failure is also kept for the keychain to hand back whole (take).
type credentialCalls struct {
	next http.RoundTripper

	mu   sync.Mutex
	last error
}

func newCredentialCalls(rt http.RoundTripper) *credentialCalls { return &credentialCalls{next: rt} }

func (c *credentialCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.next.RoundTrip(r)
	if err != nil {
		return nil, c.keep(err)
	}
	res.Body = &credentialBody{ReadCloser: res.Body, calls: c}
	return res, nil
}

func (c *credentialCalls) keep(err error) error {
	e := &credentialServiceError{err: err}
	c.mu.Lock()
	c.last = e
	c.mu.Unlock()
	return e
}

// take returns the failure of the last call that failed, once.
func (c *credentialCalls) take() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.last
	c.last = nil
	return err
}

// withCause puts back the cause an SDK flattened into text: err is what it
// returned, and the failure credentialCalls saw becomes its cause.
func (c *credentialCalls) withCause(err error) error {
	if cause := c.take(); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// credentialBody marks the failure of reading an answer (its deadline, its
// cap) as the credential service's too.
type credentialBody struct {
	io.ReadCloser
	calls *credentialCalls
}

func (b *credentialBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.calls.keep(err)
	}
	return n, err
}

// credentialServiceError is a failed call to a cloud credential service.
type credentialServiceError struct{ err error }

func (e *credentialServiceError) Error() string { return "cloud credential service: " + e.err.Error() }
func (e *credentialServiceError) Unwrap() error { return e.err }
