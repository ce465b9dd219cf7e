package imagebuild

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const dockerfile = `# a comment
FROM golang AS build
RUN go build -o /out/app .

FROM scratch
COPY --from=build /out/app /usr/local/bin/
COPY --chown=10:20 --chmod=0700 \
     conf /etc/app/conf
ENV A=1 B="two words" \
    C=3
LABEL org.example.title="app"
USER 10:20
WORKDIR /etc/app
VOLUME /data /cache
EXPOSE 8080 53/udp
CMD ["run"]
ENTRYPOINT ["/usr/local/bin/app"]
HEALTHCHECK --interval=10s --retries=2 CMD ["/usr/local/bin/app", "ping"]
`

func TestBuild(t *testing.T) {
	img, err := Build(dockerfile, Options{
		Platform: v1.Platform{OS: "linux", Architecture: "arm64"},
		Resolve: func(stage, src string) (File, error) {
			switch stage + ":" + src {
			case "build:/out/app":
				return File{Data: []byte("binary"), Mode: 0o755}, nil
			case ":conf":
				return File{Data: []byte("x=1\n")}, nil
			}
			return File{}, errors.New("no such source")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.Architecture != "arm64" || cf.OS != "linux" || !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if !slices.Equal(c.Env, []string{DefaultPath, "A=1", "B=two words", "C=3"}) {
		t.Errorf("env %q", c.Env)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/app"}) || !slices.Equal(c.Cmd, []string{"run"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if c.User != "10:20" || c.WorkingDir != "/etc/app" || c.Labels["org.example.title"] != "app" {
		t.Errorf("user %q workdir %q labels %v", c.User, c.WorkingDir, c.Labels)
	}
	if _, ok := c.Volumes["/cache"]; !ok || len(c.Volumes) != 2 {
		t.Errorf("volumes %v", c.Volumes)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ports %v", c.ExposedPorts)
	}
	if hc := c.Healthcheck; hc == nil || hc.Interval != 10*time.Second || hc.Retries != 2 || !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/app", "ping"}) {
		t.Errorf("healthcheck %+v", hc)
	}
	if len(cf.History) != 2 || !strings.HasPrefix(cf.History[1].CreatedBy, "COPY --chown=10:20") {
		t.Errorf("history %+v", cf.History)
	}

	got := map[string]string{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = fmt.Sprintf("%o %d:%d %s", h.Mode, h.Uid, h.Gid, b)
	}
	want := map[string]string{
		"usr":               "755 0:0 ",
		"usr/local":         "755 0:0 ",
		"usr/local/bin":     "755 0:0 ",
		"usr/local/bin/app": "755 0:0 binary",
		"etc":               "755 0:0 ",
		"etc/app":           "755 0:0 ",
		"etc/app/conf":      "700 10:20 x=1\n",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

func TestRefused(t *testing.T) {
	for _, tt := range []struct{ stage, want string }{
		{"FROM alpine\nCOPY a /a\n", "final stage must start FROM scratch"},
		{"FROM scratch\nRUN true\n", "line 2: RUN: not supported"},
		{"FROM scratch\nCMD /app serve\n", "line 2: CMD: want the exec form"},
		{"FROM scratch\nHEALTHCHECK CMD curl -f http://localhost/\n", "HEALTHCHECK: want the exec form"},
		{"FROM scratch\nENV A 1\n", "legacy"},
		{"FROM scratch\nCOPY --chown=app a /a\n", "want numeric UID:GID"},
		{"FROM scratch\nCOPY a b /c/\n", "exactly one source"},
	} {
		_, err := ParseFinalStage(tt.stage)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.stage, err, tt.want)
		}
	}
}
