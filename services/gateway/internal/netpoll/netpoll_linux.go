//go:build linux

package netpoll

import (
	"errors"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// Poller is an epoll set with one goroutine waiting on it.
type Poller struct {
	epfd int
	wake int // eventfd that ends the wait loop (Close)

	mu     sync.Mutex
	descs  map[uint64]*Desc
	next   uint64
	closed bool
	done   chan struct{}
}

// wakeKey is the key of the eventfd; connection keys start at 1.
const wakeKey = 0

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setKey(&ev, wakeKey)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil, err
	}
	p := &Poller{epfd: epfd, wake: wake, descs: map[uint64]*Desc{}, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd = int32(uint32(key))
	ev.Pad = int32(uint32(key >> 32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// loop waits on the set and calls back each connection whose descriptor
// fired. Keys, not descriptors, identify connections: an event of a
// closed connection whose descriptor number was reused finds no Desc.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	ready := make([]*Desc, 0, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ready = ready[:0]
		stop := false
		p.mu.Lock()
		for i := range events[:n] {
			key := getKey(&events[i])
			if key == wakeKey {
				stop = true
				continue
			}
			if d := p.descs[key]; d != nil {
				ready = append(ready, d)
			}
		}
		p.mu.Unlock()
		for i, d := range ready {
			d.onReady()
			ready[i] = nil
		}
		if stop {
			_ = unix.Close(p.epfd)
			_ = unix.Close(p.wake)
			return
		}
	}
}

// Close stops the Poller; its Descs stop firing and Arm fails.
func (p *Poller) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.descs = map[uint64]*Desc{}
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.wake, one[:])
	<-p.done
}

// Len is the number of registered connections.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.descs)
}

// Register adds a connection, not yet armed. onReady is called on the
// Poller's goroutine once per Arm, when the connection has input, has
// been hung up or has failed; it must not block (start a goroutine to
// read). Register fails with ErrUnsupported for a connection that has
// no descriptor of its own.
func (p *Poller) Register(c net.Conn, onReady func()) (*Desc, error) {
	rc, err := rawConn(c)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.next++
	d := &Desc{p: p, key: p.next, rc: rc, onReady: onReady}
	p.descs[d.key] = d
	return d, nil
}

// Arm asks for one call of onReady when the connection is readable
// (now, if it already is). A connection is armed at most once at a time:
// arm again only after onReady.
func (d *Desc) Arm() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	op := unix.EPOLL_CTL_MOD
	if !d.added {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setKey(&ev, d.key)
	var ctlErr error
	// Control holds the descriptor open for the call: it cannot be
	// closed, and its number reused, in between.
	err := d.rc.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(d.p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	if ctlErr != nil {
		return ctlErr
	}
	d.added = true
	return nil
}

// Close removes the connection; onReady is not called after Close
// returns unless a call was already under way. Call it before closing the
// connection (after, the kernel has dropped the descriptor from the set
// already, and only the bookkeeping is left).
func (d *Desc) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.added {
		_ = d.rc.Control(func(fd uintptr) {
			_ = unix.EpollCtl(d.p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	d.p.mu.Lock()
	delete(d.p.descs, d.key)
	d.p.mu.Unlock()
}

// PeerClosed reports whether the peer of c has closed or reset the
// connection, without consuming input: a client that gave up waiting (a
// connect timeout) need not be served. False when it cannot tell.
func PeerClosed(c net.Conn) bool {
	rc, err := rawConn(c)
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err == unix.ECONNRESET
		return true // never wait
	})
	return closed
}
