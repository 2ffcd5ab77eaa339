package turnsvc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// listeners are the sockets TURN clients reach.
type listeners struct {
	udp []net.PacketConn
	tcp net.Listener
	tls net.Listener
}

func (l *listeners) close() {
	for _, c := range l.udp {
		_ = c.Close()
	}
	if l.tcp != nil {
		_ = l.tcp.Close()
	}
	if l.tls != nil {
		_ = l.tls.Close()
	}
}

// listen binds n UDP sockets sharing one port (SO_REUSEPORT: the kernel spreads clients across
// them, so each core runs a read loop), then TCP on the same port number, then TLS when
// configured. Port 0 picks a free port; since that port is free for UDP but may be taken for
// TCP, the whole bind is retried a few times.
func listen(ctx context.Context, host string, port, n, buffer int, tlsPort int, tlsCfg *tls.Config, log *slog.Logger) (*listeners, error) {
	attempts := 1
	if port == 0 {
		attempts = 8
	}
	var err error
	for range attempts {
		var l *listeners
		if l, err = listenOnce(ctx, host, port, n, buffer, log); err == nil {
			if tlsCfg != nil {
				ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(tlsPort)))
				if err != nil {
					l.close()
					return nil, fmt.Errorf("TURN_TLS_PORT: listen on %s:%d/tcp: %w", host, tlsPort, err)
				}
				l.tls = tls.NewListener(ln, tlsCfg)
			}
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || port != 0 {
			break
		}
	}
	return nil, err
}

func listenOnce(ctx context.Context, host string, port, n, buffer int, log *slog.Logger) (*listeners, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	l := &listeners{}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for i := range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("TURN_PORT: listen on %s/udp: %w", addr, err)
		}
		l.udp = append(l.udp, pc)
		if i == 0 {
			port = pc.LocalAddr().(*net.UDPAddr).Port
			addr = net.JoinHostPort(host, strconv.Itoa(port))
			if buffer > 0 {
				rcv, snd := setBuffers(pc, buffer)
				log.Info("TURN UDP socket buffers", "requested", buffer, "granted_rcv", rcv, "granted_snd", snd, "sockets", n)
				if rcv < buffer {
					log.Warn("the kernel granted smaller UDP buffers than requested; raise net.core.rmem_max / wmem_max",
						"requested", buffer, "granted_rcv", rcv)
				}
			}
		} else if buffer > 0 {
			setBuffers(pc, buffer)
		}
	}
	tcp, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("TURN_PORT: listen on %s/tcp: %w", addr, err)
	}
	l.tcp = tcp
	return l, nil
}

// setBuffers asks for size-byte socket buffers, forcing past net.core.rmem_max when the process
// may (CAP_NET_ADMIN), and returns what the kernel granted. Linux reports twice the usable size
// (bookkeeping overhead); the figures returned are halved to compare with the request.
func setBuffers(pc net.PacketConn, size int) (rcv, snd int) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = raw.Control(func(fd uintptr) {
		f := int(fd)
		if unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
		rcv, _ = unix.GetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(f, unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	return rcv / 2, snd / 2
}
