package benchkit

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// DialOptions are the inputs of one stream-plane WebSocket connect (spec
// 4.1).
type DialOptions struct {
	// URL is the ws:// connect URL, token query included.
	URL        string
	Credential string
	StreamName string
	// Subscribe, if not nil, is the read filter (an empty string: no
	// streams).
	Subscribe *string
	// Resume is the cursor header value ("" for none).
	Resume  string
	Batch   bool
	Observe bool
	// Metadata is the stream metadata JSON object text ("" for none).
	Metadata string
	// LocalIP, if set, is the source address (spread over 127.0.0.x to
	// avoid running out of ephemeral ports).
	LocalIP net.IP
	// Timeout bounds the TCP connect and the handshake (default 10 s).
	Timeout time.Duration
}

// CloseError is a close frame the server sent.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("closed %d %s", e.Code, e.Reason) }

// WSConn is a lean client WebSocket: reads reuse one buffer and answer
// pings; writes mask in place and may put many frames in one flush. Read
// from one goroutine; writes are safe from several.
type WSConn struct {
	nc net.Conn
	br *bufio.Reader

	wmu  sync.Mutex
	bw   *bufio.Writer
	hdr  [ws.MaxHeaderSize]byte
	ctrl []byte

	rbuf []byte
	// rest holds the frames that followed joined in its message (a
	// batching connection): ReadMessage returns them first.
	rest []byte
}

// DialWS connects and completes the WebSocket handshake. Admission errors
// arrive later, as a close frame in place of `joined`.
func DialWS(ctx context.Context, o DialOptions) (*WSConn, error) {
	h := http.Header{}
	if o.Credential != "" {
		h.Set("Authorization", "Bearer "+o.Credential)
	}
	if o.StreamName != "" {
		h.Set("X-AMS-Stream-Name", o.StreamName)
	}
	if o.Subscribe != nil {
		h["X-Ams-Subscribe-Streams"] = []string{*o.Subscribe}
	}
	if o.Resume != "" {
		h.Set("X-AMS-Resume", o.Resume)
	}
	if o.Batch {
		h.Set("X-AMS-Batch", "1")
	}
	if o.Observe {
		h.Set("X-AMS-Observe", "true")
	}
	if o.Metadata != "" {
		h.Set("X-AMS-Stream-Metadata", base64.StdEncoding.EncodeToString([]byte(o.Metadata)))
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	nd := net.Dialer{Timeout: timeout}
	if o.LocalIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	var status int
	d := ws.Dialer{
		Timeout: timeout,
		Header:  ws.HandshakeHeaderHTTP(h),
		NetDial: nd.DialContext,
		OnStatusError: func(s int, _ []byte, _ io.Reader) {
			status = s
		},
	}
	nc, br, _, err := d.Dial(ctx, o.URL)
	if err != nil {
		if status != 0 {
			return nil, fmt.Errorf("websocket handshake: HTTP %d", status)
		}
		return nil, fmt.Errorf("websocket dial: %w", err)
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 8<<10)
	}
	return &WSConn{nc: nc, br: br, bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

// ReadMessage returns the next data message. The payload is valid until
// the next call. Pings are answered; a close frame is answered and
// returned as a *CloseError.
func (c *WSConn) ReadMessage() ([]byte, error) {
	if c.rest != nil {
		m := c.rest
		c.rest = nil
		return m, nil
	}
	c.rbuf = c.rbuf[:0]
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 8<<20 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		if h.OpCode.IsControl() {
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return nil, err
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				if err := c.writeControl(ws.OpPong, p); err != nil {
					return nil, err
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				_ = c.writeControl(ws.OpClose, p[:min(len(p), 2)])
				return nil, &CloseError{Code: int(code), Reason: reason}
			}
			continue
		}
		n := len(c.rbuf)
		if cap(c.rbuf)-n < int(h.Length) {
			nb := make([]byte, n, n+int(h.Length)+4096)
			copy(nb, c.rbuf)
			c.rbuf = nb
		}
		c.rbuf = c.rbuf[:n+int(h.Length)]
		if _, err := io.ReadFull(c.br, c.rbuf[n:]); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(c.rbuf[n:], h.Mask, 0)
		}
		if h.Fin {
			return c.rbuf, nil
		}
	}
}

func (c *WSConn) writeControl(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ctrl = append(c.ctrl[:0], p...)
	if err := c.writeFrameLocked(op, c.ctrl); err != nil {
		return err
	}
	return c.flushLocked()
}

func (c *WSConn) writeFrameLocked(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	ws.Cipher(p, h.Mask, 0)
	if err := ws.WriteHeaderBuffer(c.bw, h, c.hdr[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(p)
	return err
}

func (c *WSConn) flushLocked() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return c.bw.Flush()
}

// WriteText sends text messages, each one frame, in one flush. Each
// payload is masked in place: its bytes are clobbered.
func (c *WSConn) WriteText(payloads ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range payloads {
		if err := c.writeFrameLocked(ws.OpText, p); err != nil {
			return err
		}
	}
	return c.flushLocked()
}

// Close sends a normal close frame (best effort) and closes the socket.
func (c *WSConn) Close() error {
	c.wmu.Lock()
	_ = c.writeFrameLocked(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.flushLocked()
	c.wmu.Unlock()
	return c.nc.Close()
}

// Abort closes the socket without a close handshake, as a lost
// connection (the server keeps the stream for its grace).
func (c *WSConn) Abort() error { return c.nc.Close() }

// SetReadDeadline bounds the next reads.
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// ReadJoined reads the first message, which must be `joined` (a close
// frame instead is returned as a *CloseError).
func (c *WSConn) ReadJoined(timeout time.Duration) (Joined, error) {
	var j Joined
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	msg, err := c.ReadMessage()
	if err != nil {
		return j, err
	}
	var first, rest []byte
	EachFrame(msg, func(f []byte) bool {
		if first == nil {
			first = f
			return true
		}
		// A batching connection may carry more frames after joined in
		// the same message (a resume's replay starts at once): they are
		// the next message ReadMessage returns.
		if rest == nil {
			rest = append(rest, '[')
		} else {
			rest = append(rest, ',')
		}
		rest = append(rest, f...)
		return true
	})
	if string(FrameType(first)) != "joined" {
		return j, fmt.Errorf("first frame is not joined: %.200s", first)
	}
	if err := decodeFrame(first, &j); err != nil {
		return j, fmt.Errorf("decode joined: %w", err)
	}
	if rest != nil {
		c.rest = append(rest, ']')
	}
	return j, nil
}

// IsClosed reports whether err means the connection is gone (a close
// frame, EOF, a reset, a deadline).
func IsClosed(err error) bool {
	var ce *CloseError
	var ne net.Error
	return errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}
