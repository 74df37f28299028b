package abusee2e

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// The connection quota: an account's live connections on a gateway
// (streams and observers, any transport) are bounded; one more is refused
// 4003 connection_limit_exceeded on a WebSocket, 429 on SSE,
// RESOURCE_EXHAUSTED with ams-close-code 4003 on gRPC, wire_closed
// "4003 connection_limit_exceeded" in MCP. Other accounts are not
// affected, and a slot frees when a connection ends.
func TestConnectionQuota(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.Limits.AccountConns = 2 })
	r := newRoom(t, sys, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")

	first := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "one"})
	first.expect("joined")
	// An observer holding the account's credential counts too.
	obs := dialWS(t, r.link, dialOpts{credential: r.cred, observe: true})
	obs.expect("joined")

	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "three"})
		c.wantClose(4003, "connection_limit_exceeded")
	})
	t.Run("sse", func(t *testing.T) {
		resp := gwtest.DoResponse(t, http.MethodGet, httpConnectURL(r.link),
			map[string]string{"Accept": "text/event-stream", "Authorization": "Bearer " + r.cred, "X-AMS-Stream-Name": "three"}, "")
		wantError(t, resp, http.StatusTooManyRequests, "connection_limit_exceeded")
	})
	t.Run("grpc", func(t *testing.T) {
		api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
		stream, err := api.streams.Connect(callCtx(t, connectMD(r.link, r.cred, "three")...))
		if err != nil {
			t.Fatal(err)
		}
		wantConnectEnd(t, stream, codes.ResourceExhausted, "4003", "connection_limit_exceeded")
	})
	t.Run("mcp", func(t *testing.T) {
		m := newMCP(t, sys.URL(0), r.cred)
		res, isErr := m.tool("ams_join", map[string]any{"magic_link": r.link, "stream_name": "three"})
		if !isErr || res["error"] != "wire_closed" || res["message"] != "4003 connection_limit_exceeded" {
			t.Fatalf("ams_join: %v %v, want wire_closed 4003 connection_limit_exceeded", isErr, res)
		}
	})
	t.Run("other account", func(t *testing.T) {
		b := dialWS(t, r.link, dialOpts{credential: credB, streamName: "bob"})
		b.expect("joined")
	})

	// Once a connection ends (here lost, its stream in its grace), its
	// slot is free.
	_ = first.c.CloseNow()
	deadline := time.Now().Add(wait)
	for {
		c := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "again"})
		select {
		case m := <-c.msgs:
			if m["type"] == "joined" {
				return
			}
			t.Fatalf("frame %v", m)
		case <-c.done:
			if code, reason := c.closed(); code != 4003 || reason != "connection_limit_exceeded" {
				t.Fatalf("closed %d %q", code, reason)
			}
		case <-time.After(wait):
			t.Fatal("no answer to a connect")
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed connection was not freed")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
