package grpce2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The WebSocket test participant, after services/gateway/streame2e.

// wsClient is a test WebSocket participant.
type wsClient struct {
	t        testing.TB
	ws       *websocket.Conn
	msgs     chan wsMsg
	done     chan struct{}
	closeErr error
}

type wsMsg struct {
	raw []byte
	m   map[string]any
}

type wsOpts struct {
	credential    string
	streamName    string
	metadata      string // JSON object text
	selfSubscribe bool
	resume        string
}

// wsConnectURL turns a magic link into its ws:// /connect URL.
func wsConnectURL(link string) string {
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	return u[:i] + "/connect" + u[i:]
}

func wsDial(t testing.TB, link string, o wsOpts) *wsClient {
	t.Helper()
	h := http.Header{}
	if o.credential != "" {
		h.Set("Authorization", "Bearer "+o.credential)
	}
	if o.streamName != "" {
		h.Set("X-AMS-Stream-Name", o.streamName)
	}
	if o.metadata != "" {
		h.Set("X-AMS-Stream-Metadata", base64.StdEncoding.EncodeToString([]byte(o.metadata)))
	}
	if o.selfSubscribe {
		h.Set("X-AMS-Self-Subscribe", "true")
	}
	if o.resume != "" {
		h.Set("X-AMS-Resume", o.resume)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsConnectURL(link), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	ws.SetReadLimit(4 << 20)
	c := &wsClient{t: t, ws: ws, msgs: make(chan wsMsg, 1<<12), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.closeErr = err
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.closeErr = err
			return
		}
		c.msgs <- wsMsg{raw: b, m: m}
	}
}

// next returns the next frame, failing after wait or if the connection
// ends first.
func (c *wsClient) next() wsMsg {
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
		c.t.Fatalf("websocket ended while waiting for a frame: %v", c.closeErr)
	case <-time.After(wait):
		c.t.Fatalf("no websocket frame within %s", wait)
	}
	return wsMsg{}
}

// expect returns the next frame, which must have the given type.
func (c *wsClient) expect(typ string) wsMsg {
	c.t.Helper()
	m := c.next()
	if m.m["type"] != typ {
		c.t.Fatalf("websocket got %s, want type %s", m.raw, typ)
	}
	return m
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("websocket write: %v", err)
	}
}

func (c *wsClient) token(data string) {
	c.t.Helper()
	c.send(map[string]any{"type": "token", "data": data})
}

// sync sends a ping and returns every frame before its pong.
func (c *wsClient) sync() []wsMsg {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	var got []wsMsg
	for {
		m := c.next()
		if m.m["type"] == "pong" {
			return got
		}
		got = append(got, m)
	}
}

// closed waits for the server's close and returns its code and reason.
func (c *wsClient) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case <-c.msgs:
			continue
		case <-c.done:
			var ce websocket.CloseError
			if errors.As(c.closeErr, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, c.closeErr.Error()
		case <-deadline:
			c.t.Fatalf("websocket not closed within %s", wait)
		}
	}
}

func (c *wsClient) close() { _ = c.ws.Close(websocket.StatusNormalClosure, "") }
