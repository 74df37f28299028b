package abusee2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
)

// Idle WebSockets hold no goroutine on the gateway: their readers wait in
// the gateway's epoll set and run only when a client sends something
// (issue: idle connections ≤ 16 KB each). With blocking reads, each holds
// one, which is what shows that the count measures them. The connections
// still work after idling: each answers a ping.
func TestIdleWebSocketsHoldNoGoroutine(t *testing.T) {
	const conns = 200
	for _, blocking := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocking=%v", blocking), func(t *testing.T) {
			before, cs := openIdle(t, conns, func(cfg *gatewayd.Config) { cfg.WSBlockingReads = blocking })
			var after int
			if blocking {
				after = settled(t, func(n int) bool { return n >= before+conns })
				if after-before < conns {
					t.Fatalf("%d goroutines more for %d blocking connections, want at least one each", after-before, conns)
				}
			} else {
				after = settled(t, func(n int) bool { return n <= before+conns/4 })
				if after-before > conns/4 {
					t.Fatalf("%d goroutines more for %d idle connections", after-before, conns)
				}
			}
			t.Logf("goroutines: %d before, %d with %d idle connections", before, after, conns)
			for _, c := range cs {
				c.pingPong(t)
			}
		})
	}
}

// openIdle starts a gateway (adjust changes its config) and joins one
// connection, so that the conversation's own goroutines run; it returns
// the goroutine count then, and conns more connections that stay idle.
func openIdle(t *testing.T, conns int, adjust func(*gatewayd.Config)) (before int, cs []*rawWS) {
	t.Helper()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Hub.MaxStreamsPerAccount = 2 * conns
		cfg.Hub.MaxStreamsPerConversation = 2 * conns
		cfg.Limits.AccountConns = 2 * conns
		adjust(cfg)
	})
	r := newRoom(t, sys, "alice")
	first := rawHTTP(t, sys.URL(0))
	upgrade(t, first, r.link, r.cred, "first")
	before = settled(t, func(int) bool { return false })
	cs = make([]*rawWS, conns)
	for i := range cs {
		c := rawHTTP(t, sys.URL(0))
		cs[i] = &rawWS{c: c, br: upgrade(t, c, r.link, r.cred, fmt.Sprintf("idle-%d", i))}
	}
	return before, cs
}

// settled returns the goroutine count once done(count) holds, or once it
// has held steady for a quarter of a second (writers that delivered the
// joins exit when their queues are empty).
func settled(t *testing.T, done func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	last := runtime.NumGoroutine()
	steady := 0
	for time.Now().Before(deadline) && steady < 5 {
		if done(last) {
			return last
		}
		time.Sleep(50 * time.Millisecond) // polling a visible count; the deadline bounds it
		n := runtime.NumGoroutine()
		if n == last {
			steady++
		} else {
			steady = 0
		}
		last = n
	}
	return last
}

// rawWS is a client WebSocket driven by hand (no goroutine of its own).
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// pingPong sends an AMS ping and reads frames until the pong.
func (w *rawWS) pingPong(t *testing.T) {
	t.Helper()
	msg := []byte(`{"type":"ping"}`)
	// FIN+text, MASK+length, zero mask key.
	if _, err := w.c.Write(append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)); err != nil {
		t.Fatal(err)
	}
	_ = w.c.SetReadDeadline(time.Now().Add(wait))
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			t.Fatalf("no pong: %v", err)
		}
		n := int(h[1] & 0x7f)
		if n == 126 {
			var e [2]byte
			_, _ = io.ReadFull(w.br, e[:])
			n = int(e[0])<<8 | int(e[1])
		} else if n == 127 {
			t.Fatal("unexpected 64-bit frame length")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			t.Fatalf("short frame: %v", err)
		}
		if h[0]&0x0f == 0x8 {
			t.Fatalf("closed: %q", p)
		}
		if strings.Contains(string(p), `"type":"pong"`) {
			return
		}
	}
}

// A connection the server closes (here displaced by a new connection of
// its stream, spec 4.5) whose client never answers the close frame is
// dropped after the close wait, not left to the idle timeout: its reader,
// parked in the epoll set, is woken by the close.
func TestServerCloseOfSilentClient(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.WSIdleTimeout = time.Hour })
	r := newRoom(t, sys, "alice")
	old := rawHTTP(t, sys.URL(0))
	br := upgrade(t, old, r.link, r.cred, "w")
	(&rawWS{c: old, br: br}).pingPong(t) // joined and idle
	upgrade(t, rawHTTP(t, sys.URL(0)), r.link, r.cred, "w")
	if code, reason := readClose(t, br); code != 4001 || reason != "stream_displaced" {
		t.Fatalf("closed %d %q, want 4001 stream_displaced", code, reason)
	}
	closedWithin(t, old, wait)
}

// A reader that took a data message lingers for the client's next one
// (-ws-read-linger) on its goroutine, then parks in the epoll set again:
// right after a message each connection holds a goroutine, and once the
// linger is over none does, and the connections still answer.
func TestLingeringReadersPark(t *testing.T) {
	const (
		conns  = 100
		linger = 5 * time.Second
	)
	_, cs := openIdle(t, conns, func(cfg *gatewayd.Config) { cfg.WSReadLinger = linger })
	before := settled(t, func(int) bool { return false })
	start := time.Now()
	for _, c := range cs {
		c.pingPong(t)
	}
	lingering := runtime.NumGoroutine()
	if time.Since(start) < linger && lingering-before < conns {
		t.Fatalf("%d goroutines more right after %d connections each sent a message, want one lingering reader each", lingering-before, conns)
	}
	after := lingering
	for deadline := start.Add(linger + wait); after-before > conns/4 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // polling a visible count; the deadline bounds it
		after = runtime.NumGoroutine()
	}
	if after-before > conns/4 {
		t.Fatalf("%d goroutines more %s after the messages: the readers did not park", after-before, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("goroutines: %d idle, %d right after the messages, %d after the linger", before, lingering, after)
	for _, c := range cs {
		c.pingPong(t)
	}
}
