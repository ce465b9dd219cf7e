package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tagwatch/tagwatch/config"
	"github.com/tagwatch/tagwatch/registries"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/web"
)

// storeFlags are the flags of the commands that read the data file.
type storeFlags struct {
	data, config, url *string
	timeout           *time.Duration
}

func addStoreFlags(fs *flag.FlagSet, environ []string) storeFlags {
	env := config.ReadEnv(environ) // TAGWATCH_DATA_FILE and TAGWATCH_CONFIG_FILE too, as for serve
	return storeFlags{
		data:    fs.String("data", env.Get("DATA", "tagwatch.db"), "the bbolt `file` tagwatch keeps its state in; env TAGWATCH_DATA"),
		config:  fs.String("config", env.Get("CONFIG", ""), "configuration `file` (YAML), read for web.listen and web.auth.token when tagwatch serve holds the data file; env TAGWATCH_CONFIG"),
		url:     fs.String("url", "", "`URL` of the tagwatch serve that holds the data file (default http://<web.listen>, 0.0.0.0 read as 127.0.0.1)"),
		timeout: fs.Duration("timeout", 10*time.Minute, "give up after this `duration`"),
	}
}

// lockWait is how long a store command waits for the data file's lock
// before it asks the tagwatch serve that holds it instead.
const lockWait = time.Second

func runStoreBackup(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store backup", flag.ContinueOnError)
	f := addStoreFlags(fs, environ)
	fs.Usage = usageFunc(fs, `Usage: tagwatch store backup [flags] FILE

Writes a consistent copy of the data file (--data) to FILE, which must not
exist yet; - writes it to standard output. When no tagwatch holds the data
file, the copy is read from it directly (under a shared lock: a tagwatch
serve starting meanwhile waits for it). When tagwatch serve runs on it, the
copy comes from its API: GET /api/v1/backup at --url, with web.auth.token
(TAGWATCH_WEB_AUTH_TOKEN) when web.auth is set. The copy is checked, every
page and record, before it is kept.

The copy holds the registry and notifier secrets saved in the UI: it is
written with mode 0600; keep it private. To restore: stop tagwatch, copy
the backup over the data file, start tagwatch again.

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "tagwatch store backup: name the FILE to write (- for standard output)")
		fs.Usage()
		return exitUsage
	}
	out := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()

	if out == "-" {
		how, n, err := backupTo(ctx, f, environ, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "tagwatch: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stderr, "tagwatch: backup of %s (%s) written to standard output: %s\n", *f.data, how, humanSize(n))
		return exitOK
	}
	if _, err := os.Lstat(out); err == nil {
		fmt.Fprintf(stderr, "tagwatch: %s exists: a backup never overwrites a file; remove it or choose another name\n", out)
		return exitFailed
	}
	// Written beside its name and renamed once checked: FILE is either a
	// whole, sound backup or not there.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	defer os.Remove(tmp.Name())
	how, n, err := backupTo(ctx, f, environ, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	rep, err := checkFile(tmp.Name())
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch: the copy of %s does not open: %v\n", *f.data, err)
		return exitFailed
	}
	if len(rep.Problems) > 0 {
		for _, p := range rep.Problems {
			fmt.Fprintf(stderr, "damaged: %s\n", p)
		}
		fmt.Fprintf(stderr, "tagwatch: %v\n", &store.OpenError{Path: *f.data, Err: store.ErrDamaged,
			Detail: fmt.Sprintf("its copy has %s, listed above; no backup was written", plural(len(rep.Problems), "problem", "problems"))})
		return exitFailed
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		fmt.Fprintf(stderr, "tagwatch: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "backup of %s (%s) written to %s: %s, schema %d, %s\n", *f.data, how, out, humanSize(n), rep.Schema, records(rep))
	return exitOK
}

// backupTo writes a backup of the data file to w: read from the file when
// no process holds it, else from the tagwatch serve that does. how says
// which.
func backupTo(ctx context.Context, f storeFlags, environ []string, w io.Writer) (how string, n int64, err error) {
	st, err := store.Open(*f.data, store.ReadOnly(), store.WithoutVerify(), store.WithLockTimeout(lockWait))
	if err == nil {
		defer st.Close()
		n, err := st.Backup(w)
		return "read from the file", n, err
	}
	if !errors.Is(err, store.ErrLocked) {
		return "", 0, err
	}
	return fetchBackup(ctx, f, environ, w)
}

// fetchBackup downloads a backup from the running tagwatch serve that
// holds the data file.
func fetchBackup(ctx context.Context, f storeFlags, environ []string, w io.Writer) (how string, n int64, err error) {
	data := *f.data
	cat := registries.CatalogFromEnv(func(k string) string { return envOr(environ, k, "") })
	cfg, err := config.Load(*f.config, environ, cat)
	if err != nil {
		return "", 0, fmt.Errorf("%s is held by a running tagwatch; reading the config to reach its API failed: %w", data, err)
	}
	base := strings.TrimSuffix(*f.url, "/")
	if base == "" {
		if base, err = serverURL(cfg.Web.Listen); err != nil {
			return "", 0, fmt.Errorf("%s is held by a running tagwatch; web.listen %q: %v (give --url)", data, cfg.Web.Listen, err)
		}
	}
	u := base + "/api/v1/backup"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("--url %s: %v", base, err)
	}
	if tok := cfg.Web.Auth.Token; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	// No proxy: the daemon is on this machine.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("%s is held by another process, and no tagwatch answers at %s (%v): give --url of the tagwatch serve that runs on it, or stop the process that holds it", data, base, err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return "", 0, fmt.Errorf("%s is held by the tagwatch at %s, which wants authentication: give this command web.auth.token (TAGWATCH_WEB_AUTH_TOKEN, or --config), or stop tagwatch", data, base)
	case res.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return "", 0, fmt.Errorf("GET %s: %s: %s", u, res.Status, strings.TrimSpace(string(body)))
	}
	if theirs := res.Header.Get(web.DataFileHeader); theirs != "" {
		if mine := absPath(data); theirs != mine {
			return "", 0, fmt.Errorf("the tagwatch at %s runs on %s, not on %s: give --url of the one that runs on %s", base, theirs, mine, data)
		}
	}
	n, err = io.Copy(w, res.Body)
	if err != nil {
		return "", n, fmt.Errorf("GET %s: %v after %d bytes", u, err, n)
	}
	if res.ContentLength >= 0 && n != res.ContentLength {
		return "", n, fmt.Errorf("GET %s: cut short after %d of %d bytes", u, n, res.ContentLength)
	}
	return "taken from the running tagwatch at " + base, n, nil
}

// absPath is path made absolute, symbolic links resolved where they can be.
func absPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// checkFile runs the full check on a file no one else uses.
func checkFile(path string) (store.CheckReport, error) {
	st, err := store.Open(path, store.ReadOnly(), store.WithoutVerify())
	if err != nil {
		return store.CheckReport{}, err
	}
	defer st.Close()
	return st.Check()
}

// records lists a report's record counts: "1000 images, 12 history, …".
func records(rep store.CheckReport) string {
	names := make([]string, 0, len(rep.Records))
	for name := range rep.Records {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%d %s", rep.Records[name], name)
	}
	return strings.Join(parts, ", ")
}

// humanSize is a size for people: 512 B, 3.4 KiB, 12.0 MiB.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
