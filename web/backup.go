package web

import (
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

// DataFileHeader names, in a backup download, the absolute path of the
// data file it copies: `tagwatch store backup` checks that the daemon it
// asked serves the file it was told to copy.
const DataFileHeader = "Tagwatch-Data-File"

// backupWriteWindow is how long one write of a backup download may take.
// The server's WriteTimeout bounds a whole response, which a big file over
// a slow link would outlast; a download that moves is given more time.
const backupWriteWindow = time.Minute

// apiBackup streams a consistent copy of the data file, taken in one read
// transaction while the daemon goes on writing.
func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	name := "tagwatch-" + time.Now().UTC().Format("20060102-150405") + ".db"
	if abs, err := filepath.Abs(s.Store.Path()); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		h.Set(DataFileHeader, abs)
	}
	rc := http.NewResponseController(w)
	started := false
	dw := writerFunc(func(p []byte) (int, error) {
		_ = rc.SetWriteDeadline(time.Now().Add(backupWriteWindow))
		return w.Write(p)
	})
	n, err := s.Store.BackupTo(dw, func(size int64) {
		started = true
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil {
		if !started {
			s.fail(w, r, err)
			return
		}
		// The status is sent: the client sees a body shorter than its
		// Content-Length, which every HTTP client reports as an error.
		s.Log.Error("backup download broken off", "bytes", n, "err", err)
		return
	}
	s.Log.Info("backup downloaded", "bytes", n, "remote", r.RemoteAddr)
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type backupPage struct {
	base
	DataFile string
	Size     string
	KeyFrom  string // where the secrets' key is: a file or the environment, never the key
}

// backupPage is Settings → Backup: the download link and how to restore.
func (s *Server) backupPage(w http.ResponseWriter, r *http.Request) {
	p := backupPage{base: base{Title: "Backup", Page: "settings"}, DataFile: s.Store.Path(), KeyFrom: s.Store.KeyFrom()}
	if abs, err := filepath.Abs(p.DataFile); err == nil {
		p.DataFile = abs
	}
	if size, err := s.Store.Size(); err == nil {
		p.Size = registries.Bytes(size)
	}
	s.render(w, http.StatusOK, "backup", p)
}
