package platform

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestAcceptRetryable(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"out of file descriptors", emfile, true},
		{"system file table full", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{"timeout", &net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, true},
		{"closed", &net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{"other", errors.New("listener broken"), false},
		{"invalid", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EINVAL)}, false},
		{"nil", nil, false},
		{"context", context.Canceled, false},
	}
	for _, c := range cases {
		if got := AcceptRetryable(c.err); got != c.want {
			t.Errorf("%s: AcceptRetryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
	if AcceptBackoff(0) != 5*time.Millisecond || AcceptBackoff(5*time.Millisecond) != 10*time.Millisecond || AcceptBackoff(time.Second) != time.Second {
		t.Error("AcceptBackoff: want 5 ms doubling up to 1 s")
	}
}
