package regtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Link is a TCP proxy on 127.0.0.1 in front of another address that adds a
// network's round trip to whatever crosses it: every byte takes half of RTT
// each way, and a new connection waits one RTT before its first byte goes
// through (the TCP handshake), so a TLS handshake costs its round trips
// too. It is a wire, not an HTTP proxy: HTTP/1.1, HTTP/2 and TLS go through
// as they are, and it counts the connections clients open.
//
// For HTTP/1.1 it also counts requests and requests in flight: a
// connection is busy from a request's first byte until its answer's first
// byte reaches the client (HTTP/1.1 has one request at a time on a
// connection), so busy connections are requests awaiting their answer.
type Link struct {
	Host string // "127.0.0.1:PORT"
	RTT  time.Duration

	target   string
	ln       net.Listener
	conns    atomic.Int64
	requests atomic.Int64

	mu    sync.Mutex
	busy  int
	peak  int
	open  map[net.Conn]bool
	close bool
}

// StartLink starts a Link to target ("127.0.0.1:PORT"), stopped when the
// test ends.
func StartLink(t testing.TB, target string, rtt time.Duration) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("regtest: link: %v", err)
	}
	l := &Link{Host: ln.Addr().String(), RTT: rtt, target: target, ln: ln, open: map[net.Conn]bool{}}
	go l.accept()
	t.Cleanup(l.Close)
	return l
}

// Close stops the link and cuts every connection through it.
func (l *Link) Close() {
	l.ln.Close()
	l.mu.Lock()
	l.close = true
	for c := range l.open {
		c.Close()
	}
	l.mu.Unlock()
}

// Conns is how many connections clients opened through the link.
func (l *Link) Conns() int64 { return l.conns.Load() }

// Requests is how many HTTP/1.1 requests went through.
func (l *Link) Requests() int64 { return l.requests.Load() }

// TakePeak returns the most HTTP/1.1 requests that were in flight at once
// since the last call, and starts counting again.
func (l *Link) TakePeak() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peak
	l.peak = l.busy
	return p
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.close {
		c.Close()
		return false
	}
	l.open[c] = true
	return true
}

func (l *Link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.open, c)
	l.mu.Unlock()
	c.Close()
}

func (l *Link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.conns.Add(1)
		go l.serve(c)
	}
}

// conn is one client connection's HTTP/1.1 state.
type conn struct{ busy bool }

func (l *Link) serve(down net.Conn) {
	if !l.track(down) {
		return
	}
	defer l.untrack(down)
	time.Sleep(l.RTT) // SYN, SYN-ACK: the client's bytes wait in the socket
	up, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil || !l.track(up) {
		return
	}
	defer l.untrack(up)
	st := &conn{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(down, up, st, true) }()
	go func() { defer wg.Done(); l.pipe(up, down, st, false) }()
	wg.Wait()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk half a round trip after it was read.
// A clean end is passed on as a half close; a broken one cuts both ways.
func (l *Link) pipe(src, dst net.Conn, st *conn, toServer bool) {
	half := l.RTT / 2
	chunks := make(chan chunk, 256)
	var readErr error
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if toServer {
					l.sent(st)
				}
				chunks <- chunk{append([]byte(nil), buf[:n]...), time.Now()}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	for c := range chunks {
		if d := time.Until(c.at.Add(half)); d > 0 {
			time.Sleep(d)
		}
		if !toServer {
			l.answered(st)
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			dst.Close()
			for range chunks {
			}
			return
		}
	}
	if errors.Is(readErr, io.EOF) {
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
			return
		}
	}
	src.Close()
	dst.Close()
}

func (l *Link) sent(st *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.busy {
		return
	}
	st.busy = true
	l.requests.Add(1)
	l.busy++
	l.peak = max(l.peak, l.busy)
}

func (l *Link) answered(st *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.busy {
		st.busy = false
		l.busy--
	}
}
