//go:build linux

package netpoll

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// expect waits for one callback, or fails after a while.
func expect(t *testing.T, ready chan struct{}, what string) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("no callback: %s", what)
	}
}

// never asserts that no callback is pending once a round trip through the
// poller has completed: a second connection, armed with input after the
// first, calls back first only if the first was not going to.
func never(t *testing.T, p *Poller, ready chan struct{}, what string) {
	t.Helper()
	c, s := pair(t)
	probe := make(chan struct{}, 1)
	d, err := p.Register(s, func() { probe <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	expect(t, probe, "probe")
	select {
	case <-ready:
		t.Fatalf("unexpected callback: %s", what)
	default:
	}
}

// armed registers the server side of a new connection pair in a new
// Poller, armed, with a callback that signals ready.
func armed(t *testing.T) (p *Poller, c, s net.Conn, d *Desc, ready chan struct{}) {
	t.Helper()
	p = newPoller(t)
	c, s = pair(t)
	ready = make(chan struct{}, 4)
	d, err := p.Register(s, func() { ready <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	return p, c, s, d, ready
}

func TestArmFiresOncePerArm(t *testing.T) {
	p, c, s, d, ready := armed(t)
	never(t, p, ready, "armed without input")
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	expect(t, ready, "input")
	// One shot: input still unread does not call again until re-armed.
	never(t, p, ready, "not re-armed")
	if err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	expect(t, ready, "unread input after re-arm")
	buf := make([]byte, 16)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	never(t, p, ready, "input consumed")
	// A hangup calls back.
	c.Close()
	expect(t, ready, "hangup")
}

func TestClosedDescNeverFires(t *testing.T) {
	p, c, _, d, ready := armed(t)
	d.Close()
	if err := d.Arm(); err != ErrClosed {
		t.Fatalf("Arm after Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	never(t, p, ready, "after Close")
	if p.Len() != 0 {
		t.Fatalf("%d registered after Close", p.Len())
	}
}

func TestArmClosedConn(t *testing.T) {
	p := newPoller(t)
	_, s := pair(t)
	d, err := p.Register(s, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s.Close()
	if err := d.Arm(); err == nil {
		t.Fatal("Arm of a closed connection succeeded")
	}
}

func TestRegisterUnsupported(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := p.Register(a, func() {}); err != ErrUnsupported {
		t.Fatalf("Register of a pipe: %v", err)
	}
}

// PeerClosed tells a closed peer from an open one, with or without unread
// input, and consumes nothing.
func peekable(c net.Conn) bool {
	rc, _ := rawConn(c)
	ok := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, _ := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		ok = n > 0
		return true
	})
	return ok
}

func TestPeerClosed(t *testing.T) {
	c, s := pair(t)
	if PeerClosed(s) {
		t.Fatal("open and silent: reported closed")
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	// The input is not consumed: it is still there to read.
	buf := make([]byte, 2)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !peekable(s) {
		time.Sleep(time.Millisecond) // polling a visible condition; the read deadline bounds it
	}
	if PeerClosed(s) {
		t.Fatal("open with input: reported closed")
	}
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q %v after PeerClosed", buf[:n], err)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !PeerClosed(s) {
		if time.Now().After(deadline) {
			t.Fatal("closed peer never reported")
		}
		time.Sleep(time.Millisecond) // polling a visible condition; the deadline bounds it
	}
}
