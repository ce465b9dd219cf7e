package watcher_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// BenchmarkCycle is the daemon's scale target: a local token-auth registry
// with 200 repositories × 50 tags, 1,000 watched images across them, one full
// cycle per iteration into a real bbolt file. It reports the cycle's wall
// time, requests per image by kind, tokens and tag lists per repository,
// peak RSS and the store's size.
//
//	go test -run XXX -bench Cycle -benchtime 3x ./watcher/
func BenchmarkCycle(b *testing.B) {
	const repos, tagsPerRepo, images = 200, 50, 1000
	const user, pass = "bench", "bench-pass"
	reg := regtest.Start(b, regtest.Options{Users: map[string]string{user: pass}, Token: true})

	tags := make([]string, tagsPerRepo)
	for i := range tags {
		tags[i] = fmt.Sprintf("1.%d.%d", i/10, i%10)
	}
	for r := range repos {
		repo := fmt.Sprintf("bench/app%03d", r)
		d := reg.Push(b, repo+":"+tags[0], regtest.Image(b, repo))
		reg.TagInStorage(b, repo, d, tags[1:]...)
	}
	var imgs []watcher.StaticImage
	for i := range images {
		ref := fmt.Sprintf("%s/bench/app%03d:%s", reg.Host, i%repos, tags[(i/repos)*7%tagsPerRepo])
		img, err := registries.ParseImage(ref)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, watcher.StaticImage{Image: img})
	}
	dbPath := filepath.Join(b.TempDir(), "tagwatch.db")
	st, err := store.Open(dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cfg := []registries.Config{{Kind: "custom", Name: "bench", Source: registries.SourceFile,
		Values: registries.Values{"url": reg.URL, "login": user, "password": pass}}}

	var cycle time.Duration
	var counts map[string]int64
	var tokens int
	b.ResetTimer()
	for range b.N {
		// A fresh set per cycle: the cost measured is a daemon's first cycle,
		// tokens and all, not one riding on a warm cache.
		set, err := registries.NewSet(registries.DefaultCatalog(), cfg, registries.Options{})
		if err != nil {
			b.Fatal(err)
		}
		tokensBefore := reg.Issuer.Requests()
		d := watchtest.DaemonOn(st, set, watcher.StaticSource{Images: imgs})
		start := time.Now()
		rep := d.RunCycle(context.Background(), d.Sources)
		cycle = time.Since(start)
		if rep.Errors != 0 || rep.Images != images {
			b.Fatalf("cycle: %d images, %d errors", rep.Images, rep.Errors)
		}
		in, _ := set.Instance("custom", "bench")
		counts = in.Stats().RequestsByClass()
		tokens = reg.Issuer.Requests() - tokensBefore
	}
	b.StopTimer()

	fi, err := os.Stat(dbPath)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cycle.Seconds(), "s/cycle")
	b.ReportMetric(float64(counts["manifest"])/images, "manifest-req/image")
	b.ReportMetric(float64(counts["tags"])/images, "tags-req/image")
	b.ReportMetric(float64(tokens)/images, "token-req/image")
	b.ReportMetric(float64(counts["ping"])/images, "ping-req/image")
	b.ReportMetric(float64(tokens)/repos, "tokens/repo")
	b.ReportMetric(float64(counts["tags"])/repos, "tag-lists/repo")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(fi.Size())/(1<<10), "db-KiB")
}

// peakRSS reads the process's high-water resident set size (Linux).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkListedDigests is what baselines cost: 200 listed `latest` tags,
// each a two-platform index, half of them pushed again so that their digest
// update waits to be accepted. Each iteration is one cycle; it reports the
// registry requests per image while updates wait (their platform manifests
// are compared again every cycle) and once they are accepted.
//
//	go test -run XXX -bench ListedDigests -benchtime 3x ./watcher/
func BenchmarkListedDigests(b *testing.B) {
	const repos = 200
	reg := regtest.Start(b, regtest.Options{})
	both := []v1.Platform{regtest.Platform("linux/amd64"), regtest.Platform("linux/arm64")}
	var refs []string
	for r := range repos {
		repo := fmt.Sprintf("bench/app%03d", r)
		reg.PushIndex(b, repo+":latest", regtest.IndexOf(b, both, []string{repo + "a", repo + "r"}))
		refs = append(refs, reg.Ref(repo+":latest"))
	}
	imgs := watchtest.Images(b, refs...)
	st := storetest.Open(b)
	set, err := registries.NewSet(registries.DefaultCatalog(), nil, registries.Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := watchtest.DaemonOn(st, set, watcher.StaticSource{Images: imgs})
	ctx := context.Background()
	d.RunCycle(ctx, d.Sources) // the baselines
	for r := 0; r < repos; r += 2 {
		repo := fmt.Sprintf("bench/app%03d", r)
		reg.PushIndex(b, repo+":latest", regtest.IndexOf(b, both, []string{repo + "a2", repo + "r"}))
	}
	if rep := d.RunCycle(ctx, d.Sources); len(rep.Updates) != repos/2 {
		b.Fatalf("%d digest updates, want %d", len(rep.Updates), repos/2)
	}
	in, err := set.Resolve(imgs[0].Image)
	if err != nil {
		b.Fatal(err)
	}
	manifests := func() int64 { return in.Stats().RequestsByClass()["manifest"] }
	var waiting time.Duration
	var perImage float64
	b.ResetTimer()
	for range b.N {
		before := manifests()
		start := time.Now()
		if rep := d.RunCycle(ctx, d.Sources); rep.Errors != 0 || len(rep.Updates) != 0 {
			b.Fatalf("cycle: %+v", rep)
		}
		waiting = time.Since(start)
		perImage = float64(manifests()-before) / repos
	}
	b.StopTimer()
	if acc, err := st.AcceptDigests(nil, time.Now().UTC()); err != nil || len(acc) != repos/2 {
		b.Fatalf("accept: %d, %v", len(acc), err)
	}
	before := manifests()
	start := time.Now()
	d.RunCycle(ctx, d.Sources)
	accepted := time.Since(start)
	b.ReportMetric(waiting.Seconds(), "s/cycle-waiting")
	b.ReportMetric(perImage, "manifest-req/image-waiting")
	b.ReportMetric(accepted.Seconds(), "s/cycle-accepted")
	b.ReportMetric(float64(manifests()-before)/repos, "manifest-req/image-accepted")
}
