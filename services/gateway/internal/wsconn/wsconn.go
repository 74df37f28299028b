package wsconn

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/netpoll"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Defaults of spec 4.2 and 4.5.
const (
	MaxMessage  = 1 << 20
	PingEvery   = 30 * time.Second
	IdleTimeout = 90 * time.Second
	// writeTimeout bounds one frame write: a client that takes no data
	// for this long is gone.
	writeTimeout = 30 * time.Second
	closeWait    = 2 * time.Second
	// DefaultReadLinger is Handler.ReadLinger's default: a writer that
	// sends a message a millisecond or more often stays on one reader.
	DefaultReadLinger = 2 * time.Millisecond
)

// Handler serves GET …/connect.
type Handler struct {
	Log      *slog.Logger
	Admitter *Admitter
	Hub      *hub.Hub
	// SSE serves connects that ask for text/event-stream; nil answers 426.
	SSE http.Handler
	// PingEvery and IdleTimeout override the keepalive defaults (tests).
	PingEvery, IdleTimeout time.Duration
	// Limits rate-limits each connection's frames and its account's
	// tokens (4429 rate_limited); nil: none.
	Limits *limits.Limits
	// Poller, if not nil, watches idle connections for input: a
	// connection's reader runs only while the client has sent something,
	// and an idle connection holds no goroutine. Nil: each connection
	// reads in a goroutine of its own.
	Poller *netpoll.Poller
	// ReadLinger is how long a reader that took a data message waits for
	// the client's next before it parks in the Poller: a client that
	// writes steadily is read on one goroutine instead of being parked
	// and woken for each message. 0: DefaultReadLinger; negative: park at
	// once.
	ReadLinger time.Duration
	// SendBuffer, if not 0, fixes each connection's kernel send buffer in
	// bytes. By default the kernel sizes it (up to megabytes), which lets
	// a slow reader fall that much further behind before its queue
	// overflows.
	SendBuffer int
}

// ServeHTTP upgrades, admits and joins one connection, then returns: the
// connection's reader runs only while the client has input (with a
// Poller; else in a goroutine of its own), and its writer only while
// there is something to write. An idle connection costs no goroutine and
// no buffers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !IsWebSocket(r) {
		if AcceptsSSE(r) && h.SSE != nil {
			h.SSE.ServeHTTP(w, r)
			return
		}
		httpapi.WriteError(w, h.Log, wireerr.New(wireerr.UpgradeRequired, "use a WebSocket upgrade or Accept: text/event-stream"))
		return
	}
	p := httpapi.PathParams(r)
	raw := connreq.FromHTTP(r)
	up := ws.HTTPUpgrader{
		Timeout:  10 * time.Second,
		Protocol: func(proto string) bool { return proto == connreq.Protocol },
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		return // the upgrader answered the handshake error
	}
	if h.SendBuffer > 0 {
		if sb, ok := nc.(interface{ SetWriteBuffer(int) error }); ok {
			_ = sb.SetWriteBuffer(h.SendBuffer)
		}
	}
	c := &conn{
		nc: nc, log: h.Log, writerEnd: make(chan struct{}),
		pingEvery: orDefault(h.PingEvery, PingEvery), idle: orDefault(h.IdleTimeout, IdleTimeout),
	}
	c.writing.Store(true)
	c.r = lazyReader{nc: nc}
	c.linger = orDefault(h.ReadLinger, DefaultReadLinger)
	if c.linger < 0 {
		c.linger = 0
	}
	if rw.Reader.Buffered() > 0 {
		c.r.br = rw.Reader // the client wrote before the handshake ended
	}
	// Every failure after the upgrade is a close code (spec 4.2).
	ctx := r.Context()
	jr, _, err := h.Admitter.Admit(ctx, p.NS, p.Alias, &raw, "ws")
	if err == nil {
		jr.Gone = func() bool { return netpoll.PeerClosed(nc) }
		c.hc, err = h.Hub.Join(ctx, jr, c)
	}
	if err != nil {
		c.refuse(err)
		return
	}
	c.batch = jr.Batch
	c.observer = jr.Observer
	c.frames = h.Limits.Conn()
	if !jr.Observer {
		c.acct = h.Limits.Account(jr.AccountID)
	}
	c.handler = c.handle
	c.wantsCursor = jr.Cursor != nil
	if h.Poller != nil {
		// Without a descriptor of its own (TLS) the connection reads in
		// its goroutine.
		if d, err := h.Poller.Register(nc, c.wakeReader); err == nil {
			c.pd = d
		}
	}
	c.ping = time.AfterFunc(c.pingEvery, c.pingDue)
	go c.readOn(true)
	// The writer: writing was set from the start, so that wakes during
	// the join waited for the connection to be complete.
	go c.write()
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// conn is one WebSocket connection.
type conn struct {
	nc          net.Conn
	r           lazyReader
	hc          *hub.Conn
	log         *slog.Logger
	batch       bool
	observer    bool
	wantsCursor bool
	frames      *limits.Conn    // this connection's frame rate
	acct        *limits.Account // its account's token rate
	pingEvery   time.Duration
	idle        time.Duration
	// linger is how long a reader that took a data message waits for the
	// next before it parks (0: it parks at once).
	linger time.Duration

	// With a poller (pd not nil) the reader runs only while the client
	// has input: between messages it arms pd and exits, and parkedAt
	// holds when (Unix ns; 0 while a reader runs). Whoever swaps
	// parkedAt back to 0 starts the next reader: input (pd), the
	// writer's end (the close handshake needs a reader), or the idle
	// check (idleOut set).
	pd       *netpoll.Desc
	parkedAt atomic.Int64
	idleOut  atomic.Bool
	rs       readState

	// The writer runs only while there is something to write: Wake sets
	// pending and starts a writer goroutine unless one runs (writing).
	// A writer that sent the close frame or failed keeps writing set, so
	// no other starts. wmu is held by the running writer; run takes it to
	// wait for a write in progress before it closes the socket.
	pending atomic.Bool
	writing atomic.Bool
	stopped atomic.Bool
	pingNow atomic.Bool
	ping    *time.Timer
	wmu     sync.Mutex
	// writerEnd is closed when the writer has sent the close frame or
	// failed: nothing more will be written.
	writerEnd chan struct{}
	endOnce   sync.Once

	// Scratch space reused across frames: header buffers for the reader
	// and the writer, and the decoded client frame with its handler.
	rhdr    [ws.MaxHeaderSize]byte
	whdr    [ws.MaxHeaderSize]byte
	scratch frame.Client
	handler func(*frame.Client) error
	// tokens are the untagged tokens of the client message being read,
	// emitted together (one NATS message) when the message ends or a frame
	// of another kind comes. They view the message's buffer.
	tokens []string

	mu        sync.Mutex
	pongs     [][]byte // answers to client pings, written by the writer
	closeText string
	// closeCode is the close frame to send, 0 if none; the writer checks
	// it between frames, so a close is not held up behind a long queue.
	closeCode atomic.Int32
	closeSent atomic.Bool
	// joinedSent: the connection's first frame (joined) was written; until
	// then a close does not jump the queue, so that joined always comes
	// first (spec 4.3). Writer only (under wmu).
	joinedSent bool
}

// Wake implements hub.Sink: it starts a writer unless one runs. The
// running writer checks pending after it stops writing, so no wake is
// lost between its last Take and its exit.
func (c *conn) Wake() {
	c.pending.Store(true)
	if c.writing.CompareAndSwap(false, true) {
		go c.write()
	}
}

// readState is the reader's state between messages and across parks.
type readState struct {
	msg     []byte // the message being read, nil between messages
	msgSlot *[]byte
	msgOp   ws.OpCode
	// closing: the server failed the connection; input is discarded
	// until the client answers the close frame.
	closing bool
}

// pingDue runs on the ping timer: the writer adds a ping to its next
// write. It also drops a parked connection that has been silent for the
// idle timeout (a running reader has a read deadline instead), so that
// is checked at each ping.
func (c *conn) pingDue() {
	if c.stopped.Load() {
		return
	}
	if t := c.parkedAt.Load(); t != 0 && time.Now().UnixNano()-t >= int64(c.idle) && c.parkedAt.CompareAndSwap(t, 0) {
		c.idleOut.Store(true)
		go c.readOn(false)
		return
	}
	c.pingNow.Store(true)
	c.Wake()
	c.ping.Reset(c.pingEvery)
}

// Close implements hub.Sink: the writer sends the close frame after what
// is queued, and the reader stops after the peer answers or closeWait.
func (c *conn) Close(code int, reason string) {
	c.mu.Lock()
	if c.closeCode.Load() == 0 {
		c.closeText = reason
		c.closeCode.Store(int32(code))
	}
	c.mu.Unlock()
	c.Wake()
}

// refuse closes a connection that failed a connect check.
func (c *conn) refuse(err error) {
	code := wireerr.CloseCode(err)
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_ = ws.WriteFrame(c.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code.Close), code.Name)))
	// Give the client a moment to read the close frame and answer.
	_ = c.nc.SetReadDeadline(time.Now().Add(closeWait))
	_, _ = io.Copy(io.Discard, io.LimitReader(&c.r, 4096))
	_ = c.nc.Close()
}

// readOn reads until the connection ends, then closes it, or until the
// reader parks: it has consumed all input and waits in the poller. A
// reader woken by the poller reads at least one frame first (mayPark
// false).
func (c *conn) readOn(mayPark bool) {
	code, lost, parked := c.readLoop(mayPark)
	if parked {
		return
	}
	c.finish(code, lost)
}

// park arms the poller and gives up reading: the goroutine that calls it
// must return without touching the reader's state, which belongs to the
// next reader from then on.
func (c *conn) park() {
	c.parkedAt.Store(time.Now().UnixNano())
	if err := c.pd.Arm(); err != nil {
		c.wakeReader() // the read finds the connection closed
	}
}

// wakeReader starts a reader if the connection's is parked.
func (c *conn) wakeReader() {
	for {
		t := c.parkedAt.Load()
		if t == 0 {
			return
		}
		if c.parkedAt.CompareAndSwap(t, 0) {
			go c.readOn(false)
			return
		}
	}
}

// finish closes the connection after its reader ended.
func (c *conn) finish(code int, lost bool) {
	defer c.acct.Release()
	if code != 0 {
		c.hc.Close(code, lost)
	}
	if !lost {
		// A close frame is on its way out (ours or the echo of the
		// client's): let the writer finish it.
		t := time.NewTimer(writeTimeout + closeWait)
		select {
		case <-c.writerEnd:
		case <-t.C:
		}
		t.Stop()
	}
	c.stopped.Store(true)
	c.ping.Stop()
	c.wmu.Lock() // a write in progress ends (bounded by its deadline)
	c.writing.Store(true)
	c.wmu.Unlock()
	c.r.release()
	if s := &c.rs; s.msg != nil {
		putMsgBuf(s.msg, s.msgSlot)
		s.msg, s.msgSlot = nil, nil
	}
	if c.pd != nil {
		c.pd.Close()
	}
	_ = c.nc.Close()
}

// readLoop reads messages until the connection ends. It returns the code
// that ended it from the client's side and whether it was lost without a
// close handshake; code 0 when the server closed it. After the server
// decides to close, input is read and discarded until the client answers
// the close frame, so that closing the socket does not reset it before the
// client has read the close frame. With a poller it returns parked
// instead when it has consumed all input between messages: at once if
// mayPark, else after the first frame.
func (c *conn) readLoop(mayPark bool) (code int, lost, parked bool) {
	s := &c.rs
	fail := func(code wireerr.Code) {
		s.closing = true
		if s.msg != nil {
			putMsgBuf(s.msg, s.msgSlot)
			s.msg, s.msgSlot = nil, nil
		}
		c.hc.Fail(code)
	}
	protocolError := wireerr.Code{Name: "protocol_error", Close: 1002}
	// busy: this reader took a data message, so more may follow soon.
	busy := false
	for {
		if c.idleOut.Load() {
			return c.lostRead()
		}
		if !s.closing && !c.closeSent.Load() {
			if mayPark && c.pd != nil && s.msg == nil && c.r.br == nil {
				lingered := busy && c.linger > 0 && c.r.wait(c.linger)
				if !lingered && !c.closeSent.Load() {
					c.park()
					return 0, false, true
				}
			}
			mayPark = true
			wait := c.idle
			if c.closeSent.Load() {
				// The writer sent the close while this reader lingered:
				// read the client's answer.
				wait = closeWait
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(wait))
		}
		hdr, err := ws.ReadHeaderBuffer(&c.r, c.rhdr[:])
		if err != nil {
			return c.lostRead()
		}
		if !hdr.Masked || hdr.Rsv != 0 || (hdr.OpCode.IsControl() && (hdr.Length > 125 || !hdr.Fin)) {
			if !s.closing {
				fail(protocolError)
			}
			if _, err := io.CopyN(io.Discard, &c.r, hdr.Length); err != nil {
				return c.lostRead()
			}
			continue
		}
		if hdr.OpCode.IsControl() {
			payload := make([]byte, hdr.Length)
			if _, err := io.ReadFull(&c.r, payload); err != nil {
				return c.lostRead()
			}
			ws.Cipher(payload, hdr.Mask, 0)
			switch hdr.OpCode {
			case ws.OpPing:
				if !s.closing && c.frames.Frame() != nil {
					fail(wireerr.RateLimited)
				}
				if !s.closing {
					c.mu.Lock()
					c.pongs = append(c.pongs, payload)
					c.mu.Unlock()
					c.Wake()
				}
			case ws.OpClose:
				if s.closing || c.closeSent.Load() {
					return 0, false, false // the answer to our close
				}
				sc, _ := ws.ParseCloseFrameData(payload)
				peer := int(sc)
				echo := peer
				if peer == 0 {
					peer, echo = 1005, 1000
				}
				// Forget the connection before the echo completes the
				// handshake: a client that reconnects once it has the
				// echo finds its stream left (or, after 1001, in its
				// grace), never still attached (spec 4.5).
				c.hc.Close(peer, peer == 1001)
				// Echo the client's close code (spec 4.2).
				c.Close(echo, "")
				return 0, false, false
			}
			continue
		}
		if s.closing {
			if _, err := io.CopyN(io.Discard, &c.r, hdr.Length); err != nil {
				return c.lostRead()
			}
			continue
		}
		// Data frame or continuation.
		switch {
		case (hdr.OpCode == ws.OpContinuation) == (s.msg == nil):
			fail(protocolError)
			continue
		case int64(len(s.msg))+hdr.Length > MaxMessage:
			// Checked before a buffer is taken: the length is the
			// client's claim.
			fail(wireerr.MessageTooLarge)
			if _, err := io.CopyN(io.Discard, &c.r, hdr.Length); err != nil {
				return c.lostRead()
			}
			continue
		case hdr.OpCode != ws.OpContinuation:
			s.msgOp = hdr.OpCode
			s.msg, s.msgSlot = getMsgBuf(hdr.Length)
		}
		start := len(s.msg)
		s.msg = append(s.msg, make([]byte, hdr.Length)...)
		if _, err := io.ReadFull(&c.r, s.msg[start:]); err != nil {
			return c.lostRead()
		}
		ws.Cipher(s.msg[start:], hdr.Mask, 0)
		if !hdr.Fin {
			continue
		}
		m := s.msg
		s.msg = nil
		if s.msgOp != ws.OpText {
			fail(wireerr.MalformedFrame)
			continue
		}
		busy = true
		err = frame.DecodeInto(m, c.batch, &c.scratch, c.handler)
		if ferr := c.flushTokens(); err == nil {
			err = ferr
		}
		putMsgBuf(m, s.msgSlot)
		s.msgSlot = nil
		if err != nil {
			fail(wireerr.CloseCode(err))
		}
	}
}

// lostRead is readLoop's answer to a failed read (or the idle timeout):
// the connection stopped without a close frame, so it is lost (1006),
// unless the server had already closed it.
func (c *conn) lostRead() (code int, lost, parked bool) {
	if c.closeSent.Load() {
		return 0, false, false
	}
	return 1006, true, false
}

var errReadOnly = wireerr.New(wireerr.ReadOnly, "observers may send only ping and subscribe")

// handle applies one client frame.
func (c *conn) handle(f *frame.Client) error {
	if err := c.frames.Frame(); err != nil {
		return err
	}
	if f.Type != frame.TypeToken || f.Tag != "" {
		// Tokens taken before this frame go first.
		if err := c.flushTokens(); err != nil {
			return err
		}
	}
	switch f.Type {
	case frame.TypeToken:
		if c.observer {
			return errReadOnly
		}
		if err := c.acct.Tokens(1); err != nil {
			return err
		}
		if f.Tag == "" {
			c.tokens = append(c.tokens, f.Data)
			return nil
		}
		_, _, err := c.hc.EmitTagged(c.hc.Context(), f.Data, f.Tag)
		return discardDisplaced(err)
	case frame.TypeSetMetadata:
		if c.observer {
			return errReadOnly
		}
		if err := c.acct.Tokens(1); err != nil {
			return err
		}
		_, _, err := c.hc.SetMetadata(c.hc.Context(), string(f.Metadata))
		return discardDisplaced(err)
	case frame.TypePing:
		c.hc.Ping()
	case frame.TypeSubscribe:
		c.hc.Subscribe(f.All, f.Streams)
	}
	return nil
}

// flushTokens emits the tokens taken from the client message so far.
func (c *conn) flushTokens() error {
	if len(c.tokens) == 0 {
		return nil
	}
	err := c.hc.EmitTokens(c.tokens)
	clear(c.tokens)
	c.tokens = c.tokens[:0]
	return discardDisplaced(err)
}

// discardDisplaced drops input of a displaced connection (spec 4.5): it is
// being closed already.
func discardDisplaced(err error) error {
	if err == nil {
		return nil
	}
	if we, ok := wireerr.As(err); ok && we.Code.Name == wireerr.StreamDisplaced.Name {
		return nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return wireerr.New(wireerr.Internal, "emit failed")
	}
	return nil
}

var (
	bufPool   = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
	itemsPool = sync.Pool{New: func() any { s := make([]hub.Item, 0, hub.TakeFrames); return &s }}
)

// write is the writer: it runs while frames, pongs, a ping or the close
// frame are pending, then exits. At most one runs per connection.
func (c *conn) write() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ip := itemsPool.Get().(*[]hub.Item)
	defer itemsPool.Put(ip)
	for {
		if c.stopped.Load() {
			return
		}
		if !c.pending.Swap(false) {
			// Let go, unless a Wake came after the check above.
			c.writing.Store(false)
			if !c.pending.Load() || !c.writing.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		if c.flush(ip) {
			c.endOnce.Do(func() { close(c.writerEnd) })
			// A parked reader reads the client's answer to the close
			// (within closeWait), or finds the socket closed.
			c.wakeReader()
			return // writing stays set: this connection writes no more
		}
	}
}

// flush makes one write of what is pending: pongs, a ping, up to one
// Take of frames, and the close frame when one is asked for. It reports
// whether the writer is done for good (close sent, or the write failed).
func (c *conn) flush(ip *[]hub.Item) (done bool) {
	items := (*ip)[:0]
	defer func() {
		clear(items)
		*ip = items[:0]
	}()
	pingNow := c.pingNow.Swap(false)
	c.mu.Lock()
	pongs := c.pongs
	c.pongs = nil
	c.mu.Unlock()
	var more bool
	items, more = c.hc.Take(items)
	if more {
		c.Wake() // come back for the rest after this write
	}

	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	var err error
	for _, p := range pongs {
		if err == nil {
			err = ws.WriteFrame(bw, ws.NewPongFrame(p))
		}
	}
	if pingNow && err == nil {
		err = ws.WriteFrame(bw, ws.NewPingFrame(nil))
	}
	written := items
	if err == nil {
		written, err = c.writeItems(bw, items)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		c.hc.Delivered(written)
	}
	closeCode := int(c.closeCode.Load())
	if closeCode != 0 && err == nil {
		c.mu.Lock()
		closeText := c.closeText
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if closeCode == wireerr.SlowConsumer.Close && c.wantsCursor {
			err = c.writeText(bw, frame.AppendCursor(nil, c.hc.Cursor()))
		}
		c.closeSent.Store(true)
		if err == nil {
			err = ws.WriteFrame(bw, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(closeCode), closeText)))
		}
		if err == nil {
			err = bw.Flush()
		}
	}
	bw.Reset(nil)
	bufPool.Put(bw)
	if err != nil {
		// The client stopped reading or went away: lost.
		c.hc.Close(1006, true)
		_ = c.nc.Close()
		return true
	}
	if closeCode != 0 {
		// Wait for the client's answer, then stop reading.
		_ = c.nc.SetReadDeadline(time.Now().Add(closeWait))
		return true
	}
	return false
}

// writeItems writes frames: one message each, or with batching arrays of
// up to 256 frames. It stops early when a close is requested and returns
// the frames it wrote.
func (c *conn) writeItems(w *bufio.Writer, items []hub.Item) ([]hub.Item, error) {
	if !c.batch || len(items) < 2 {
		for i := range items {
			if c.closeCode.Load() != 0 && c.joinedSent {
				return items[:i], nil
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.writeText(w, items[i].Frame); err != nil {
				return items[:i], err
			}
			c.joinedSent = true
		}
		return items, nil
	}
	all := items
	done := 0
	for len(items) > 0 {
		if c.closeCode.Load() != 0 && c.joinedSent {
			return all[:done], nil
		}
		c.joinedSent = true
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		n := min(len(items), frame.MaxBatch)
		size := 1 + n
		for i := 0; i < n; i++ {
			size += len(items[i].Frame)
		}
		if err := ws.WriteHeaderBuffer(w, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(size)}, c.whdr[:]); err != nil {
			return all[:done], err
		}
		_ = w.WriteByte('[')
		for i := 0; i < n; i++ {
			if i > 0 {
				_ = w.WriteByte(',')
			}
			_, _ = w.Write(items[i].Frame)
		}
		if err := w.WriteByte(']'); err != nil {
			return all[:done], err
		}
		items = items[n:]
		done += n
	}
	return all, nil
}

// writeText writes one text message; only the writer goroutine calls it.
func (c *conn) writeText(w *bufio.Writer, p []byte) error {
	if err := ws.WriteHeaderBuffer(w, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(p))}, c.whdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// Message buffers are pooled: a connection holds one only while it reads
// a message, so idle connections hold none. The pool holds *[]byte, and
// the reader keeps the pointer it got, so returning a buffer allocates
// nothing.
var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledMsg bounds the buffers kept in the pool.
const maxPooledMsg = 64 << 10

// getMsgBuf returns an empty buffer for a message of n bytes and the pool
// slot to hand back with putMsgBuf (nil for an outsized message).
func getMsgBuf(n int64) ([]byte, *[]byte) {
	if n > maxPooledMsg {
		return make([]byte, 0, n), nil
	}
	p := msgPool.Get().(*[]byte)
	return (*p)[:0], p
}

// putMsgBuf returns a message buffer (grown or not) to its pool slot.
func putMsgBuf(b []byte, p *[]byte) {
	if p != nil && cap(b) <= maxPooledMsg {
		*p = b[:0]
		msgPool.Put(p)
	}
}

// Read buffers are pooled too: an idle connection waits for its next
// message in a read of the socket into the reader's few header bytes,
// holding no buffer; once data arrives the reader takes a buffer and
// keeps it until it has consumed all that was read.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// lazyReader reads the socket through a pooled bufio.Reader while data is
// buffered, and directly when none is. The read loop is its only user.
type lazyReader struct {
	nc net.Conn
	br *bufio.Reader
	// pooled: br came from readerPool (not the handshake's reader).
	pooled bool
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.br == nil {
		n, err := l.nc.Read(p)
		if n > 0 && err == nil {
			// Data is flowing: buffer what follows.
			l.br, l.pooled = readerPool.Get().(*bufio.Reader), true
			l.br.Reset(l.nc)
		}
		return n, err
	}
	n, err := l.br.Read(p)
	if l.br.Buffered() == 0 {
		l.release()
	}
	return n, err
}

// wait waits up to d for input and buffers what comes, without taking
// it: it reports whether input is buffered. It leaves a read deadline set.
func (l *lazyReader) wait(d time.Duration) bool {
	if l.br != nil {
		return true
	}
	_ = l.nc.SetReadDeadline(time.Now().Add(d))
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(l.nc)
	if _, err := br.Peek(1); err == nil {
		l.br, l.pooled = br, true
		return true
	}
	// Timed out (or failed: the poller sees the error and the next
	// reader reads it again).
	br.Reset(nil)
	readerPool.Put(br)
	return false
}

// release returns the buffer to the pool; nothing is buffered in it.
func (l *lazyReader) release() {
	if l.br == nil {
		return
	}
	if l.pooled {
		l.br.Reset(nil)
		readerPool.Put(l.br)
	}
	l.br, l.pooled = nil, false
}
