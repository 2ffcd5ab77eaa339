// Package testnet holds what tests in several packages share about the network: fakes
// (a listener out of file descriptors) and free loopback ports. It is imported only by tests.
package testnet

import (
	"net"
	"os"
	"syscall"
)

// EMFILEListener fails its first N Accepts as a process out of file descriptors does, then
// accepts from the wrapped listener.
type EMFILEListener struct {
	net.Listener
	N int
}

// Accept implements net.Listener.
func (l *EMFILEListener) Accept() (net.Conn, error) {
	if l.N > 0 {
		l.N--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}
