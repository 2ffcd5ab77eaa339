package platform

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// AcceptRetryable reports whether an Accept error is transient: out of file descriptors,
// buffers or memory, an aborted connection, a timeout. An accept loop should pause (see
// AcceptBackoff) and try again, as net/http does, rather than stop serving for good.
func AcceptRetryable(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR:
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// AcceptBackoff is the pause after a transient Accept error that followed a pause of prev
// (0 for the first): 5 ms, doubling up to 1 s.
func AcceptBackoff(prev time.Duration) time.Duration {
	return min(max(2*prev, 5*time.Millisecond), time.Second)
}
