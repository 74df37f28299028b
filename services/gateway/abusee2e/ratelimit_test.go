package abusee2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
)

// A WebSocket sending frames faster than its limit is closed 4429
// rate_limited; another connection of the same account keeps going (the
// limit is per connection), and the peer sees the stream leave.
func TestConnFramesWebSocket(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.ConnFrames = limits.Rate{PerSecond: 1, Burst: 5}
		cfg.Limits.AccountTokens = off
	})
	r := newRoom(t, sys, "alice")
	fast := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "fast"})
	fast.expect("joined")
	calm := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "calm"})
	calm.expect("joined")
	fast.expect("stream_joined")
	for i := 0; i < 20; i++ {
		fast.write(`{"type":"ping"}`)
	}
	fast.wantClose(4429, "rate_limited")
	if m := calm.expect("stream_left"); m["stream_name"] != "fast" {
		t.Fatalf("stream_left %v", m)
	}
	calm.write(`{"type":"ping"}`)
	calm.expect("pong")
}

// WebSocket pings (control frames) count too.
func TestConnFramesWebSocketPings(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.Limits.ConnFrames = limits.Rate{PerSecond: 1, Burst: 5} })
	r := newRoom(t, sys, "alice")
	c := rawHTTP(t, sys.URL(0))
	upgrade(t, c, r.link, r.cred, "pinger")
	// Masked empty pings (FIN+ping, MASK+0, zero mask key).
	ping := []byte{0x89, 0x80, 0, 0, 0, 0}
	for i := 0; i < 20; i++ {
		if _, err := c.Write(ping); err != nil {
			break
		}
	}
	code, reason := readClose(t, c)
	if code != 4429 || reason != "rate_limited" {
		t.Fatalf("closed %d %q, want 4429 rate_limited", code, reason)
	}
}

// readClose reads server frames on a raw WebSocket until a close frame and
// returns its code and reason.
func readClose(t testing.TB, c io.Reader) (int, string) {
	t.Helper()
	if nc, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = nc.SetReadDeadline(time.Now().Add(wait))
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			_, _ = io.ReadFull(c, e[:])
			n = int(e[0])<<8 | int(e[1])
		case 127:
			var e [8]byte
			_, _ = io.ReadFull(c, e[:])
			n = 0
			for _, b := range e {
				n = n<<8 | int(b)
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c, p); err != nil {
			t.Fatalf("short frame: %v", err)
		}
		if h[0]&0x0f == 0x8 {
			if len(p) < 2 {
				return 1005, ""
			}
			return int(p[0])<<8 | int(p[1]), string(p[2:])
		}
	}
}

// Tokens count per account across its connections: the connection that
// takes the account over its budget is closed 4429 rate_limited, and
// another account is not affected.
func TestAccountTokensWebSocket(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.ConnFrames = off
		cfg.Limits.AccountTokens = limits.Rate{PerSecond: 1, Burst: 300}
	})
	r := newRoom(t, sys, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	reader := dialWS(t, r.link, dialOpts{credential: credB, streamName: "reader"})
	reader.expect("joined")
	a1 := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "a1"})
	a1.expect("joined")
	a2 := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "a2"})
	a2.expect("joined")
	for i := 0; i < 200; i++ {
		a1.write(`{"type":"token","data":"x"}`)
	}
	// a1 is within the budget: a ping round trip proves its 200 went in.
	a1.write(`{"type":"ping"}`)
	a1.until("pong")
	for i := 0; i < 200; i++ {
		a2.write(`{"type":"token","data":"y"}`)
	}
	a2.wantClose(4429, "rate_limited")
	// Bob still emits.
	b := dialWS(t, r.link, dialOpts{credential: credB, streamName: "b"})
	b.expect("joined")
	b.write(`{"type":"token","data":"from bob"}`)
	for {
		if m := reader.until("token"); m["data"] == "from bob" {
			return
		}
	}
}

// HTTP emit over the account's budget is 429 rate_limited with
// Retry-After; the budget is shared with the account's WebSocket.
func TestAccountTokensHTTPEmit(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.AccountTokens = limits.Rate{PerSecond: 0.5, Burst: 256}
	})
	r := newRoom(t, sys, "alice")
	w := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "main"})
	w.expect("joined")
	tokens := make([]string, 256)
	for i := range tokens {
		tokens[i] = fmt.Sprint(i)
	}
	body, _ := json.Marshal(map[string]any{"tokens": tokens})
	if resp := gwtest.DoResponse(t, http.MethodPost, emitURL(r.link, "main"), gwtest.Bearer(r.cred), string(body)); resp.Status != http.StatusAccepted {
		t.Fatalf("first emit: %d %s", resp.Status, resp.Body)
	}
	resp := gwtest.DoResponse(t, http.MethodPost, emitURL(r.link, "main"), gwtest.Bearer(r.cred), `{"data":"one more"}`)
	wantError(t, resp, http.StatusTooManyRequests, "rate_limited")
	wantRetryAfter(t, resp)
	// The WebSocket of the same account is over the budget too.
	w.write(`{"type":"token","data":"x"}`)
	w.wantClose(4429, "rate_limited")
}

// gRPC Connect: over the frame limit the call ends RESOURCE_EXHAUSTED
// with ams-close-code 4429 and ams-close-reason rate_limited.
func TestConnFramesGRPC(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) { cfg.Limits.ConnFrames = limits.Rate{PerSecond: 1, Burst: 5} })
	r := newRoom(t, sys, "alice")
	api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
	stream, err := api.streams.Connect(callCtx(t, connectMD(r.link, r.cred, "g")...))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := stream.Recv(); err != nil || f.GetJoined() == nil {
		t.Fatalf("first frame %v %v", f, err)
	}
	for i := 0; i < 20; i++ {
		if err := stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Ping{Ping: &amsv1.Ping{}}}); err != nil {
			break
		}
	}
	wantConnectEnd(t, stream, codes.ResourceExhausted, "4429", "rate_limited")
}

// wantConnectEnd reads a Connect call to its end and checks the status
// and the close trailers.
func wantConnectEnd(t testing.TB, stream grpc.BidiStreamingClient[amsv1.ClientFrame, amsv1.ServerFrame], code codes.Code, closeCode, reason string) {
	t.Helper()
	var err error
	for err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != code {
		t.Fatalf("Connect ended %v, want %v", err, code)
	}
	tr := stream.Trailer()
	if got := tr.Get("ams-close-code"); len(got) != 1 || got[0] != closeCode {
		t.Fatalf("ams-close-code %v, want %s", got, closeCode)
	}
	if got := tr.Get("ams-close-reason"); len(got) != 1 || got[0] != reason {
		t.Fatalf("ams-close-reason %v, want %s", got, reason)
	}
}

// gRPC Connect: tokens over the account's budget end the call 4429.
func TestAccountTokensGRPC(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.ConnFrames = off
		cfg.Limits.AccountTokens = limits.Rate{PerSecond: 1, Burst: 256}
	})
	r := newRoom(t, sys, "alice")
	api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
	stream, err := api.streams.Connect(callCtx(t, connectMD(r.link, r.cred, "g")...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if err := stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: "x"}}}); err != nil {
			break
		}
	}
	wantConnectEnd(t, stream, codes.ResourceExhausted, "4429", "rate_limited")
}

// Control plane over HTTP: per client IP, then per credential; 429
// rate_limited with Retry-After and the JSON error body.
func TestControlPlaneHTTP(t *testing.T) {
	t.Parallel()
	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		sys := startWith(t, func(cfg *gatewayd.Config) {
			cfg.Limits.ControlIP = limits.Rate{PerSecond: 0.1, Burst: 3}
		})
		for i := 0; i < 3; i++ {
			sys.CreateAccount(t, 0, fmt.Sprintf("ns%d", i))
		}
		resp := gwtest.DoResponse(t, http.MethodPost, sys.URL(0)+"/v1/accounts", nil, `{"namespace":"one-more"}`)
		wantError(t, resp, http.StatusTooManyRequests, "rate_limited")
		wantRetryAfter(t, resp)
		// Operational endpoints are not the control plane.
		if st, _ := gwtest.Do(t, http.MethodGet, sys.URL(0)+"/healthz", nil, ""); st != http.StatusOK {
			t.Fatalf("healthz %d", st)
		}
	})
	t.Run("per credential", func(t *testing.T) {
		t.Parallel()
		sys := startWith(t, func(cfg *gatewayd.Config) {
			cfg.Limits.ControlIP = off
			cfg.Limits.ControlCredential = limits.Rate{PerSecond: 0.1, Burst: 3}
		})
		_, credA := sys.CreateAccount(t, 0, "alice")
		_, credB := sys.CreateAccount(t, 0, "bob")
		for i := 0; i < 3; i++ {
			sys.Mint(t, 0, credA, "alice", "")
		}
		resp := gwtest.DoResponse(t, http.MethodPost, sys.URL(0)+"/v1/alice/conversations", gwtest.Bearer(credA), "")
		wantError(t, resp, http.StatusTooManyRequests, "rate_limited")
		wantRetryAfter(t, resp)
		sys.Mint(t, 0, credB, "bob", "")
	})
}

// Behind a trusted proxy (here the test itself, on 127.0.0.1), each client
// named in X-Forwarded-For has its own control-plane budget; a peer that
// is not a trusted proxy cannot choose its budget with the header.
func TestControlPlaneBehindProxy(t *testing.T) {
	t.Parallel()
	createAs := func(t *testing.T, sys *gwtest.System, xff, ns string) *gwtest.Response {
		return gwtest.DoResponse(t, http.MethodPost, sys.URL(0)+"/v1/accounts", map[string]string{"X-Forwarded-For": xff},
			fmt.Sprintf(`{"namespace":%q}`, ns))
	}
	t.Run("trusted", func(t *testing.T) {
		t.Parallel()
		sys := startWith(t, func(cfg *gatewayd.Config) {
			cfg.Limits.ControlIP = limits.Rate{PerSecond: 0.1, Burst: 2}
			cfg.Limits.TrustedProxies = loopbackProxies(t)
		})
		for i := 0; i < 2; i++ {
			if r := createAs(t, sys, "198.51.100.1", fmt.Sprintf("a%d", i)); r.Status != http.StatusCreated {
				t.Fatalf("client A request %d: %d %s", i, r.Status, r.Body)
			}
		}
		r := createAs(t, sys, "198.51.100.1", "a9")
		wantError(t, r, http.StatusTooManyRequests, "rate_limited")
		// A forged entry left of what the proxy appended changes nothing.
		wantError(t, createAs(t, sys, "203.0.113.7, 198.51.100.1", "a10"), http.StatusTooManyRequests, "rate_limited")
		// Another client behind the same proxy has a budget of its own.
		if r := createAs(t, sys, "198.51.100.2", "b0"); r.Status != http.StatusCreated {
			t.Fatalf("client B: %d %s", r.Status, r.Body)
		}
		// gRPC: X-Forwarded-For arrives as metadata.
		api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
		for i := 0; i < 2; i++ {
			if _, err := api.accounts.CreateAccount(callCtx(t, "x-forwarded-for", "198.51.100.3"), &amsv1.CreateAccountRequest{Namespace: fmt.Sprintf("c%d", i)}); err != nil {
				t.Fatalf("gRPC client C request %d: %v", i, err)
			}
		}
		_, err := api.accounts.CreateAccount(callCtx(t, "x-forwarded-for", "198.51.100.3"), &amsv1.CreateAccountRequest{Namespace: "c9"})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("gRPC client C over its budget: %v, want RESOURCE_EXHAUSTED", err)
		}
		if _, err := api.accounts.CreateAccount(callCtx(t, "x-forwarded-for", "198.51.100.4"), &amsv1.CreateAccountRequest{Namespace: "d0"}); err != nil {
			t.Fatalf("gRPC client D: %v", err)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		t.Parallel()
		sys := startWith(t, func(cfg *gatewayd.Config) {
			cfg.Limits.ControlIP = limits.Rate{PerSecond: 0.1, Burst: 2}
		})
		for i := 0; i < 2; i++ {
			if r := createAs(t, sys, fmt.Sprintf("198.51.100.%d", 10+i), fmt.Sprintf("e%d", i)); r.Status != http.StatusCreated {
				t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
			}
		}
		// The peer's own budget is spent, whatever the header says.
		wantError(t, createAs(t, sys, "198.51.100.99", "e9"), http.StatusTooManyRequests, "rate_limited")
	})
}

func loopbackProxies(t *testing.T) []netip.Prefix {
	t.Helper()
	p, err := limits.ParseProxies("127.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Control plane over gRPC: RESOURCE_EXHAUSTED, ams-error rate_limited,
// ErrorInfo rate_limited and a RetryInfo.
func TestControlPlaneGRPC(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.ControlIP = limits.Rate{PerSecond: 0.1, Burst: 2}
	})
	api := dialGRPC(t, sys.Gateways[0].GRPCAddr())
	for i := 0; i < 2; i++ {
		if _, err := api.accounts.CreateAccount(callCtx(t), &amsv1.CreateAccountRequest{Namespace: fmt.Sprintf("g%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var tr metadata.MD
	_, err := api.accounts.CreateAccount(callCtx(t), &amsv1.CreateAccountRequest{Namespace: "g9"}, grpc.Trailer(&tr))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("status %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := tr.Get("ams-error"); len(got) != 1 || got[0] != "rate_limited" {
		t.Fatalf("ams-error %v", got)
	}
	var reason string
	var retry bool
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration() > 0
		}
	}
	if reason != "rate_limited" || !retry {
		t.Fatalf("details: reason %q, retry info %v", reason, retry)
	}
}

// mcp is a raw Streamable HTTP MCP client of one session.
type mcp struct {
	t    testing.TB
	url  string
	cred string
	sid  string
	id   int
}

func mcpHeaders(m *mcp) map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	if m.cred != "" {
		h["Authorization"] = "Bearer " + m.cred
	}
	if m.sid != "" {
		h["Mcp-Session-Id"] = m.sid
	}
	return h
}

// newMCP initializes a session on the gateway at base.
func newMCP(t testing.TB, base, cred string) *mcp {
	t.Helper()
	m := &mcp{t: t, url: base + "/mcp", cred: cred}
	resp := m.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"abuse","version":"1"}}}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.Status, resp.Body)
	}
	m.sid = resp.Header.Get("Mcp-Session-Id")
	if r := m.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.Status != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", r.Status, r.Body)
	}
	return m
}

func (m *mcp) post(body string) *gwtest.Response {
	m.t.Helper()
	return gwtest.DoResponse(m.t, http.MethodPost, m.url, mcpHeaders(m), body)
}

// tool calls a tool and returns its result's structured content and
// isError.
func (m *mcp) tool(name string, args any) (map[string]any, bool) {
	m.t.Helper()
	m.id++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.id + 1, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	resp := m.post(string(b))
	if resp.Status != http.StatusOK {
		m.t.Fatalf("%s: %d %s", name, resp.Status, resp.Body)
	}
	for _, line := range strings.Split(string(resp.Body), "\n") {
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var msg struct {
			ID     any `json:"id"`
			Result struct {
				Structured map[string]any `json:"structuredContent"`
				IsError    bool           `json:"isError"`
			} `json:"result"`
		}
		if json.Unmarshal([]byte(d), &msg) == nil && msg.ID != nil {
			return msg.Result.Structured, msg.Result.IsError
		}
	}
	m.t.Fatalf("%s: no result in %s", name, resp.Body)
	return nil, false
}

// MCP: a session's requests over its frame limit get 429 with
// Retry-After and the JSON-RPC error rate_limited; initialize counts
// against the client's control-plane budget.
func TestMCPRequests(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.ConnFrames = limits.Rate{PerSecond: 0.1, Burst: 3}
		cfg.Limits.ControlIP = limits.Rate{PerSecond: 0.1, Burst: 3}
	})
	m := newMCP(t, sys.URL(0), "") // initialize (IP budget 1) + initialized (session budget 1)
	var resp *gwtest.Response
	for i := 0; i < 3; i++ {
		resp = m.post(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	}
	if resp.Status != http.StatusTooManyRequests || !strings.Contains(string(resp.Body), `"rate_limited"`) {
		t.Fatalf("third tools/list: %d %s, want 429 rate_limited", resp.Status, resp.Body)
	}
	wantRetryAfter(t, resp)
	// A new session starts with a fresh budget, until initialize itself
	// is over the client's budget.
	newMCP(t, sys.URL(0), "")
	newMCP(t, sys.URL(0), "")
	over := &mcp{t: t, url: sys.URL(0) + "/mcp"}
	resp = over.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"abuse","version":"1"}}}`)
	if resp.Status != http.StatusTooManyRequests {
		t.Fatalf("fourth initialize: %d %s, want 429", resp.Status, resp.Body)
	}
	wantRetryAfter(t, resp)
}

// MCP: ams_send over the account's token budget (shared with HTTP emit)
// returns the rate_limited domain error; the session stays usable.
func TestMCPAccountTokens(t *testing.T) {
	t.Parallel()
	sys := startWith(t, func(cfg *gatewayd.Config) {
		cfg.Limits.AccountTokens = limits.Rate{PerSecond: 0.1, Burst: 256}
	})
	r := newRoom(t, sys, "alice")
	m := newMCP(t, sys.URL(0), r.cred)
	if res, isErr := m.tool("ams_join", map[string]any{"magic_link": r.link, "stream_name": "m"}); isErr {
		t.Fatalf("join: %v", res)
	}
	if res, isErr := m.tool("ams_send", map[string]any{"data": "hello"}); isErr {
		t.Fatalf("send: %v", res)
	}
	tokens := make([]string, 255)
	for i := range tokens {
		tokens[i] = "t"
	}
	body, _ := json.Marshal(map[string]any{"tokens": tokens})
	if resp := gwtest.DoResponse(t, http.MethodPost, emitURL(r.link, "m"), gwtest.Bearer(r.cred), string(body)); resp.Status != http.StatusAccepted {
		t.Fatalf("emit: %d %s", resp.Status, resp.Body)
	}
	res, isErr := m.tool("ams_send", map[string]any{"data": "over"})
	if !isErr || res["error"] != "rate_limited" {
		t.Fatalf("send over budget: %v %v, want rate_limited", isErr, res)
	}
	if res, isErr := m.tool("ams_recv", map[string]any{"wait_ms": 0}); isErr {
		t.Fatalf("recv after: %v", res)
	}
}

// With the default limits nothing in ordinary use is refused: a burst of
// tokens far beyond any agent's pace passes.
func TestDefaultsAreGenerous(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	r := newRoom(t, sys, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	reader := dialWS(t, r.link, dialOpts{credential: credB, streamName: "reader"})
	reader.expect("joined")
	w := dialWS(t, r.link, dialOpts{credential: r.cred, streamName: "w"})
	w.expect("joined")
	reader.expect("stream_joined")
	// 5,000 tokens in rounds of 500 (a reader's queue holds 1024 frames),
	// sent as fast as the socket takes them.
	const n, round = 5000, 500
	for sent := 0; sent < n; sent += round {
		for i := 0; i < round; i++ {
			w.write(`{"type":"token","data":"x"}`)
		}
		for i := 0; i < round; i++ {
			select {
			case m := <-reader.msgs:
				if m["type"] != "token" {
					t.Fatalf("frame %v", m)
				}
			case <-reader.done:
				t.Fatalf("reader closed: %v", reader.err)
			case <-time.After(wait):
				t.Fatalf("%d of %d tokens", sent+i, n)
			}
		}
	}
	select {
	case <-w.done:
		t.Fatalf("writer closed: %v", w.err)
	default:
	}
}
