// Package imagebuild builds a container image from the final stage of a
// Dockerfile without a Docker engine: each COPY becomes a layer (the files
// come from a Resolver: the build context, or what an earlier stage would
// have produced), and the metadata instructions (ENV, USER, WORKDIR, VOLUME,
// EXPOSE, HEALTHCHECK, ENTRYPOINT, CMD, LABEL) become the image config, as
// BuildKit would write them. The final stage must start FROM scratch and
// hold nothing else: a RUN needs an engine, and an unknown instruction is
// an error rather than a silently different image.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPath is the PATH BuildKit gives a Linux image that sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is what a COPY source holds: a file's bytes, or an empty directory.
type File struct {
	Data []byte
	Dir  bool
	// Mode holds the permission bits; zero means 0644 (file) or 0755 (directory).
	Mode fs.FileMode
}

// Resolver returns what `COPY [--from=STAGE] SRC` copies; stage is "" for the
// build context.
type Resolver func(stage, src string) (File, error)

// Copy is one COPY instruction of the final stage.
type Copy struct {
	Stage, Src, Dest string // Dest is absolute; a trailing / is resolved
	UID, GID         int
	Mode             fs.FileMode // from --chmod; zero: the source's
	Text             string      // the instruction, for the image history
}

// Stage is a Dockerfile's final stage.
type Stage struct {
	Copies []Copy
	Config v1.Config

	cmdSet bool // CMD was given in this stage: ENTRYPOINT keeps it
}

// Options are the inputs a Dockerfile does not hold.
type Options struct {
	Resolve  Resolver
	Platform v1.Platform // OS, Architecture (and Variant) of the image
	// Created is the creation time of the image and the time of its files
	// (zero: the Unix epoch, for a reproducible image).
	Created time.Time
}

// Build builds the image of dockerfile's final stage.
func Build(dockerfile string, o Options) (v1.Image, error) {
	st, err := ParseFinalStage(dockerfile)
	if err != nil {
		return nil, err
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: o.Platform.OS, Architecture: o.Platform.Architecture, Variant: o.Platform.Variant,
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	for _, c := range st.Copies {
		f, err := o.Resolve(c.Stage, c.Src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Text, err)
		}
		data, err := layerTar(c, f, dirs, o.Created)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Text, err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: plainLayer{layer}, History: v1.History{
			Created: v1.Time{Time: o.Created}, CreatedBy: c.Text, Comment: "imagebuild",
		}})
		if err != nil {
			return nil, err
		}
	}
	if img, err = mutate.Config(img, st.Config); err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: o.Created})
}

// plainLayer hides the tarball layer's Descriptor, whose empty (non-nil)
// annotations would make the in-memory manifest differ from its JSON, which
// validate.Image reports.
type plainLayer struct{ v1.Layer }

// layerTar is one COPY's layer: the parent directories it creates (root's,
// 0755; existing ones are left alone) and the file or directory.
func layerTar(c Copy, f File, dirs map[string]bool, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	rel := strings.TrimPrefix(path.Clean(c.Dest), "/")
	if rel == "" || rel == "." {
		return nil, errors.New("copying onto / is not supported")
	}
	var parents []string
	for p := path.Dir(rel); p != "."; p = path.Dir(p) {
		parents = append(parents, p)
	}
	slices.Reverse(parents)
	for _, p := range parents {
		if dirs[p] {
			continue
		}
		dirs[p] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	mode := f.Mode.Perm()
	if c.Mode != 0 {
		mode = c.Mode.Perm()
	}
	h := &tar.Header{Name: rel, Uid: c.UID, Gid: c.GID, ModTime: mtime, Format: tar.FormatPAX}
	if f.Dir {
		if mode == 0 {
			mode = 0o755
		}
		h.Typeflag, h.Name, h.Mode = tar.TypeDir, rel+"/", int64(mode)
		dirs[rel] = true
	} else {
		if mode == 0 {
			mode = 0o644
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, int64(mode), int64(len(f.Data))
	}
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if _, err := tw.Write(f.Data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseFinalStage reads the instructions after the last FROM.
func ParseFinalStage(dockerfile string) (*Stage, error) {
	lines, err := instructions(dockerfile)
	if err != nil {
		return nil, err
	}
	last := -1
	for i, l := range lines {
		if l.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 {
		return nil, errors.New("no FROM")
	}
	if f := strings.Fields(lines[last].rest); len(f) == 0 || f[0] != "scratch" {
		return nil, fmt.Errorf("line %d: the final stage must start FROM scratch", lines[last].line)
	}
	st := &Stage{}
	cfg := &st.Config
	for _, l := range lines[last+1:] {
		if err := st.apply(l); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", l.line, l.cmd, err)
		}
	}
	if !slices.ContainsFunc(cfg.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		cfg.Env = append([]string{DefaultPath}, cfg.Env...)
	}
	return st, nil
}

func (st *Stage) apply(l instruction) error {
	cfg := &st.Config
	switch l.cmd {
	case "COPY":
		return st.copy(l)
	case "ENV":
		kvs, err := keyValues(l.rest)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			cfg.Env = slices.DeleteFunc(cfg.Env, func(e string) bool { return strings.HasPrefix(e, kv[0]+"=") })
			cfg.Env = append(cfg.Env, kv[0]+"="+kv[1])
		}
	case "LABEL":
		kvs, err := keyValues(l.rest)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "USER":
		cfg.User = strings.TrimSpace(l.rest)
	case "WORKDIR":
		if !strings.HasPrefix(l.rest, "/") {
			return errors.New("want an absolute path")
		}
		cfg.WorkingDir = path.Clean(strings.TrimSpace(l.rest))
	case "VOLUME":
		vols, err := jsonOrFields(l.rest)
		if err != nil {
			return err
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	case "EXPOSE":
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(l.rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "ENTRYPOINT", "CMD":
		args, err := execForm(l.rest)
		if err != nil {
			return err
		}
		if l.cmd == "CMD" {
			cfg.Cmd, st.cmdSet = args, true
		} else if cfg.Entrypoint = args; !st.cmdSet {
			cfg.Cmd = nil // as BuildKit: ENTRYPOINT resets an inherited CMD
		}
	case "HEALTHCHECK":
		hc, err := healthcheck(l.rest)
		if err != nil {
			return err
		}
		cfg.Healthcheck = hc
	default:
		return errors.New("not supported in the final stage by imagebuild")
	}
	return nil
}

func (st *Stage) copy(l instruction) error {
	c := Copy{Text: "COPY " + l.rest}
	var args []string
	for _, f := range strings.Fields(l.rest) {
		flagName, val, _ := strings.Cut(f, "=")
		switch {
		case !strings.HasPrefix(f, "--"):
			args = append(args, f)
		case flagName == "--from":
			c.Stage = val
		case flagName == "--chown":
			u, g, ok := strings.Cut(val, ":")
			if !ok {
				g = u
			}
			var err1, err2 error
			c.UID, err1 = strconv.Atoi(u)
			c.GID, err2 = strconv.Atoi(g)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("--chown=%s: want numeric UID:GID", val)
			}
		case flagName == "--chmod":
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return fmt.Errorf("--chmod=%s: want an octal mode", val)
			}
			c.Mode = fs.FileMode(m)
		default:
			return fmt.Errorf("flag %s not supported", flagName)
		}
	}
	if len(args) != 2 {
		return errors.New("want exactly one source and a destination")
	}
	c.Src, c.Dest = args[0], args[1]
	if !strings.HasPrefix(c.Dest, "/") {
		return errors.New("want an absolute destination")
	}
	if strings.HasSuffix(c.Dest, "/") {
		c.Dest += path.Base(c.Src)
	}
	st.Copies = append(st.Copies, c)
	return nil
}

// execForm reads the JSON form of ENTRYPOINT, CMD and HEALTHCHECK CMD; the
// shell form needs a /bin/sh that a scratch image lacks.
func execForm(s string) ([]string, error) {
	var args []string
	if err := json.Unmarshal([]byte(s), &args); err != nil || len(args) == 0 {
		return nil, errors.New(`want the exec form ["cmd", "arg"]: a scratch image has no shell`)
	}
	return args, nil
}

func jsonOrFields(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return strings.Fields(s), nil
}

func healthcheck(s string) (*v1.HealthConfig, error) {
	hc := &v1.HealthConfig{}
	rest := strings.TrimSpace(s)
	for strings.HasPrefix(rest, "--") {
		opt, after, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(after)
		name, val, _ := strings.Cut(opt, "=")
		var d time.Duration
		var err error
		if name != "--retries" {
			d, err = time.ParseDuration(val)
		}
		switch name {
		case "--interval":
			hc.Interval = d
		case "--timeout":
			hc.Timeout = d
		case "--start-period":
			hc.StartPeriod = d
		case "--retries":
			hc.Retries, err = strconv.Atoi(val)
		default:
			return nil, fmt.Errorf("option %s not supported", name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", opt, err)
		}
	}
	if rest == "NONE" {
		return &v1.HealthConfig{Test: []string{"NONE"}}, nil
	}
	cmd, ok := strings.CutPrefix(rest, "CMD")
	if !ok {
		return nil, errors.New("want CMD or NONE")
	}
	args, err := execForm(strings.TrimSpace(cmd))
	if err != nil {
		return nil, err
	}
	hc.Test = append([]string{"CMD"}, args...)
	return hc, nil
}

// keyValues reads ENV and LABEL's KEY=VALUE pairs; a value may be
// double-quoted.
func keyValues(s string) ([][2]string, error) {
	var out [][2]string
	rest := strings.TrimSpace(s)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, errors.New("want KEY=VALUE pairs (the legacy `KEY value` form is not supported)")
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			end := 1
			for end < len(after) && after[end] != '"' {
				if after[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(after) {
				return nil, fmt.Errorf("unterminated quote after %s=", key)
			}
			v, err := strconv.Unquote(after[:end+1])
			if err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
			val, rest = v, after[end+1:]
		} else {
			val, rest, _ = strings.Cut(after, " ")
		}
		out = append(out, [2]string{key, val})
		rest = strings.TrimSpace(rest)
	}
	return out, nil
}

type instruction struct {
	line      int
	cmd, rest string
}

// instructions splits a Dockerfile into instructions: comments dropped,
// continuation lines joined.
func instructions(dockerfile string) ([]instruction, error) {
	var out []instruction
	var cur *instruction
	for i, raw := range strings.Split(dockerfile, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if cur == nil {
			cmd, rest, _ := strings.Cut(line, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), rest: strings.TrimSpace(rest)}
		} else if line != "" {
			cur.rest += " " + line
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: the last instruction ends with a continuation", cur.line)
	}
	return out, nil
}
