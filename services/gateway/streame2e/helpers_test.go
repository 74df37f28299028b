package streame2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// Formats of spec 2.1 and of timestamps.
var (
	streamIDRe  = regexp.MustCompile(`^str_[0-9a-f]{26}$`)
	timestampRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)
	defaultRe   = regexp.MustCompile(`^stream-[A-Za-z0-9_-]{8}$`)
)

// wait is how long a test waits for a frame or a close that must come.
const wait = 10 * time.Second

// room is a conversation minted for a test.
type room struct {
	sys            *gwtest.System
	ns, alias      string
	link           string // magic link through gateway 0
	convID, linkID string
}

// newRoom mints conversation alias in ns (owned by the account of cred)
// through gateway 0.
func newRoom(t testing.TB, sys *gwtest.System, cred, ns, alias string) *room {
	t.Helper()
	return roomOf(sys, ns, sys.Mint(t, 0, cred, ns, `{"alias":"`+alias+`"}`))
}

// roomOf is the room of a mint answer.
func roomOf(sys *gwtest.System, ns string, m map[string]any) *room {
	return &room{
		sys: sys, ns: ns, alias: m["alias"].(string),
		link:   m["magic_link"].(string),
		convID: m["conversation_id"].(string),
		linkID: m["link_id"].(string),
	}
}

// linkAt is the room's magic link pointed at gateway i.
func (r *room) linkAt(i int) string {
	return r.sys.URL(i) + strings.TrimPrefix(r.link, r.sys.URL(0))
}

// token is the room's link token t.
func (r *room) token(t testing.TB) string { return gwtest.LinkToken(t, r.link) }

// wsBase is the ws:// form of gateway i's base URL.
func wsBase(sys *gwtest.System, i int) string {
	return strings.Replace(sys.URL(i), "http://", "ws://", 1)
}

// connectURL builds the connect URL of (ns, alias) on gateway i with a raw
// query ("" for none).
func connectURLOf(sys *gwtest.System, i int, ns, alias, query string) string {
	u := wsBase(sys, i) + "/" + ns + "/conversations/" + alias + "/connect"
	if query != "" {
		u += "?" + query
	}
	return u
}

// join dials the room on gateway i and returns the client with its joined
// frame, which must come first.
func (r *room) join(t testing.TB, i int, o dialOpts) (*client, map[string]any) {
	t.Helper()
	c := dial(t, r.linkAt(i), o)
	return c, c.expect("joined")
}

// q escapes a query value.
func q(s string) string { return url.QueryEscape(s) }

// nextMsg returns the next frame with its bytes, failing after timeout or
// if the connection ends first.
func (c *client) nextMsg(timeout time.Duration) msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("connection ended while waiting for a frame: %v", c.closeErr)
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %s", timeout)
	}
	return msg{}
}

// expectMsg is expect returning the frame's bytes too.
func (c *client) expectMsg(typ string) msg {
	c.t.Helper()
	m := c.nextMsg(wait)
	if m.m["type"] != typ {
		c.t.Fatalf("got frame %s, want type %s", m.raw, typ)
	}
	return m
}

// closeCode waits for the server's close, for at most timeout without a
// frame; every frame still unread is returned, in order.
func (c *client) closeCode(timeout time.Duration) (websocket.StatusCode, string, []msg) {
	c.t.Helper()
	var got []msg
	idle := time.NewTimer(timeout)
	defer idle.Stop()
	for {
		select {
		case m := <-c.msgs:
			got = append(got, m)
			idle.Reset(timeout)
			continue
		case <-c.done:
		case <-idle.C:
			c.t.Fatalf("connection not closed within %s of the last frame", timeout)
		}
		for {
			select {
			case m := <-c.msgs:
				got = append(got, m)
				continue
			default:
			}
			break
		}
		var ce websocket.CloseError
		if errors.As(c.closeErr, &ce) {
			return ce.Code, ce.Reason, got
		}
		return -1, c.closeErr.Error(), got
	}
}

// wantClose waits for the server's close with exactly code and reason; no
// frame may arrive before it.
func (c *client) wantClose(code websocket.StatusCode, reason string) {
	c.t.Helper()
	gotCode, gotReason, frames := c.closeCode(wait)
	if gotCode != code || gotReason != reason {
		c.t.Errorf("closed %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
	for _, f := range frames {
		c.t.Errorf("unexpected frame before the close: %.200s", f.raw)
	}
}

// wantCloseAfter is wantClose that allows (and returns) frames first.
func (c *client) wantCloseAfter(code websocket.StatusCode, reason string) []msg {
	c.t.Helper()
	gotCode, gotReason, frames := c.closeCode(wait)
	if gotCode != code || gotReason != reason {
		c.t.Errorf("closed %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
	return frames
}

// refused dials u with o and expects the connect to end with code and
// reason right after the upgrade, with no frame.
func refused(t testing.TB, u string, o dialOpts, code websocket.StatusCode, reason string) {
	t.Helper()
	dialURL(t, u, o).wantClose(code, reason)
}

// keysOf returns the top-level keys of a JSON object in order.
func keysOf(t testing.TB, raw []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %.300s", raw)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("decode %.300s: %v", raw, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatalf("decode %.300s: %v", raw, err)
		}
	}
	return keys
}

// wantKeys checks a frame has exactly these keys in this order.
func wantKeys(t testing.TB, raw []byte, want ...string) {
	t.Helper()
	if got := keysOf(t, raw); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v\nframe: %.400s", got, want, raw)
	}
}

// member returns the exact bytes of a top-level member of a JSON object.
func member(t testing.TB, raw []byte, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %.300s: %v", raw, err)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("no %q in %.300s", name, raw)
	}
	return string(v)
}

// num reads a JSON number member as an int.
func num(t testing.TB, m map[string]any, name string) int {
	t.Helper()
	f, ok := m[name].(float64)
	if !ok {
		t.Fatalf("%s = %v (%T), want a number in %v", name, m[name], m[name], m)
	}
	return int(f)
}

// peersOf returns a joined frame's peers.
func peersOf(t testing.TB, joined map[string]any) []map[string]any {
	t.Helper()
	ps, ok := joined["peers"].([]any)
	if !ok {
		t.Fatalf("peers = %v", joined["peers"])
	}
	out := make([]map[string]any, len(ps))
	for i, p := range ps {
		out[i] = p.(map[string]any)
	}
	return out
}

// peerNames returns the stream names of a joined frame's peers, in order.
func peerNames(t testing.TB, joined map[string]any) []string {
	t.Helper()
	var names []string
	for _, p := range peersOf(t, joined) {
		names = append(names, p["stream_name"].(string))
	}
	return names
}

// wantToken reads the next frame, which must be a token of stream name
// with data and seq.
func (c *client) wantToken(name, data string, seq int) map[string]any {
	c.t.Helper()
	m := c.nextMsg(wait)
	if m.m["type"] != "token" || m.m["stream_name"] != name || m.m["data"] != data || m.m["seq"] != float64(seq) {
		c.t.Fatalf("got %.300s, want token %s/%q seq %d", m.raw, name, data, seq)
	}
	return m.m
}

// ping sends a ping and waits for its pong: every frame the server
// queued for this connection before the ping was written is returned.
func (c *client) sync() []msg {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	var got []msg
	for {
		m := c.nextMsg(wait)
		if m.m["type"] == "pong" {
			return got
		}
		got = append(got, m)
	}
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// joinEventually dials u until it is joined rather than refused, for at
// most 5 s (a state change the server makes just after a close
// handshake), and returns the joined client.
func joinEventually(t testing.TB, u string, o dialOpts) *client {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialURL(t, u, o)
		select {
		case m := <-c.msgs:
			if m.m["type"] != "joined" {
				t.Fatalf("first frame %s, want joined", m.raw)
			}
			return c
		case <-c.done:
			select {
			case m := <-c.msgs:
				t.Fatalf("connection ended after %s", m.raw)
			default:
			}
		case <-time.After(wait):
			t.Fatalf("neither joined nor closed within %s", wait)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after 5 s: %v", c.closeErr)
		}
	}
}

// nextOf returns the next frame about stream name (by stream_name),
// skipping frames of other streams, for tests about one stream that must
// not depend on what other streams do meanwhile.
func (c *client) nextOf(name string) msg {
	c.t.Helper()
	for {
		m := c.nextMsg(wait)
		if n, ok := m.m["stream_name"]; !ok || n == name {
			return m
		}
	}
}

// expectOf is nextOf that must have the given type.
func (c *client) expectOf(name, typ string) map[string]any {
	c.t.Helper()
	m := c.nextOf(name)
	if m.m["type"] != typ {
		c.t.Fatalf("got %s, want %s of %s", m.raw, typ, name)
	}
	return m.m
}

// wantTokenOf is wantToken skipping frames of other streams.
func (c *client) wantTokenOf(name, data string, seq int) map[string]any {
	c.t.Helper()
	m := c.nextOf(name)
	if m.m["type"] != "token" || m.m["data"] != data || m.m["seq"] != float64(seq) {
		c.t.Fatalf("got %.300s, want token %s/%q seq %d", m.raw, name, data, seq)
	}
	return m.m
}
