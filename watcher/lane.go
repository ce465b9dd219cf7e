package watcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// A lane is one registry instance's share of a cycle: its targets, and the
// workers that check them. Lanes run side by side and share nothing but
// the cycle's deadline, so a registry that stalls only ever holds up its
// own images. The number of workers is the registry's concurrency.
type lane struct {
	in      *registries.Instance
	host    string // of the lane's first target, for the status
	jobs    []int  // indexes into the cycle's targets
	workers int

	sessions map[string]*registries.Instance // by host/repository
}

// run opens the lane's token session, then checks its targets.
func (l *lane) run(ctx context.Context, cy *cycle, targets []Target, finish func(int, Result, time.Duration)) {
	cy.tracker.doing(l.in.ID(), "get a token")
	// An image's time is plenty for one token; a registry that cannot give
	// one then is asked again per repository, on first use.
	sctx, cancel := context.WithTimeoutCause(ctx, cy.imageTimeout, &DeadlineError{Scope: "image", Limit: cy.imageTimeout})
	l.sessions = l.openSessions(sctx, targets)
	cancel()
	cy.tracker.doing(l.in.ID(), "")

	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(l.workers, len(l.jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(l.jobs) {
					return
				}
				i := l.jobs[k]
				start := time.Now()
				r := cy.check(ctx, l, i, targets[i])
				finish(i, r, time.Since(start))
			}
		}()
	}
	wg.Wait()
}

// openSessions asks the instance for one token covering all the lane's
// repositories on each host (in chunks), rather than one per repository. An
// instance that cannot do that is used as it is.
func (l *lane) openSessions(ctx context.Context, targets []Target) map[string]*registries.Instance {
	byHost := map[string][]string{}
	var hosts []string
	seen := map[string]bool{}
	for _, i := range l.jobs {
		img := targets[i].Image
		if seen[img.Name()] {
			continue
		}
		seen[img.Name()] = true
		if _, ok := byHost[img.Host]; !ok {
			hosts = append(hosts, img.Host)
		}
		byHost[img.Host] = append(byHost[img.Host], img.Repository)
	}
	out := map[string]*registries.Instance{}
	for _, host := range hosts {
		repos := byHost[host]
		for start := 0; start < len(repos); start += registries.MaxSessionScopes {
			if ctx.Err() != nil {
				return out
			}
			chunk := repos[start:min(start+registries.MaxSessionScopes, len(repos))]
			s, err := l.in.Session(ctx, host, chunk)
			if err != nil || s == l.in {
				continue // each repository gets its own token on first use
			}
			for _, repo := range chunk {
				out[host+"/"+repo] = s
			}
		}
	}
	return out
}
