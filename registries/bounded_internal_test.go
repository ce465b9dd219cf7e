package registries

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestLargeListGate: one tag list at a time grows past largeTagList; the
// next waits for it to be done, or gives up at its own deadline.
func TestLargeListGate(t *testing.T) {
	gate := newLargeLists()
	ctx := context.Background()
	_, a := withTagBudget(ctx, DefaultTagListBytes, gate)
	_, b := withTagBudget(ctx, DefaultTagListBytes, gate)

	// Small lists never wait.
	a.read.Store(largeTagList - 1)
	b.read.Store(largeTagList - 1)
	if err := a.grow(ctx); err != nil || a.holds {
		t.Fatalf("a small list waited or took the gate: %v", err)
	}
	a.read.Store(largeTagList)
	if err := a.grow(ctx); err != nil || !a.holds {
		t.Fatalf("a large list did not take the gate: %v", err)
	}
	if err := a.grow(ctx); err != nil {
		t.Fatalf("the list holding the gate waited for itself: %v", err)
	}

	// b, large too, waits until a is done.
	b.read.Store(largeTagList)
	grew := make(chan error, 1)
	go func() { grew <- b.grow(ctx) }()
	select {
	case err := <-grew:
		t.Fatalf("b grew past %d bytes while a held the gate: %v", largeTagList, err)
	case <-time.After(50 * time.Millisecond):
	}
	a.done()
	if err := <-grew; err != nil || !b.holds {
		t.Fatalf("b after a was done: %v", err)
	}

	// c gives up at its deadline, with its cause.
	_, c := withTagBudget(ctx, DefaultTagListBytes, gate)
	c.read.Store(largeTagList)
	cause := errors.New("the request's deadline")
	cctx, cancel := context.WithTimeoutCause(ctx, 20*time.Millisecond, cause)
	defer cancel()
	if err := c.grow(cctx); !errors.Is(err, cause) {
		t.Fatalf("c: %v, want its deadline's cause", err)
	}
	b.done()
	c.done() // holds nothing: a no-op
	if len(gate) != 0 {
		t.Fatal("the gate is still taken")
	}
}

// TestBodyReadEndedByDeadline: when a request's deadline cancels it while
// its body is read, net/http reports the read either as a context error or
// as the error of the connection it closed on the cancel, whichever comes
// first (a full CI run met the second). Both must read as the request
// deadline, with the bytes that did arrive. The body below stands in for
// the connection so that each order is tested every time.
func TestBodyReadEndedByDeadline(t *testing.T) {
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	for _, readErr := range []error{context.DeadlineExceeded, closed} {
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Request: r,
				Body: &stallingBody{ctx: r.Context(), first: []byte("{\"na"), err: readErr}}, nil
		})
		b := &bounded{next: rt, limits: Limits{Request: 50 * time.Millisecond}.WithDefaults()}
		req, err := http.NewRequest(http.MethodGet, "http://registry.test/v2/team/app/manifests/1.0", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		var rte *RequestTimeoutError
		if !errors.As(err, &rte) || rte.BodyRead != 4 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("read ended by %v: got %v; want the request deadline with 4 bytes read", readErr, err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// stallingBody sends first, then nothing until its request's context ends,
// and then fails with err.
type stallingBody struct {
	ctx   context.Context
	first []byte
	err   error
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.err
}

func (b *stallingBody) Close() error { return nil }
