package streame2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// client is a test WebSocket participant.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	resp *http.Response
	msgs chan msg
	done chan struct{}
	// closeCode and closeReason are set once the server closed.
	closeErr error
	// arrays counts the messages that were arrays of frames (batching).
	arrays atomic.Int64
}

type msg struct {
	raw []byte
	m   map[string]any
}

type dialOpts struct {
	credential    string
	streamName    string
	metadata      string // JSON object text
	selfSubscribe bool
	subscribe     *string
	resume        string
	batch         bool
	observe       bool
	peerIdentity  string // JSON object text
	header        http.Header
	query         string
	protocols     []string
	// noRead leaves the connection unread until startReading.
	noRead bool
	// httpClient, if set, makes the handshake (a custom dialer, say).
	httpClient *http.Client
}

// connectURL turns a magic link into its /connect URL.
func connectURL(link string) string {
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	return u[:i] + "/connect" + u[i:]
}

func dial(t testing.TB, link string, o dialOpts) *client {
	t.Helper()
	return dialURL(t, connectURL(link)+o.query, o)
}

// dialURL connects to a full ws:// connect URL (query included) with the
// inputs of o but its query.
func dialURL(t testing.TB, u string, o dialOpts) *client {
	t.Helper()
	c, err := tryDialURL(t, u, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// tryDialURL is dialURL returning the dial's error, for a goroutine other
// than the test's.
func tryDialURL(t testing.TB, u string, o dialOpts) (*client, error) {
	h := http.Header{}
	for k, v := range o.header {
		h[k] = v
	}
	if o.credential != "" {
		h.Set("Authorization", "Bearer "+o.credential)
	}
	if o.streamName != "" {
		h.Set("X-AMS-Stream-Name", o.streamName)
	}
	if o.metadata != "" {
		h.Set("X-AMS-Stream-Metadata", base64.StdEncoding.EncodeToString([]byte(o.metadata)))
	}
	if o.peerIdentity != "" {
		h.Set("X-AMS-Peer-Identity", base64.StdEncoding.EncodeToString([]byte(o.peerIdentity)))
	}
	if o.selfSubscribe {
		h.Set("X-AMS-Self-Subscribe", "true")
	}
	if o.subscribe != nil {
		h.Set("X-AMS-Subscribe-Streams", *o.subscribe)
	}
	if o.resume != "" {
		h.Set("X-AMS-Resume", o.resume)
	}
	if o.batch {
		h.Set("X-AMS-Batch", "1")
	}
	if o.observe {
		h.Set("X-AMS-Observe", "true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, Subprotocols: o.protocols, HTTPClient: o.httpClient})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(4 << 20)
	c := &client{t: t, ws: ws, resp: resp, msgs: make(chan msg, 1<<16), done: make(chan struct{})}
	if !o.noRead {
		go c.readLoop()
	}
	t.Cleanup(func() {
		// A close handshake first (bounded), so that the gateway sees a
		// leave at teardown rather than a lost connection.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = ws.Close(websocket.StatusNormalClosure, "")
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		_ = ws.CloseNow()
	})
	return c, nil
}

// startReading starts reading a connection dialed with noRead.
func (c *client) startReading() { go c.readLoop() }

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.closeErr = err
			return
		}
		if len(b) > 0 && b[0] == '[' {
			c.arrays.Add(1)
			var arr []json.RawMessage
			if err := json.Unmarshal(b, &arr); err != nil {
				c.closeErr = err
				return
			}
			for _, e := range arr {
				var m map[string]any
				_ = json.Unmarshal(e, &m)
				c.msgs <- msg{raw: e, m: m}
			}
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.closeErr = err
			return
		}
		c.msgs <- msg{raw: b, m: m}
	}
}

// next returns the next frame, failing after the timeout.
func (c *client) next(timeout time.Duration) map[string]any {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m.m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m.m
		default:
		}
		c.t.Fatalf("connection ended while waiting for a frame: %v", c.closeErr)
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %s", timeout)
	}
	return nil
}

// nextRaw is next, returning the frame's bytes.
func (c *client) nextRaw(timeout time.Duration) []byte {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m.raw
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %s", timeout)
	}
	return nil
}

// expect returns the next frame, which must have the given type.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next(10 * time.Second)
	if m["type"] != typ {
		c.t.Fatalf("got frame %v, want type %s", m, typ)
	}
	return m
}

// until skips frames until one of the given type arrives.
func (c *client) until(typ string, timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("no %s frame within %s", typ, timeout)
		}
		m := c.next(left)
		if m["type"] == typ {
			return m
		}
	}
}

// quiet asserts that no frame arrives for d (used only to show an absence
// after a later frame proved delivery is flowing).
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected frame %s", m.raw)
	case <-time.After(d):
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) token(data string) {
	c.t.Helper()
	c.send(map[string]any{"type": "token", "data": data})
}

// closed waits for the server's close and returns its code and reason.
func (c *client) closed(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	deadline := time.After(timeout)
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
			c.t.Fatalf("connection not closed within %s", timeout)
		}
	}
}

func (c *client) close() {
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
}
