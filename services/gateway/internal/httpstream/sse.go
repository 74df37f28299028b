// Package httpstream is the stream plane for clients without WebSockets
// (spec 5.3): the SSE read path, which owns a stream like a WebSocket and
// resumes with Last-Event-ID, and the HTTP emit and set-metadata paths,
// which write to the caller's live stream on whichever gateway holds it.
package httpstream

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Timings of spec 5.3.
const (
	KeepAlive    = 15 * time.Second
	writeTimeout = 30 * time.Second
)

// SSE serves GET …/connect with Accept: text/event-stream.
type SSE struct {
	Log      *slog.Logger
	Admitter *wsconn.Admitter
	Hub      *hub.Hub
	// KeepAlive overrides the 15 s keepalive (tests).
	KeepAlive time.Duration
}

// streamError maps a connect failure before streaming to its HTTP error
// (spec 5.3): the 4.2 reason with the status of its close code, and
// missing_credential when no credential was given at all.
func streamError(err error, raw *connreq.Raw, observe bool) error {
	we, ok := wireerr.As(err)
	if !ok || we.Code.Close == 0 {
		return wireerr.New(wireerr.Internal, "internal error")
	}
	if we.Code.Name == wireerr.InvalidCredential.Name && !raw.HasCredential && !observe {
		return wireerr.New(wireerr.MissingCredential, "a Bearer credential is required")
	}
	code := we.Code.WithHTTP(wireerr.CloseToHTTP(we.Code.Close))
	return wireerr.New(code, we.Message)
}

func (h *SSE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := httpapi.PathParams(r)
	raw := connreq.FromHTTP(r)
	if lei := r.Header.Get("Last-Event-ID"); lei != "" {
		raw.Resume = &lei // precedence: Last-Event-ID, X-AMS-Resume, resume
	}
	ctx := r.Context()
	jr, _, err := h.Admitter.Admit(ctx, p.NS, p.Alias, &raw, "sse")
	var s *sink
	var conn *hub.Conn
	if err == nil {
		s = &sink{wake: make(chan struct{}, 1), closed: make(chan struct{})}
		conn, err = h.Hub.Join(ctx, jr, s)
	}
	if err != nil {
		httpapi.WriteError(w, h.Log, streamError(err, &raw, connreq.Flag(raw.Observe)))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	h.stream(ctx, w, rc, conn, s)
}

// sink is the hub's view of an SSE response.
type sink struct {
	wake   chan struct{}
	mu     sync.Mutex
	code   int
	reason string
	closed chan struct{}
	once   sync.Once
}

func (s *sink) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) Close(code int, reason string) {
	s.once.Do(func() {
		s.mu.Lock()
		s.code, s.reason = code, reason
		s.mu.Unlock()
		close(s.closed)
	})
}

// stream writes events until the connection ends.
func (h *SSE) stream(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, conn *hub.Conn, s *sink) {
	keep := h.KeepAlive
	if keep == 0 {
		keep = KeepAlive
	}
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte(":ok\n\n")); err != nil {
		conn.Close(1006, true)
		return
	}
	idle := time.NewTimer(keep)
	defer idle.Stop()
	var items []hub.Item
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			// The client went away: there is no close handshake on SSE,
			// so the stream gets its grace (spec 4.5).
			conn.Close(1006, true)
			return
		case <-idle.C:
			if err := write([]byte(":keepalive\n\n")); err != nil {
				conn.Close(1006, true)
				return
			}
			idle.Reset(keep)
			continue
		case <-s.wake:
		case <-s.closed:
		}
		for {
			var more bool
			items, more = conn.Take(items[:0])
			if len(items) == 0 {
				break
			}
			cursor := conn.Cursor()
			buf = buf[:0]
			for i := range items {
				buf = appendEvent(buf, &items[i], cursor)
			}
			if err := write(buf); err != nil {
				conn.Close(1006, true)
				return
			}
			conn.Delivered(items)
			clear(items)
			if !more {
				break
			}
		}
		idle.Reset(keep)
		select {
		case <-s.closed:
			s.mu.Lock()
			code, reason := s.code, s.reason
			s.mu.Unlock()
			o := jsonw.Begin(nil)
			o.Int("code", int64(code))
			o.Str("reason", reason)
			if code == wireerr.SlowConsumer.Close {
				o.Str("cursor", string(frame.AppendCursorValue(nil, conn.Cursor())))
			}
			_ = write(append(append([]byte("event: close\ndata: "), o.End()...), '\n', '\n'))
			return
		default:
		}
	}
}

// appendEvent appends one SSE event. Token and stream_metadata events
// carry the cursor after them as their id; a frame's bytes are written
// unchanged (a raw newline inside metadata becomes a second data line,
// which the client joins back).
func appendEvent(b []byte, it *hub.Item, cursor map[string]uint64) []byte {
	b = append(b, "event: "...)
	b = append(b, frame.TypeOf(it.Frame)...)
	b = append(b, '\n')
	if id := it.StreamID(); id != "" {
		cursor[id] = max(cursor[id], it.Seq)
		b = append(b, "id: "...)
		b = frame.AppendCursorValue(b, cursor)
		b = append(b, '\n')
	}
	f := it.Frame
	for {
		i := bytes.IndexByte(f, '\n')
		b = append(b, "data: "...)
		if i < 0 {
			b = append(b, f...)
			break
		}
		b = append(b, f[:i]...)
		b = append(b, '\n')
		f = f[i+1:]
	}
	return append(b, '\n', '\n')
}
