package watcher_test

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/store"
)

// TestDaemonOutboxAndRetention: a cycle's updates and the messages Route
// makes of them land in the store together, with the updates' Seq; after
// each cycle the history is pruned to the retention.
func TestDaemonOutboxAndRetention(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{})
	var refs []string
	var digests []v1.Hash
	for i := range 3 {
		repo := fmt.Sprintf("team/app%d", i)
		digests = append(digests, reg.Push(t, repo+":1.0.0", regtest.Image(t, repo)))
		refs = append(refs, reg.Host+"/"+repo+":1.0.0")
	}
	st := storetest.Open(t)
	d := newDaemon(t, st, refs...)
	var routed [][]store.HistoryEntry
	d.Route = func(saved []store.HistoryEntry) []store.OutboxMessage {
		routed = append(routed, saved)
		return []store.OutboxMessage{{Notifier: "hook", Updates: saved}}
	}
	d.Retention = store.Retention{Keep: 4}
	ctx := context.Background()
	if rep := d.RunCycle(ctx, d.Sources); len(rep.Updates) != 0 || len(routed) != 0 {
		t.Fatalf("first cycle: %d updates, %d routes", len(rep.Updates), len(routed))
	}

	// Two rounds of a new minor version for every image: 6 updates, 4 kept.
	for round, tag := range []string{"1.1.0", "1.2.0"} {
		for i := range 3 {
			reg.Tag(t, fmt.Sprintf("team/app%d", i), digests[i], tag)
		}
		rep := d.RunCycle(ctx, d.Sources)
		if len(rep.Updates) != 3 || len(routed) != round+1 {
			t.Fatalf("round %d: %d updates, %d routes", round, len(rep.Updates), len(routed))
		}
		for i, e := range routed[round] {
			if e.Seq == 0 || e.Seq != rep.Updates[i].Seq || e.ToTag != tag {
				t.Errorf("round %d: routed %+v, recorded %+v", round, e, rep.Updates[i])
			}
		}
	}
	msgs, err := st.Outbox("hook")
	if err != nil || len(msgs) != 2 || len(msgs[1].Updates) != 3 || msgs[1].Updates[2].Seq != 6 {
		t.Fatalf("outbox %+v, %v", msgs, err)
	}
	hist, err := st.History(0, 0)
	if err != nil || len(hist) != 4 || hist[0].Seq != 6 || hist[3].Seq != 3 {
		t.Errorf("history after retention: %d entries (%v), want seqs 6..3", len(hist), err)
	}
	// Messages still waiting are not pruned with their history.
	if len(msgs[0].Updates) != 3 || msgs[0].State != store.OutboxWaiting {
		t.Errorf("the first cycle's message: %+v", msgs[0])
	}
}
