package abusee2e

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/grpcapi"
)

// Slow clients on the HTTP listener: one that connects and sends
// nothing, one that trickles a request's headers, and one that starts a
// WebSocket upgrade and never finishes the request are all disconnected
// after ReadHeaderTimeout, without an answer.
func TestReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.ReadHeaderTimeout = timeout })
	for name, send := range map[string]string{
		"silent":            "",
		"partial headers":   "GET /healthz HTTP/1.1\r\nHost: x\r\n",
		"partial upgrade":   "GET /alice/conversations/room/connect?t=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
		"request line only": "GET /healthz HTTP/1.1\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := rawHTTP(t, sys.URL(0))
			if send != "" {
				if _, err := c.Write([]byte(send)); err != nil {
					t.Fatal(err)
				}
			}
			if took := closedWithin(t, c, wait); took < timeout/2 {
				t.Fatalf("closed after %s, before the timeout %s", took, timeout)
			}
		})
	}
}

// A WebSocket whose client completes the upgrade and then goes silent
// (no frames, no pongs) is dropped after the idle timeout; a client that
// answers the server's pings stays connected well past it (spec 4.5: a
// responsive connection is never closed for idleness).
func TestWebSocketIdle(t *testing.T) {
	t.Parallel()
	const idle = 600 * time.Millisecond
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.WSPingEvery = 150 * time.Millisecond
		cfg.WSIdleTimeout = idle
	})
	r := newRoom(t, sys, "alice")

	responsive := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "responsive"})
	responsive.expect("joined")

	c := rawHTTP(t, sys.URL(0))
	upgrade(t, c, r.link, r.cred, "silent")
	took := closedWithin(t, c, wait)
	if took < idle/2 {
		t.Fatalf("silent client dropped after %s, before the idle timeout %s", took, idle)
	}
	// The responsive client, answering pings, is still connected after
	// several idle periods.
	timer := time.NewTimer(3 * idle)
	defer timer.Stop()
idling:
	for {
		select {
		case <-responsive.done:
			t.Fatalf("responsive client dropped: %v", responsive.err)
		case <-responsive.msgs:
		case <-timer.C:
			break idling
		}
	}
	responsive.write(`{"type":"ping"}`)
	responsive.until("pong")
}

// gRPC keepalive enforcement: a client that pings more often than allowed
// gets GOAWAY ENHANCE_YOUR_CALM ("too_many_pings") and is disconnected.
func TestGRPCPingFlood(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.GRPCKeepalive = grpcapi.Keepalive{MinPing: time.Minute}
	})
	c, fr := rawH2(t, sys.Gateways[0].GRPCAddr())
	go func() {
		for i := 0; i < 10; i++ {
			if fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), "too_many_pings") {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			break
		}
	}
	closedWithin(t, c, wait)
}

// gRPC keepalive: a connection that does not answer the server's pings is
// dropped after Time + Timeout.
func TestGRPCSilentClient(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.GRPCKeepalive = grpcapi.Keepalive{Time: time.Second, Timeout: 300 * time.Millisecond}
	})
	c, fr := rawH2(t, sys.Gateways[0].GRPCAddr())
	start := time.Now()
	pinged := false
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after %s", wait)
			}
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
				t.Logf("ended with %v", err)
			}
			break
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			pinged = true // and never answered
		}
	}
	if !pinged {
		t.Fatal("the server never pinged")
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("dropped after %s, before keepalive time", took)
	}
}

// rawH2 opens a plain HTTP/2 connection (preface and settings exchanged)
// that the test drives frame by frame.
func rawH2(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}
