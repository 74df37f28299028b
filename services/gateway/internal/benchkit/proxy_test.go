package benchkit

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

func TestProxyForwardsAndCuts(t *testing.T) {
	t.Parallel()
	// An echo server behind the proxy.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := StartProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo through the proxy: %q %v", line, err)
	}
	if n := p.CutAll(); n != 1 {
		t.Errorf("CutAll cut %d connections, want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("a cut connection still reads")
	}
}
