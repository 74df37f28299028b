package mcpe2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

var sessionIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

func mcpHeaders(extra ...string) map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func initVersion(v string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + v + `","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
}

// expectRPCError checks a transport error: status and the exact body shape
// {"jsonrpc":"2.0","error":{"code","message"},"id":null}.
func expectRPCError(t *testing.T, r *gwtest.Response, status, code int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if diff := cmp.Diff([]string{"jsonrpc", "error", "id"}, gwtest.Keys(t, r.Body)); diff != "" {
		t.Fatalf("error body keys (-want +got):\n%s\n%s", diff, r.Body)
	}
	var b struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		ID any `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.JSONRPC != "2.0" || b.Error.Code != code || b.ID != nil || b.Error.Message == "" {
		t.Fatalf("error body %s, want code %d", r.Body, code)
	}
}

// expectHTTPError checks an `{"error","message"}` answer.
func expectHTTPError(t *testing.T, r *gwtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if m := r.JSON(t); m["error"] != code {
		t.Fatalf("error %v, want %s", m["error"], code)
	}
}

// sseMessages decodes the `event: message` data of an SSE body.
func sseMessages(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, decode(t, []byte(d)))
		}
	}
	return out
}

func rawInit(t *testing.T, url string, h map[string]string, body string) (string, map[string]any) {
	t.Helper()
	r := gwtest.DoResponse(t, "POST", url, h, body)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("initialize: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	msgs := sseMessages(t, r.Body)
	if len(msgs) != 1 {
		t.Fatalf("initialize: %d messages: %s", len(msgs), r.Body)
	}
	return r.Header.Get("Mcp-Session-Id"), msgs[0]["result"].(map[string]any)
}

func TestMCPTransportChecks_C72(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, c *gatewayd.Config) { c.SSEKeepAlive = 50 * time.Millisecond }})
	u := sys.URL(0) + "/mcp"

	sid, res := rawInit(t, u, mcpHeaders(), initBody)
	if !sessionIDRe.MatchString(sid) {
		t.Fatalf("session id %q does not match %s", sid, sessionIDRe)
	}
	if info := res["serverInfo"].(map[string]any); info["name"] != "ams-mcp" {
		t.Fatalf("serverInfo %v", info)
	}
	if res["protocolVersion"] != "2025-06-18" {
		t.Fatalf("protocolVersion %v, want the requested 2025-06-18", res["protocolVersion"])
	}
	caps := res["capabilities"].(map[string]any)
	if caps["tools"] == nil || caps["resources"] == nil || caps["prompts"] != nil {
		t.Fatalf("capabilities %v: want tools and resources only", caps)
	}
	for _, v := range []string{"2024-11-05", "2025-03-26", "2025-11-25"} {
		if _, r := rawInit(t, u, mcpHeaders(), initVersion(v)); r["protocolVersion"] != v {
			t.Fatalf("protocolVersion %v, want %s", r["protocolVersion"], v)
		}
	}
	if _, r := rawInit(t, u, mcpHeaders(), initVersion("1999-01-01")); r["protocolVersion"] != "2025-11-25" {
		t.Fatalf("unknown version negotiated %v, want 2025-11-25", r["protocolVersion"])
	}

	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	cases := []struct {
		name         string
		h            map[string]string
		body         string
		status, code int
	}{
		{"accept without event-stream", mcpHeaders("Accept", "application/json"), initBody, 406, -32000},
		{"accept without json", mcpHeaders("Accept", "text/event-stream"), initBody, 406, -32000},
		{"non-JSON content type", mcpHeaders("Content-Type", "text/plain"), initBody, 415, -32000},
		{"body over 4 MiB", mcpHeaders(), `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 4<<20) + `"}}`, 413, -32000},
		{"bad JSON", mcpHeaders(), `{"jsonrpc":`, 400, -32700},
		{"not JSON-RPC", mcpHeaders(), `[1,2]`, 400, -32700},
		{"empty batch", mcpHeaders(), `[]`, 400, -32700},
		{"initialize with a session id", mcpHeaders("Mcp-Session-Id", sid), initBody, 400, -32600},
		{"initialize twice in a batch", mcpHeaders(), "[" + initBody + "," + strings.Replace(initBody, `"id":1`, `"id":2`, 1) + "]", 400, -32600},
		{"no session id", mcpHeaders(), list, 400, -32000},
		{"unknown session", mcpHeaders("Mcp-Session-Id", strings.Repeat("ab", 32)), list, 404, -32001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectRPCError(t, gwtest.DoResponse(t, "POST", u, c.h, c.body), c.status, c.code)
		})
	}

	// Only notifications: 202.
	r := gwtest.DoResponse(t, "POST", u, mcpHeaders("Mcp-Session-Id", sid), `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if r.Status != http.StatusAccepted {
		t.Fatalf("notification: %d %s", r.Status, r.Body)
	}
	// A request: 200 text/event-stream, one message event.
	r = gwtest.DoResponse(t, "POST", u, mcpHeaders("Mcp-Session-Id", sid), list)
	if r.Status != 200 || !strings.Contains(string(r.Body), "event: message\n") || len(sseMessages(t, r.Body)) != 1 {
		t.Fatalf("tools/list: %d %s", r.Status, r.Body)
	}

	// Push leg: :ok, then :keepalive when idle.
	t.Run("push leg", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("push leg: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || first != ":ok\n" {
			t.Fatalf("push leg starts %q (%v), want :ok", first, err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("no :keepalive: %v", err)
			}
			if line == ":keepalive\n" {
				break
			}
		}
	})
	expectRPCError(t, gwtest.DoResponse(t, "GET", u, map[string]string{"Accept": "text/event-stream"}, ""), 400, -32000)
	expectRPCError(t, gwtest.DoResponse(t, "GET", u, map[string]string{"Accept": "text/event-stream", "Mcp-Session-Id": strings.Repeat("cd", 32)}, ""), 404, -32001)

	// DELETE ends the session.
	if r := gwtest.DoResponse(t, "DELETE", u, map[string]string{"Mcp-Session-Id": sid}, ""); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	expectRPCError(t, gwtest.DoResponse(t, "POST", u, mcpHeaders("Mcp-Session-Id", sid), list), 404, -32001)
	expectRPCError(t, gwtest.DoResponse(t, "DELETE", u, map[string]string{"Mcp-Session-Id": sid}, ""), 404, -32001)
}

func TestMagicLinkRoute_C72(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room","metadata":{"instructions":"Be brief.","prompts":[{"name":"greet","description":"Say hello","messages":[{"role":"user","content":{"type":"text","text":"hello"}}]},{"description":"nameless"}]}}`)
	link := conv["magic_link"].(string)
	base := sys.URL(0) + "/acme/conversations/room"
	tok := gwtest.LinkToken(t, link)

	cases := []struct {
		name   string
		url    string
		h      map[string]string
		status int
		code   string
	}{
		{"content type", base + "?t=" + tok, mcpHeaders("Content-Type", "text/plain"), 415, "unsupported_media_type"},
		{"no token", base, mcpHeaders(), 400, "invalid_magic_link"},
		{"unknown alias before the token", sys.URL(0) + "/acme/conversations/nope?t=bad", mcpHeaders(), 404, "conversation_not_found"},
		{"bad token", base + "?t=bad", mcpHeaders(), 401, "invalid_magic_link"},
		{"invalid bearer", base + "?t=" + tok, mcpHeaders("Authorization", "Bearer ams_sk_"+strings.Repeat("A", 43)), 401, "invalid_credential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectHTTPError(t, gwtest.DoResponse(t, "POST", c.url, c.h, initBody), c.status, c.code)
		})
	}
	// The MCP checks follow the link checks.
	expectRPCError(t, gwtest.DoResponse(t, "POST", base+"?t="+tok, mcpHeaders("Accept", "application/json"), initBody), 406, -32000)
	// Other GETs: 404.
	expectHTTPError(t, gwtest.DoResponse(t, "GET", base+"?t="+tok, map[string]string{"Accept": "application/json"}, ""), 404, "not_found")

	sid, res := rawInit(t, base+"?t="+tok, mcpHeaders(), initBody)
	if !sessionIDRe.MatchString(sid) {
		t.Fatalf("session id %q", sid)
	}
	instr := res["instructions"].(string)
	want := "\nnamespace: acme\nalias: room\nconversation_id: " + conv["conversation_id"].(string) + "\nBe brief."
	if !strings.HasSuffix(instr, want) {
		t.Fatalf("instructions %q do not end with %q", instr, want)
	}
	if caps := res["capabilities"].(map[string]any); caps["prompts"] == nil {
		t.Fatalf("capabilities %v: want prompts", caps)
	}
	r := gwtest.DoResponse(t, "POST", base+"?t="+tok, mcpHeaders("Mcp-Session-Id", sid), `{"jsonrpc":"2.0","id":2,"method":"prompts/list"}`)
	msgs := sseMessages(t, r.Body)
	prompts := msgs[0]["result"].(map[string]any)["prompts"].([]any)
	if len(prompts) != 1 || prompts[0].(map[string]any)["name"] != "greet" || prompts[0].(map[string]any)["description"] != "Say hello" {
		t.Fatalf("prompts %v", prompts)
	}
	r = gwtest.DoResponse(t, "POST", base+"?t="+tok, mcpHeaders("Mcp-Session-Id", sid), `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet"}}`)
	got := sseMessages(t, r.Body)[0]["result"].(map[string]any)["messages"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["content"].(map[string]any)["text"] != "hello" {
		t.Fatalf("prompt messages %v", got)
	}
	// DELETE on the link: the link is not checked.
	if r := gwtest.DoResponse(t, "DELETE", base, map[string]string{"Mcp-Session-Id": sid}, ""); r.Status != 204 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
}

func TestToolsList_C73(t *testing.T) {
	t.Parallel()
	sys, _ := system(t, 1)
	c := connect(t, clientOpts{hosts: hosts(t, sys), noPush: true})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ams_create_conversation": `{"type":"object","properties":{"alias":{"type":"string"},"stream_name":{"type":"string"},"metadata":{"type":"object"},"stream_metadata":{"type":"object"},"link_expires_in":{"type":"integer"}}}`,
		"ams_join":                `{"type":"object","properties":{"magic_link":{"type":"string"},"stream_name":{"type":"string"},"stream_metadata":{"type":"object"},"self_subscribe":{"type":"boolean"},"peer_identity":{"type":"object","properties":{"kind":{"type":"string","enum":["agent","human"]},"model":{"type":"string"},"client":{"type":"string"}},"required":["kind"]},"subscribe_streams":{"type":"array","items":{"type":"string"}}}}`,
		"ams_send":                `{"type":"object","properties":{"data":{"type":"string"},"magic_link":{"type":"string"},"stream_name":{"type":"string"}},"required":["data"]}`,
		"ams_set_metadata":        `{"type":"object","properties":{"metadata":{"type":"object"},"magic_link":{"type":"string"},"stream_name":{"type":"string"}},"required":["metadata"]}`,
		"ams_leave":               `{"type":"object","properties":{}}`,
		"ams_recv":                `{"type":"object","properties":{"wait_ms":{"type":"integer","minimum":0,"maximum":25000},"max_wait_ms":{"type":"integer","minimum":0,"maximum":30000},"magic_link":{"type":"string"},"stream_name":{"type":"string"}}}`,
	}
	got := map[string]string{}
	for _, tool := range res.Tools {
		b, _ := json.Marshal(tool.InputSchema)
		got[tool.Name] = string(b)
	}
	if len(got) != 6 {
		t.Fatalf("%d tools: %v", len(got), got)
	}
	for name, schema := range want {
		if !jsonEqual([]byte(schema), []byte(got[name])) {
			t.Errorf("%s input schema:\n got %s\nwant %s", name, got[name], schema)
		}
	}
}
