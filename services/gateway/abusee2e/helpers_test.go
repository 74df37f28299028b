// Package abusee2e tests the gateway's abuse controls end to end
// (docs/operations.md): rate limits per connection, per account
// and per control-plane client on every transport, the per-account
// connection quota, timeouts against slow and silent clients, and size
// limits. Every control is asserted by its wire code: a close code, an
// HTTP status with its error body, or a gRPC status with its trailers.
// Real gateways (gwtest) on 127.0.0.1 sockets, each test with limits low
// enough to reach quickly.
package abusee2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

// wait bounds anything that must happen.
const wait = 10 * time.Second

// off turns a rate limit off.
var off = limits.Rate{PerSecond: -1}

// startWith starts a system of one gateway whose config tweak adjusts.
func startWith(t *testing.T, tweak func(cfg *gatewayd.Config)) *gwtest.System {
	t.Helper()
	return gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) { tweak(cfg) }})
}

// room is an account and a conversation it minted.
type room struct {
	sys   *gwtest.System
	cred  string
	accID string
	link  string // magic link
}

func newRoom(t *testing.T, sys *gwtest.System, ns string) *room {
	t.Helper()
	acc, cred := sys.CreateAccount(t, 0, ns)
	conv := sys.Mint(t, 0, cred, ns, `{"alias":"room"}`)
	return &room{sys: sys, cred: cred, accID: acc, link: conv["magic_link"].(string)}
}

// connectURL is the ws:// connect URL of a magic link.
func connectURL(link string) string {
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	return u[:i] + "/connect" + u[i:]
}

// httpConnectURL is the http:// connect URL (SSE).
func httpConnectURL(link string) string {
	i := strings.Index(link, "?")
	return link[:i] + "/connect" + link[i:]
}

// emitURL is the HTTP emit URL of stream name.
func emitURL(link, name string) string {
	i := strings.Index(link, "?")
	return link[:i] + "/streams/" + name + "/tokens" + link[i:]
}

// ws is a test WebSocket participant that reads in the background.
type ws struct {
	t    testing.TB
	c    *websocket.Conn
	msgs chan map[string]any
	done chan struct{}
	err  error
}

type dialOpts struct {
	credential string
	streamName string
	observe    bool
}

// dialWS connects; the handshake must complete (every refusal after it
// is a close code).
func dialWS(t testing.TB, link string, o dialOpts) *ws {
	t.Helper()
	h := http.Header{}
	if o.credential != "" {
		h.Set("Authorization", "Bearer "+o.credential)
	}
	if o.streamName != "" {
		h.Set("X-AMS-Stream-Name", o.streamName)
	}
	if o.observe {
		h.Set("X-AMS-Observe", "true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, connectURL(link), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(8 << 20)
	w := &ws{t: t, c: c, msgs: make(chan map[string]any, 1<<14), done: make(chan struct{})}
	go w.read()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

func (w *ws) read() {
	defer close(w.done)
	for {
		_, b, err := w.c.Read(context.Background())
		if err != nil {
			w.err = err
			return
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		w.msgs <- m
	}
}

// expect returns the next frame, which must be of type typ.
func (w *ws) expect(typ string) map[string]any {
	w.t.Helper()
	select {
	case m := <-w.msgs:
		if m["type"] != typ {
			w.t.Fatalf("frame %v, want %s", m, typ)
		}
		return m
	case <-w.done:
		w.t.Fatalf("closed while waiting for %s: %v", typ, w.err)
	case <-time.After(wait):
		w.t.Fatalf("no %s within %s", typ, wait)
	}
	return nil
}

// until skips frames until one of type typ arrives.
func (w *ws) until(typ string) map[string]any {
	w.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-w.msgs:
			if m["type"] == typ {
				return m
			}
		case <-w.done:
			w.t.Fatalf("closed while waiting for %s: %v", typ, w.err)
		case <-deadline:
			w.t.Fatalf("no %s within %s", typ, wait)
		}
	}
}

// write sends a text message; errors are ignored (the server may have
// closed meanwhile).
func (w *ws) write(s string) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = w.c.Write(ctx, websocket.MessageText, []byte(s))
}

// closed waits for the server's close and returns its code and reason.
func (w *ws) closed() (int, string) {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(wait):
		w.t.Fatalf("not closed within %s", wait)
	}
	var ce websocket.CloseError
	if errors.As(w.err, &ce) {
		return int(ce.Code), ce.Reason
	}
	return -1, w.err.Error()
}

// wantClose checks the server's close code and reason.
func (w *ws) wantClose(code int, reason string) {
	w.t.Helper()
	if c, r := w.closed(); c != code || r != reason {
		w.t.Fatalf("closed %d %q, want %d %q", c, r, code, reason)
	}
}

// wantError checks an `{"error","message"}` answer.
func wantError(t testing.TB, r *gwtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %.300s", r.Status, status, r.Body)
	}
	if m := r.JSON(t); m["error"] != code {
		t.Fatalf("error %v, want %s", m["error"], code)
	}
}

// wantRetryAfter checks a Retry-After of whole seconds, at least 1.
func wantRetryAfter(t testing.TB, r *gwtest.Response) {
	t.Helper()
	v := r.Header.Get("Retry-After")
	if v == "" || strings.Trim(v, "0123456789") != "" || v == "0" {
		t.Fatalf("Retry-After %q, want whole seconds ≥ 1", v)
	}
}

// grpcAPI is a client of a gateway's ams.v1 services.
type grpcAPI struct {
	accounts amsv1.AccountServiceClient
	convs    amsv1.ConversationServiceClient
	streams  amsv1.StreamServiceClient
}

func dialGRPC(t testing.TB, addr string) *grpcAPI {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &grpcAPI{accounts: amsv1.NewAccountServiceClient(conn), convs: amsv1.NewConversationServiceClient(conn),
		streams: amsv1.NewStreamServiceClient(conn)}
}

// callCtx is a call context with a deadline and metadata pairs.
func callCtx(t testing.TB, kv ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// connectMD is the metadata of a Connect call.
func connectMD(link, cred, name string) []string {
	md := []string{"x-ams-magic-link", link, "x-ams-stream-name", name}
	if cred != "" {
		md = append(md, "authorization", "Bearer "+cred)
	}
	return md
}

// rawHTTP opens a TCP connection to a gateway's HTTP listener.
func rawHTTP(t testing.TB, base string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), wait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reads c until the peer closes it and returns how long that
// took; it fails if that takes longer than within. Anything read (an
// HTTP answer, WebSocket frames) is discarded.
func closedWithin(t testing.TB, c net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after %s", within)
			}
			return time.Since(start)
		}
	}
}

// upgrade sends a WebSocket upgrade for link on c and reads the 101
// answer; the connection is then a WebSocket the test drives by hand.
func upgrade(t testing.TB, c net.Conn, link, cred, name string) *bufio.Reader {
	t.Helper()
	u := strings.TrimPrefix(httpConnectURL(link), "http://")
	host, path, _ := strings.Cut(u, "/")
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	req := "GET /" + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + cred +
		"\r\nX-AMS-Stream-Name: " + name + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatalf("write upgrade: %v", err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade answer: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %d", resp.StatusCode)
	}
	_ = c.SetReadDeadline(time.Time{})
	return br
}
