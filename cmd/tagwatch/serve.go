package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/metrics"
	"github.com/tagwatch/tagwatch/notify"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/web"
)

func runServe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", envOr(environ, "TAGWATCH_CONFIG", ""), "configuration `file` (YAML); env TAGWATCH_CONFIG")
	dataPath := fs.String("data", envOr(environ, "TAGWATCH_DATA", "tagwatch.db"), "the bbolt `file` that keeps results, history and UI settings; env TAGWATCH_DATA")
	listen := fs.String("listen", "", "`address` of the web UI and API (default from config web.listen, else 127.0.0.1:8080)")
	logFormat := fs.String("log-format", envOr(environ, "TAGWATCH_LOG_FORMAT", "text"), "log format: text or json; env TAGWATCH_LOG_FORMAT")
	logLevel := fs.String("log-level", envOr(environ, "TAGWATCH_LOG_LEVEL", "info"), "log level: debug, info, warn, error; env TAGWATCH_LOG_LEVEL")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tagwatch serve [flags]

Runs the daemon: watches the Docker engines and the images listed in the
config, checks them on schedule (and on start), keeps the results in the
bbolt file, and serves the web UI and the JSON API. With no configuration it
watches the local Docker engine (when its socket is there) through the five
default anonymous registries.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}

	cat := registries.CatalogFromEnv(func(k string) string { return envOr(environ, k, "") })
	cfg, err := config.Load(*cfgPath, environ, cat)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	if *listen == "" {
		*listen = cfg.Web.Listen
	}
	if err := web.CheckListen(*listen, cfg.Web.Auth.Enabled(), cfg.Web.AllowRemote); err != nil {
		fmt.Fprintf(stderr, "tagwatch: --listen %s: %v\n", *listen, err)
		return exitUsage
	}
	plat, err := v1.ParsePlatform(cfg.Platform)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %s: platform: %v\n", cfg.Where("platform"), err)
		return exitUsage
	}

	st, err := store.Open(*dataPath)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	defer st.Close()

	live, err := openRegistries(st, cat, cfg, *plat, log)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	sources, err := watchSources(cfg, environ, *plat, log)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	// The config file's notifiers, then those saved in Settings →
	// Notifications; a saved one that no longer validates, or that a config
	// file notifier's name now covers, is logged and left out.
	saved, err := st.Notifiers()
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	specs := append(slices.Clone(cfg.Notifiers), web.UINotifiers(saved, cfg.Notifiers, func(name string, err error) {
		log.Error("a notifier saved in the UI is invalid; left out", "notifier", name, "err", err)
	})...)
	notifiers, err := notify.New(specs, st, notify.Options{Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	for _, n := range specs {
		source := "config"
		if n.Source == notify.SourceUI {
			source = "ui"
		}
		log.Info("notifier", "name", n.Name, "source", source, "type", n.Type, "url", n.Redacted(), "threshold", n.Threshold, "batch", n.Batch)
	}
	// Sends still queued at shutdown get a few seconds (after the web server
	// and the running cycle have stopped).
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		notifiers.Close(ctx)
	}()
	// Metrics for GET /metrics: metrics.Handler(met), mounted by the web server.
	met := metrics.New(metrics.Options{Registries: live.Set, Store: st, Notifiers: notifiers.Status, Log: log})
	d := &watcher.Daemon{
		Sources:  sources,
		Checker:  &watcher.Checker{Registries: live.Set, Observe: met.ObserveCheck, ImageTimeout: cfg.Limits.Image, CycleTimeout: cfg.Limits.Cycle},
		Store:    st,
		Log:      log,
		Platform: *plat,
		Jitter:   5 * time.Minute,
		// Both only note or enqueue: a cycle never waits for a receiver.
		OnCycle: func(rep watcher.CycleReport) {
			met.ObserveCycle(rep)
			notifiers.Notify(rep.Updates)
		},
	}

	srv := &http.Server{
		Addr:              *listen,
		Handler:           (&web.Server{Store: st, Registries: live, Daemon: d, Auth: cfg.Web.Auth, Log: log, Metrics: metrics.Handler(met), Notifiers: notifiers}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	log.Info("tagwatch serving", "url", "http://"+ln.Addr().String(), "data", st.Path(), "watchers", len(sources),
		"registries", len(live.Set().Instances()))
	fmt.Fprintf(stdout, "tagwatch: UI and API on http://%s\n", ln.Addr())

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil {
			log.Error("scheduler stopped", "err", err)
		}
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("web server stopped", "err", err)
		code = exitFailed
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	wg.Wait() // the running cycle sees ctx end, stores what it finished, and returns
	return code
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// openRegistries builds the running registry set from the config file and the
// instances saved in the UI. A saved instance that no longer validates is
// logged and left out rather than keeping the daemon from starting.
func openRegistries(st *store.Store, cat registries.Catalog, cfg *config.Config, plat v1.Platform, log *slog.Logger) (*registries.Live, error) {
	opts := registries.Options{
		Platform: plat,
		Warn:     func(id, msg string) { log.Warn(msg, "registry", id) },
		Limits:   cfg.Limits.Registries(),
	}
	saved, err := st.Registries()
	if err != nil {
		return nil, err
	}
	var ui []registries.Config
	for _, r := range saved {
		vals := registries.Values{}
		for k, v := range r.Values {
			vals[k] = v
		}
		for k, v := range r.Secrets {
			vals[k] = v
		}
		c := registries.Config{Kind: r.Kind, Name: r.Name, Source: registries.SourceUI, Values: vals}
		if _, err := registries.Open(cat, c, opts); err != nil {
			log.Error("a registry saved in the UI is invalid; left out", "registry", c.ID(), "err", err)
			continue
		}
		ui = append(ui, c)
	}
	live, err := registries.NewLive(cat, cfg.Registries, nil, opts)
	if err != nil {
		return nil, placeErrs(cfg, err)
	}
	// UI instances named like config-file ones are shown read-only: the file wins.
	var keep []registries.Config
	for _, c := range ui {
		if live.FromFile(c.Kind, c.Name) {
			log.Warn("a registry saved in the UI is overridden by the config file", "registry", c.ID())
			continue
		}
		keep = append(keep, c)
	}
	if err := live.Apply(keep); err != nil {
		return nil, err
	}
	return live, nil
}

// placeErrs points registry errors found while opening at their config line.
func placeErrs(cfg *config.Config, err error) error {
	var fe *registries.FieldError
	if errors.As(err, &fe) {
		kind, name, _ := strings.Cut(fe.Registry, ".")
		field := "registries." + kind + "." + name
		return &config.Error{Origin: cfg.Where(field + "." + fe.Variable), Field: field + "." + fe.Variable, Msg: fe.Message}
	}
	return err
}

// watchSources turns the config's watchers and images into sources. With no
// watcher configured, the local engine is watched when its socket is there.
func watchSources(cfg *config.Config, environ []string, plat v1.Platform, log *slog.Logger) ([]watcher.Scheduled, error) {
	watchers := cfg.Watchers
	if len(watchers) == 0 {
		if host := envOr(environ, "DOCKER_HOST", ""); host != "" || socketExists("/var/run/docker.sock") {
			watchers = map[string]config.Watcher{"local": {}}
		} else {
			log.Info("no Docker engine configured and no local socket: watching the config's images only")
		}
	}
	names := make([]string, 0, len(watchers))
	for n := range watchers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []watcher.Scheduled
	for _, n := range names {
		w := watchers[n]
		byDefault := true
		if w.WatchByDefault != nil {
			byDefault = *w.WatchByDefault
		}
		out = append(out, watcher.Scheduled{
			Source: &watcher.DockerSource{
				Watcher: n, Host: w.Host, CAFile: w.CAFile, CertFile: w.CertFile, KeyFile: w.KeyFile,
				WatchByDefault: byDefault, WatchStopped: w.WatchStopped, Platform: plat,
			},
			Cron: w.Cron,
		})
	}
	if len(cfg.Images) > 0 {
		var imgs []watcher.StaticImage
		for _, img := range cfg.Images {
			ref, err := registries.ParseImage(img.Image)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, watcher.StaticImage{
				Image: ref, Options: img.Options, Platform: img.Platform,
				DisplayName: img.Display.Name, LinkTemplate: img.Link.Template,
			})
		}
		out = append(out, watcher.Scheduled{Source: watcher.StaticSource{Images: imgs}, Cron: cfg.ImagesCron})
	}
	return out, nil
}

func socketExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}
