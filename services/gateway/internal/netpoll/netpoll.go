// Package netpoll tells when an idle connection has input, without a
// goroutine parked in a read for each one.
//
// A WebSocket that waits for its client's next frame in a blocking read
// holds a goroutine and its stack (2–8 KiB) for as long as it is idle; at
// tens of thousands of idle connections that is most of what they cost.
// A Poller keeps the connections in one epoll set instead (Linux): the
// connection arms its descriptor when it has consumed all its input, and
// the Poller calls it back once, when input (or a hangup) arrives; the
// connection then reads on a goroutine started for the purpose, and arms
// again when it is idle. The descriptors stay in the Go runtime's own
// poller too, so reads and writes on the net.Conn work as usual.
//
// On other systems New returns ErrUnsupported and callers read in a
// goroutine of their own.
package netpoll

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// ErrUnsupported is returned by New where there is no epoll, and by
// Register for a connection without a descriptor (a TLS or in-memory
// connection): the caller reads in a goroutine instead.
var ErrUnsupported = errors.New("netpoll: not supported")

// ErrClosed is returned by Arm after Close of the Desc or the Poller.
var ErrClosed = errors.New("netpoll: closed")

// Desc is one connection in a Poller.
type Desc struct {
	p       *Poller
	key     uint64
	rc      syscall.RawConn
	onReady func()

	mu     sync.Mutex // orders Arm and Close
	added  bool       // in the epoll set (ADD done; MOD re-arms)
	closed bool
}

var (
	defaultOnce sync.Once
	defaultP    *Poller
	defaultErr  error
)

// Default is the process's shared Poller, created on first use.
func Default() (*Poller, error) {
	defaultOnce.Do(func() { defaultP, defaultErr = New() })
	return defaultP, defaultErr
}

// rawConn returns the connection's descriptor access, or ErrUnsupported.
func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return rc, nil
}
