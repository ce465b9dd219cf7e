package registries

import (
	"context"
	"errors"
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
