package benchkit

import (
	"io"
	"net"
	"sync"
)

// Proxy is a loopback TCP proxy that can cut every connection through it
// at once (both sides reset), as a flaky network would.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	pairs map[*pair]struct{}
	wg    sync.WaitGroup
	Cuts  int
}

type pair struct{ a, b net.Conn }

// StartProxy listens on 127.0.0.1 at a random port and forwards to
// target (host:port).
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(a) })
	}
}

func (p *Proxy) serve(a net.Conn) {
	b, err := net.Dial("tcp", p.target)
	if err != nil {
		a.Close()
		return
	}
	pr := &pair{a: a, b: b}
	p.mu.Lock()
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	<-done
	reset(a)
	reset(b)
	<-done
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
}

// reset closes c with a TCP reset (linger 0), not an orderly FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// CutAll resets every connection through the proxy and returns how many.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pr := range p.pairs {
		reset(pr.a)
		reset(pr.b)
		n++
	}
	p.Cuts += n
	return n
}

// Close stops the proxy and cuts its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}
