package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connTransport wraps an SDK transport to hold its connection: the AMS
// notifications (custom methods the SDK has no typed API for) are written
// through it, framed by the SDK, and tool results get their explicit
// "isError":false (the SDK omits a false isError).
type connTransport struct {
	mcp.Transport
	conn *patchConn
}

func (t *connTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	t.conn = &patchConn{Connection: c, calls: map[jsonrpc.ID]struct{}{}}
	return t.conn, nil
}

// patchConn is the connection of a connTransport.
type patchConn struct {
	mcp.Connection
	mu    sync.Mutex
	calls map[jsonrpc.ID]struct{} // tools/call requests not answered yet
}

func (c *patchConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if req, ok := m.(*jsonrpc.Request); ok && req.IsCall() && req.Method == "tools/call" {
		c.mu.Lock()
		c.calls[req.ID] = struct{}{}
		c.mu.Unlock()
	}
	return m, err
}

func (c *patchConn) Write(ctx context.Context, m jsonrpc.Message) error {
	if resp, ok := m.(*jsonrpc.Response); ok {
		c.mu.Lock()
		_, call := c.calls[resp.ID]
		delete(c.calls, resp.ID)
		c.mu.Unlock()
		if call && resp.Error == nil {
			resp.Result = withIsError(resp.Result)
		}
	}
	return c.Connection.Write(ctx, m)
}

// Notify writes one notification.
func (c *patchConn) Notify(ctx context.Context, method string, params []byte) error {
	return c.Connection.Write(ctx, &jsonrpc.Request{Method: method, Params: json.RawMessage(params)})
}

// withIsError appends "isError":false to a tool result that lacks it.
func withIsError(res json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(res)
	if len(t) < 2 || t[len(t)-1] != '}' || bytes.Contains(t, []byte(`"isError":`)) {
		return res
	}
	out := make([]byte, 0, len(t)+16)
	out = append(out, t[:len(t)-1]...)
	if len(t) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"isError":false}`...)
	return out
}

// quietLogger passes the SDK's warnings and errors to the gateway log and
// drops its per-connection chatter (every HTTP request connects a session).
func quietLogger(log *slog.Logger) *slog.Logger {
	return slog.New(levelHandler{min: slog.LevelWarn, h: log.Handler()})
}

type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{l.min, l.h.WithAttrs(as)}
}
func (l levelHandler) WithGroup(g string) slog.Handler { return levelHandler{l.min, l.h.WithGroup(g)} }
