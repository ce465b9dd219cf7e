package watcher

import (
	"context"
	"sync"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// A lane is one registry instance's share of a cycle: its targets, and the
// checks that run them. Lanes run side by side and share nothing but the
// cycle's deadline, so a registry that stalls only ever holds up its own
// images. How many checks run at once follows the instance's limiter
// (registries.Limiter): a check starts when the registry has room for its
// requests, so more run while the registry answers fast and fewer once it
// slows down or throttles, and none waits out its deadline in a queue.
type lane struct {
	in   *registries.Instance
	host string // of the lane's first target, for the status
	jobs []int  // indexes into the cycle's targets

	sessions map[string]*registries.Instance // by host/repository
}

// RegistryReport is what one registry instance's share of a cycle took.
type RegistryReport struct {
	Registry string        `json:"registry"` // kind.name
	Images   int           `json:"images"`
	Duration time.Duration `json:"duration"` // from its first request to its last answer
	Requests int64         `json:"requests"` // on the wire, every class
	// PeakInFlight is the most requests it had in flight at once; Limit
	// is where its limiter ended, Ceiling the most it may grow to (the
	// kind's, or the concurrency variable's when Pinned).
	PeakInFlight int  `json:"peakInFlight"`
	Limit        int  `json:"limit"`
	Ceiling      int  `json:"ceiling"`
	Pinned       bool `json:"pinned,omitempty"`
}

// run opens the lane's token sessions, then checks its targets.
func (l *lane) run(ctx context.Context, cy *cycle, targets []Target, finish func(int, Result, time.Duration)) RegistryReport {
	start := time.Now()
	lim := l.in.Limiter()
	lim.TakePeak()
	before := requests(l.in)

	cy.tracker.doing(l.in.ID(), "get a token")
	// An image's time is plenty for one token; a registry that cannot give
	// one then is asked again per repository, on first use.
	sctx, cancel := context.WithTimeoutCause(ctx, cy.imageTimeout, &DeadlineError{Scope: "image", Limit: cy.imageTimeout})
	l.sessions = l.openSessions(sctx, targets)
	cancel()
	cy.tracker.doing(l.in.ID(), "")

	var wg sync.WaitGroup
	for _, i := range l.jobs {
		// Past the cycle's deadline Admit returns at once, and so does
		// the check, saying its turn never came.
		tk, _ := lim.Admit(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tk.Clear()
			begin := time.Now()
			r := cy.check(ctx, l, i, targets[i], tk)
			finish(i, r, time.Since(begin))
		}()
	}
	wg.Wait()
	ceiling, pinned := lim.Ceiling()
	return RegistryReport{
		Registry:     l.in.ID(),
		Images:       len(l.jobs),
		Duration:     time.Since(start),
		Requests:     requests(l.in) - before,
		PeakInFlight: lim.TakePeak(),
		Limit:        lim.Limit(),
		Ceiling:      ceiling,
		Pinned:       pinned,
	}
}

func requests(in *registries.Instance) int64 {
	var n int64
	for _, c := range in.Stats().RequestsByClass() {
		n += c
	}
	return n
}

// openSessions asks the instance for one token covering all the lane's
// repositories on each host (in chunks, all at once), rather than one per
// repository. An instance that cannot do that is used as it is.
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
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, host := range hosts {
		repos := byHost[host]
		for start := 0; start < len(repos); start += registries.MaxSessionScopes {
			chunk := repos[start:min(start+registries.MaxSessionScopes, len(repos))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := l.in.Session(ctx, host, chunk)
				if err != nil || s == l.in {
					return // each repository gets its own token on first use
				}
				mu.Lock()
				for _, repo := range chunk {
					out[host+"/"+repo] = s
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return out
}
