package notify_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// hit is one request a receiver got.
type hit struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// receiver is an HTTP server on 127.0.0.1 that records every request and
// answers with reply (200 and "{}" when nil).
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	hits  []hit
	reply func(w http.ResponseWriter, r *http.Request, n int)
	got   chan struct{}
}

func newReceiver(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	return newReceiverAt(t, "127.0.0.1:0", reply)
}

// freeAddr is a loopback address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newReceiverAt is newReceiver listening on addr: a receiver that comes
// back where it was.
func newReceiverAt(t *testing.T, addr string, reply func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{reply: reply, got: make(chan struct{}, 100)}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		n := len(rc.hits)
		rc.mu.Unlock()
		select {
		case rc.got <- struct{}{}:
		default:
		}
		if rc.reply != nil {
			rc.reply(w, r, n)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":1}`)
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc.Listener.Close()
	rc.Listener = ln
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) host() string { return strings.TrimPrefix(rc.URL, "http://") }

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// wait returns once the receiver has n requests, or fails the test.
func (rc *receiver) wait(t *testing.T, n int) []hit {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for rc.count() < n {
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", rc.count(), n)
		}
	}
	return rc.all()
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	return m
}

// mail is one message the SMTP server accepted.
type mail struct {
	Auth string // "user:pass" from AUTH PLAIN
	From string
	To   []string
	Data string
}

// smtpServer is a minimal SMTP server on 127.0.0.1: EHLO, AUTH PLAIN,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT. It offers no STARTTLS.
type smtpServer struct {
	ln    net.Listener
	addr  string
	mu    sync.Mutex
	mails []mail
	got   chan struct{}
	wg    sync.WaitGroup
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, addr: ln.Addr().String(), got: make(chan struct{}, 10)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	reply := func(lines ...string) { _ = tp.PrintfLine("%s", strings.Join(lines, "\r\n")) }
	reply("220 127.0.0.1 ESMTP tagwatch-test")
	var m mail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-127.0.0.1 hello", "250-AUTH PLAIN", "250 8BITMIME")
		case "HELO":
			reply("250 127.0.0.1")
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				reply("504 unrecognized authentication type")
				continue
			}
			if initial == "" {
				reply("334 ")
				if initial, err = tp.ReadLine(); err != nil {
					return
				}
			}
			raw, err := base64.StdEncoding.DecodeString(initial)
			parts := strings.Split(string(raw), "\x00")
			if err != nil || len(parts) != 3 {
				reply("501 bad PLAIN response")
				continue
			}
			m.Auth = parts[1] + ":" + parts[2]
			reply("235 2.7.0 authenticated")
		case "MAIL":
			m.From = mailAddr(arg, "FROM:")
			reply("250 ok")
		case "RCPT":
			m.To = append(m.To, mailAddr(arg, "TO:"))
			reply("250 ok")
		case "DATA":
			reply("354 go ahead")
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			m.Data = strings.Join(lines, "\n")
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = mail{Auth: m.Auth}
			s.got <- struct{}{}
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// mailAddr reads the address of "FROM:<a@b> SIZE=…".
func mailAddr(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	arg, _, _ = strings.Cut(strings.TrimSpace(arg), " ")
	return strings.Trim(arg, "<>")
}

func (s *smtpServer) wait(t *testing.T, n int) []mail {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := append([]mail(nil), s.mails...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("SMTP server got %d mails, want %d", len(got), n)
		}
	}
}

// headerOf reads a mail's headers.
func headerOf(t *testing.T, data string) (textproto.MIMEHeader, string) {
	t.Helper()
	r := textproto.NewReader(bufio.NewReader(strings.NewReader(strings.ReplaceAll(data, "\n", "\r\n") + "\r\n")))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("mail headers: %v\n%s", err, data)
	}
	body, _ := io.ReadAll(r.R)
	return h, string(body)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
