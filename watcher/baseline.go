package watcher

import (
	"cmp"
	"context"
	"fmt"

	"github.com/tagwatch/tagwatch/store"
)

// withBaselines gives each tracked target the baseline its stored record
// holds (the record of key order[i]), so that the check compares the tag's
// digest with the digest accepted as current. A record written before
// baselines existed has none: the digest its last check saw behind the tag
// stands in, so that an image pushed since that check is not missed.
func withBaselines(targets []Target, order []string, prev map[string]store.Image) {
	for i := range targets {
		if targets[i].tracked() {
			p := prev[order[i]]
			targets[i].Baseline = cmp.Or(p.Baseline, p.Digest)
		}
	}
}

// RecordKey is the key of the store record that keeps a target's results
// (its reference, platform, digest in use and named instance).
func RecordKey(t Target) string { return recordKey(t) }

// CheckOnce checks targets once, as one of the daemon's cycles would, and
// keeps what it found in d.Store: tracked targets are compared with their
// stored baselines, the results are stored, and the updates they newly show
// go to the history (and through d.Route to the outbox), in one
// transaction. Unlike a cycle it leaves the store's other images alone: it
// is `tagwatch check --state`, which may check a few images of a larger
// file. Targets without a platform get d.Platform. The results are in the
// order of targets; the entries are the history it added.
func (d *Daemon) CheckOnce(ctx context.Context, targets []Target) ([]Result, []store.HistoryEntry, error) {
	d.init()
	prev := map[string]store.Image{}
	imgs, err := d.Store.Images()
	if err != nil {
		return nil, nil, err
	}
	for _, img := range imgs {
		prev[img.Key] = img
	}
	// One check per record, however often it is named.
	groups := map[string]*group{}
	pos := map[string]int{}
	var order []string
	index := make([]int, len(targets))
	for i, t := range targets {
		if t.Platform.OS == "" {
			t.Platform = d.Platform
		}
		k := recordKey(t)
		if _, ok := groups[k]; !ok {
			groups[k] = &group{target: t, found: []Found{{Target: t, Location: store.Location{Watcher: StaticWatcher, Kind: KindConfig}}}}
			pos[k] = len(order)
			order = append(order, k)
		}
		index[i] = pos[k]
	}
	uniq := make([]Target, len(order))
	for i, k := range order {
		uniq[i] = groups[k].target
	}
	withBaselines(uniq, order, prev)
	results := d.Checker.Run(ctx, uniq)

	var records []store.Image
	var history []store.HistoryEntry
	for i, r := range results {
		if r.Canceled {
			continue // stopped, not checked: the stored record stays
		}
		k := order[i]
		rec := d.record(k, groups[k], r, prev[k])
		records = append(records, rec)
		if h, ok := newUpdate(prev[k], rec); ok {
			history = append(history, h)
		}
	}
	var opts []store.HistoryOption
	if d.Route != nil {
		opts = append(opts, store.WithOutbox(d.Route))
	}
	saved, err := d.Store.PutResults(records, history, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("storing the results of %d images: %w", len(records), err)
	}
	out := make([]Result, len(targets))
	for i := range targets {
		out[i] = results[index[i]]
	}
	return out, saved, nil
}
