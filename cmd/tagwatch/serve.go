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
	ctrdsource "github.com/tagwatch/tagwatch/watcher/containerd"
	kubesource "github.com/tagwatch/tagwatch/watcher/kubernetes"
	"github.com/tagwatch/tagwatch/web"
)

func runServe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := config.ReadEnv(environ)
	cfgPath := fs.String("config", env.Get("CONFIG", ""), "configuration `file` (YAML); env TAGWATCH_CONFIG")
	dataPath := fs.String("data", env.Get("DATA", "tagwatch.db"), "the bbolt `file` that keeps results, history and UI settings (its secrets encrypted with the key in FILE.key, made on first start, unless TAGWATCH_SECRET_KEY or TAGWATCH_SECRET_KEY_FILE gives one); env TAGWATCH_DATA")
	listen := fs.String("listen", "", "`address` of the web UI and API (default from config web.listen, else 127.0.0.1:8080)")
	logFormat := fs.String("log-format", env.Get("LOG_FORMAT", "text"), "log format: text or json; env TAGWATCH_LOG_FORMAT")
	logLevel := fs.String("log-level", env.Get("LOG_LEVEL", "info"), "log level: debug, info, warn, error; env TAGWATCH_LOG_LEVEL")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tagwatch serve [flags]

Runs the daemon: watches the Docker engines and the images listed in the
config, checks them on schedule (and on start), keeps the results in the
bbolt file, and serves the web UI and the JSON API. With no configuration it
watches the local Docker engine (when its socket is there) through the ten
default anonymous registries. Registry requests go through the proxy that
HTTPS_PROXY, HTTP_PROXY and NO_PROXY name, unless an instance has its own.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	// The environment first: a bad TAGWATCH_LOG_LEVEL is reported with
	// the rest of the configuration's errors.
	cat := registries.CatalogFromEnv(func(k string) string { return envOr(environ, k, "") })
	cfg, err := config.Load(*cfgPath, environ, cat)
	if err != nil {
		printErrs(stderr, err)
		return exitUsage
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
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

	keyOpts, err := secretKey(environ)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	st, err := store.Open(*dataPath, keyOpts...)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	defer st.Close()
	// Secrets that do not decrypt (a store copied without its key) are left
	// out, with their registries and notifiers; the rest runs.
	if err := st.CheckSecrets(); err != nil {
		log.Error("saved secrets cannot be decrypted", "err", err)
	}

	// The registries' proxy comes from the environment serve was given
	// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), like its TAGWATCH_* settings.
	tr := registries.NewTransportFromEnv(func(k string) string { return envOr(environ, k, "") })
	live, err := openRegistries(st, cat, cfg, *plat, tr, log)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	// An image of the config that names its instance: now that the UI's
	// instances are open too, that instance must exist and serve it.
	if err := cfg.CheckImageRegistries(live.Set()); err != nil {
		printErrs(stderr, err)
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
	notifiers, err := notify.New(specs, st, notify.Options{Log: log, RetryFor: cfg.Notify.RetryFor, AllowLinkLocalTests: cfg.Web.AllowLinkLocal})
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitUsage
	}
	// Messages left by a notifier that is gone from the config would wait
	// for ever: give them up, for the history retention to prune.
	configured := make([]string, 0, len(specs)+len(saved))
	for _, n := range cfg.Notifiers {
		configured = append(configured, n.Name)
	}
	for _, n := range saved {
		configured = append(configured, n.Name)
	}
	if k, err := notify.ExpireOrphans(st, configured, time.Now().UTC()); err != nil {
		log.Error("giving up the notifications of removed notifiers", "err", err)
	} else if k > 0 {
		log.Warn("notifications of notifiers no longer configured were given up", "messages", k)
	}
	for _, n := range specs {
		source := "config"
		if n.Source == notify.SourceUI {
			source = "ui"
		}
		log.Info("notifier", "name", n.Name, "source", source, "type", n.Type, "url", n.Redacted(), "threshold", n.Threshold, "batch", n.Batch)
	}
	// A send in flight at shutdown gets a few seconds (after the web server
	// and the running cycle have stopped); what is not sent stays in the
	// outbox for the next start.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		notifiers.Close(ctx)
	}()
	// Metrics for GET /metrics: metrics.Handler(met), mounted by the web server.
	var d *watcher.Daemon
	met := metrics.New(metrics.Options{Registries: live.Set, Store: st, Notifiers: notifiers.Status, Log: log,
		Watchers: func() []store.WatcherState { return d.Watchers() }})
	d = &watcher.Daemon{
		Sources:  sources,
		Checker:  &watcher.Checker{Registries: live.Set, Observe: met.ObserveCheck, ImageTimeout: cfg.Limits.Image, CycleTimeout: cfg.Limits.Cycle},
		Store:    st,
		Log:      log,
		Platform: *plat,
		Jitter:   5 * time.Minute,
		// A cycle's notifications go to the outbox in the transaction that
		// records its updates; OnCycle only wakes the senders, so a cycle
		// never waits for a receiver.
		Route:     notifiers.Route,
		Retention: store.Retention{Keep: cfg.History.Keep, MaxAge: cfg.History.MaxAge},
		OnCycle: func(rep watcher.CycleReport) {
			met.ObserveCycle(rep)
			notifiers.Wake()
		},
	}

	srv := &http.Server{
		Addr: *listen,
		Handler: (&web.Server{Store: st, Registries: live, Daemon: d, Auth: cfg.Web.Auth, Log: log, Metrics: metrics.Handler(met), Notifiers: notifiers,
			Listen: *listen, Hosts: cfg.Web.Hosts, AllowLinkLocal: cfg.Web.AllowLinkLocal}).Handler(),
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
	log.Info("tagwatch serving", "url", "http://"+ln.Addr().String(), "data", st.Path(), "secret_key", st.KeyFrom(),
		"secret_key_id", st.KeyID(), "watchers", len(sources), "registries", len(live.Set().Instances()))
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
func openRegistries(st *store.Store, cat registries.Catalog, cfg *config.Config, plat v1.Platform, tr *http.Transport, log *slog.Logger) (*registries.Live, error) {
	opts := registries.Options{
		Transport: tr,
		Platform:  plat,
		Warn:      func(id, msg string) { log.Warn(msg, "registry", id) },
		Limits:    cfg.Limits.Registries(),
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
		if len(r.Unreadable) > 0 {
			// Without them it would run anonymously, or not validate.
			log.Error("a registry saved in the UI has secrets this key cannot decrypt; left out until they are entered again",
				"registry", c.ID(), "secrets", r.Unreadable)
			continue
		}
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

// placeErrs points registry errors found while opening at their config
// line, each of them.
func placeErrs(cfg *config.Config, err error) error {
	var out []error
	for _, e := range config.Errors(err) {
		var fe *registries.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		kind, name, _ := strings.Cut(fe.Registry, ".")
		field := "registries." + kind + "." + name
		o := cfg.Where(field + "." + fe.Variable)
		if o == (config.Origin{}) {
			o = cfg.Where(field)
		}
		out = append(out, &config.Error{Origin: o, Field: field + "." + fe.Variable, Msg: fe.Message})
	}
	return errors.Join(out...)
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
		var src watcher.Source
		switch kind := w.KindOf(); kind {
		case config.KindKubernetes:
			src = &kubesource.Source{Watcher: n, Kubeconfig: w.Kubeconfig, Context: w.Context,
				Namespaces: w.Namespaces, WatchByDefault: byDefault}
		case config.KindContainerd:
			src = &ctrdsource.Source{Watcher: n, Address: w.Address, Namespaces: w.Namespaces,
				WatchByDefault: byDefault, WatchStopped: w.WatchStopped}
		case config.KindDocker, config.KindPodman:
			src = &watcher.DockerSource{
				Watcher: n, Host: w.Host, CAFile: w.CAFile, CertFile: w.CertFile, KeyFile: w.KeyFile,
				WatchByDefault: byDefault, WatchStopped: w.WatchStopped, Platform: plat,
				Engine: kind, Swarm: w.Swarm,
			}
		default:
			return nil, fmt.Errorf("watchers.%s: kind %s is not built in", n, kind)
		}
		out = append(out, watcher.Scheduled{Source: src, Cron: w.Cron})
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
