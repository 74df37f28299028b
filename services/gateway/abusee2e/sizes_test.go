package abusee2e

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// Size limits not covered elsewhere (1 MiB control-plane bodies: e2e
// TestPayloadTooLarge; 4 MiB MCP bodies: mcpe2e; WebSocket and gRPC
// messages over 1 MiB → 1009: streame2e, grpce2e): request headers and
// the request line (query included) over MaxHeaderBytes get 431, an HTTP
// emit body over 1 MiB gets 413 payload_too_large, and gRPC metadata over
// 64 KiB is refused before any handler runs.
func TestSizeLimits(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.MaxHeaderBytes = 16 << 10 })
	r := newRoom(t, sys, "alice")

	t.Run("header", func(t *testing.T) {
		if got := rawStatus(t, sys.URL(0), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 32<<10)+"\r\n\r\n"); got != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", got)
		}
		if got := rawStatus(t, sys.URL(0), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Small: "+strings.Repeat("a", 4<<10)+"\r\n\r\n"); got != http.StatusOK {
			t.Fatalf("a 4 KiB header: %d, want 200", got)
		}
	})
	t.Run("query", func(t *testing.T) {
		if got := rawStatus(t, sys.URL(0), "GET /v1/alice/conversations/room?t="+strings.Repeat("a", 32<<10)+" HTTP/1.1\r\nHost: x\r\n\r\n"); got != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", got)
		}
	})
	t.Run("emit body", func(t *testing.T) {
		w := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "main"})
		w.expect("joined")
		body := `{"tokens":["` + strings.Repeat("a", 1<<20) + `"]}`
		resp := gwtest.DoResponse(t, http.MethodPost, emitURL(r.link, "main"), gwtest.Bearer(r.cred), body)
		wantError(t, resp, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("grpc metadata", func(t *testing.T) {
		api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
		_, err := api.accounts.CreateAccount(callCtx(t, "x-big", strings.Repeat("a", 100<<10)), &amsv1.CreateAccountRequest{Namespace: "big"})
		if err == nil {
			t.Fatal("a call with 100 KiB of metadata succeeded")
		}
		t.Logf("refused: %v", err)
		if c := status.Code(err); c == codes.OK || c == codes.AlreadyExists || c == codes.InvalidArgument {
			t.Fatalf("status %v: the call reached the handler", err)
		}
		// The namespace was not created: a normal call can take it.
		if _, err := api.accounts.CreateAccount(callCtx(t), &amsv1.CreateAccountRequest{Namespace: "big"}); err != nil {
			t.Fatalf("after: %v", err)
		}
	})
}

// rawStatus sends a raw request and returns the answer's status.
func rawStatus(t *testing.T, base, req string) int {
	t.Helper()
	c := rawHTTP(t, base)
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A frame header that claims a message of a terabyte is refused on the
// claim: 1009 message_too_large, nothing allocated for it, and the
// gateway goes on serving (spec 4.2: messages are at most 1 MiB).
func TestWebSocketHugeLengthClaim(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(*gatewayd.Config) {})
	r := newRoom(t, sys, "alice")
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		// FIN+text, MASK+127, a 64-bit length of 2^40, zero mask key.
		{"text", []byte{0x81, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		// A first fragment of 1 KiB, then a continuation claiming 2^40.
		{"continuation", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawHTTP(t, sys.URL(0))
			upgrade(t, c, r.link, r.cred, "huge-"+tc.name)
			msg := tc.header
			if msg == nil {
				first := append([]byte{0x01, 0xfe, 0x04, 0x00, 0, 0, 0, 0}, []byte(`{"type":"token","data":"`+strings.Repeat("a", 1024-24))...)
				msg = append(first, 0x80, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
			}
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if code, reason := readClose(t, c); code != 1009 || reason != "message_too_large" {
				t.Fatalf("closed %d %q, want 1009 message_too_large", code, reason)
			}
		})
	}
	if got := rawStatus(t, sys.URL(0), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); got != http.StatusOK {
		t.Fatalf("healthz after the claims: %d", got)
	}
}
