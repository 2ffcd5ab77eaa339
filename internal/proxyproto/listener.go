package proxyproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// ReadHeader reads one PROXY header from r and nothing after it.
func ReadHeader(r *bufio.Reader) (Header, error) {
	n := 1
	for {
		b, err := r.Peek(n)
		if err != nil && len(b) < n {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, fmt.Errorf("proxyproto: read header: %w", err)
		}
		h, used, perr := Parse(b)
		switch {
		case perr == nil:
			_, _ = r.Discard(used)
			return h, nil
		case errors.Is(perr, ErrIncomplete):
			n = used
		default:
			return Header{}, perr
		}
	}
}

// Listener accepts connections that each start with a PROXY header, and reports the address
// the header names as the connection's RemoteAddr. Headers are read off the accept path, so a
// peer that connects and stays silent delays nobody else; a connection without a valid header
// within the timeout is closed.
//
// Only put it on an address that nothing but the trusted proxy can reach (a loopback port):
// whoever connects chooses the address the server believes.
type Listener struct {
	inner   net.Listener
	timeout time.Duration
	log     *slog.Logger

	ready chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	err error // why the inner listener stopped
}

// NewListener wraps inner. timeout bounds how long a connection may take to send its header.
func NewListener(inner net.Listener, timeout time.Duration, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{inner: inner, timeout: timeout, log: log, ready: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			// Out of file descriptors is transient: stopping here would end the listener for good.
			if platform.AcceptRetryable(err) {
				pause = platform.AcceptBackoff(pause)
				l.log.Warn("accept failed; retrying", "err", err, "retry_in", pause.String())
				select {
				case <-l.done:
				case <-time.After(pause):
				}
				continue
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.Close()
			return
		}
		pause = 0
		go l.handshake(c)
	}
}

func (l *Listener) handshake(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	r := bufio.NewReaderSize(c, MaxHeaderLen)
	h, err := ReadHeader(r)
	if err != nil {
		l.log.Debug("connection without a valid PROXY header closed", "err", err)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &Conn{Conn: c, r: r, header: h}
	select {
	case l.ready <- pc:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection whose header has been read.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, fmt.Errorf("proxyproto: accept: %w", net.ErrClosed)
	}
}

// Close stops accepting; connections already returned stay open.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Conn is a connection whose PROXY header has been read.
type Conn struct {
	net.Conn
	r      *bufio.Reader
	header Header
}

// Read reads what followed the header.
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// RemoteAddr is the client's address from the header, or the connection's own for LOCAL.
func (c *Conn) RemoteAddr() net.Addr {
	if c.header.Local || !c.header.Source.IsValid() {
		return c.Conn.RemoteAddr()
	}
	src := c.header.Source
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()))
}

// Header is the header the connection started with.
func (c *Conn) Header() Header { return c.header }
