package grpcapi

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// transport is the connection label of Connect calls (metrics).
const transport = "grpc"

// Limits of a client frame (spec 4.2): a message over 1 MiB is
// 1009 message_too_large, as on a WebSocket.
const maxMessage = 1 << 20

// sendWait bounds how long an ending call waits for its send goroutine:
// longer only if a Send is stuck on a client that stopped reading.
const sendWait = 2 * time.Second

// Codes a Connect call ends with that have no catalogue entry.
const (
	closeNormal = 1000 // the client half-closed
	closeLost   = 1006 // the call broke without a half-close
)

// connectInputs reads a Connect call's metadata (spec 5.4) into the
// conversation it names and the connect inputs, with the meanings of the
// WebSocket headers of spec 4.1. Besides the keys spec 5.4 lists,
// `x-ams-observe` opens an observer (spec 4.7), as its header does.
func connectInputs(md metadata.MD) (ns, alias string, raw connreq.Raw) {
	opt := func(key string) *string {
		if vs := md.Get(key); len(vs) > 0 {
			v := vs[0]
			return &v
		}
		return nil
	}
	ns, alias, raw.Token = parseMagicLink(first(md, "x-ams-magic-link"))
	raw.Credential, raw.HasCredential = controlplane.BearerCredential(first(md, "authorization"))
	raw.StreamName = opt("x-ams-stream-name")
	raw.Metadata = opt("x-ams-stream-metadata")
	raw.SelfSubscribe = opt("x-ams-self-subscribe")
	raw.Subscribe = opt("x-ams-subscribe-streams")
	raw.Resume = opt("x-ams-resume")
	raw.PeerIdentity = opt("x-ams-peer-identity")
	raw.Observe = opt("x-ams-observe")
	return ns, alias, raw
}

// parseMagicLink reads a magic link `{base}/{ns}/conversations/{alias}?t=…`
// (one trailing slash, or its /connect form, accepted): the conversation
// from the path's last segments, the token from the query. What it cannot
// read is left empty, for the connect checks to refuse in their order.
func parseMagicLink(link string) (ns, alias, token string) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil {
		return "", "", ""
	}
	token = u.Query().Get("t")
	seg := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	n := len(seg)
	switch {
	case n >= 4 && seg[n-2] == "conversations":
		return seg[n-3], seg[n-1], token
	case n >= 5 && seg[n-3] == "conversations" && seg[n-1] == "connect":
		return seg[n-4], seg[n-2], token
	}
	return "", "", token
}

// streams serves ams.v1.StreamService.
type streams struct {
	amsv1.UnimplementedStreamServiceServer
	d *Deps
}

// Connect is one stream-plane connection (spec 5.4): admitted from the
// call's metadata by the WebSocket's checks in their order, then `joined`
// and the connection's events as messages, the client's frames as input,
// and an end with the close code in trailers.
func (s *streams) Connect(stream amsv1.StreamService_ConnectServer) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	ns, alias, raw := connectInputs(md)
	c := &call{stream: stream, d: s.d, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	jr, _, err := s.d.Admitter.Admit(ctx, ns, alias, &raw, transport)
	if err == nil {
		var hc *hub.Conn
		if hc, err = s.d.Hub.Join(ctx, jr, c); err == nil {
			c.hc = hc
		}
	}
	if err != nil {
		code := wireerr.CloseCode(err)
		return c.end(code.Close, code.Name)
	}
	c.observer = jr.Observer
	c.frames = s.d.Limits.Conn()
	if !jr.Observer {
		c.acct = s.d.Limits.Account(jr.AccountID)
		defer c.acct.Release()
	}
	return c.run(ctx)
}

// hubConn is what a call uses of its connection in the hub (*hub.Conn).
type hubConn interface {
	EmitTokens(tokens []string) error
	SetMetadata(ctx context.Context, metadata string) (uint64, time.Time, error)
	Ping()
	Subscribe(all bool, items []string)
	Take(dst []hub.Item) ([]hub.Item, bool)
	Delivered(items []hub.Item)
	Close(code int, lost bool)
	Fail(code wireerr.Code)
}

// call is one Connect call; it is the hub's Sink for its connection.
type call struct {
	stream   amsv1.StreamService_ConnectServer
	d        *Deps
	hc       hubConn
	observer bool
	frames   *limits.Conn    // this call's frame rate
	acct     *limits.Account // its account's token rate

	wake chan struct{}
	// closed is closed when the hub ends the connection; code and reason
	// are set before.
	closed    chan struct{}
	closeOnce sync.Once
	code      int
	reason    string

	// pending is the run of tokens received and not yet published, of
	// pendingBytes of data; only the applying goroutine uses them.
	pending      []string
	pendingBytes int
}

// Wake implements hub.Sink.
func (c *call) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close implements hub.Sink: the handler ends the call with the code.
func (c *call) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.closed)
	})
}

func (c *call) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// How applying the client's frames stopped.
type recvEnd int

const (
	recvMore      recvEnd = iota // not stopped: the call goes on
	recvHalfClose                // io.EOF: the client is done
	recvFailed                   // a bad frame: the hub is closing the connection
	recvLost                     // the call broke
)

// run serves a joined call until it ends and returns its status. One
// goroutine sends, one receives, and this one applies what was received:
// tokens that wait in the inbox when one is applied are published with
// it, as one NATS message (see apply).
func (c *call) run(ctx context.Context) error {
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() { sent <- c.sendLoop(stop) }()
	in := newInbox()
	go c.recvLoop(in, stop)

	lost, senderDone := false, false
	r := recvMore
wait:
	for {
		select {
		case <-c.closed:
			break wait
		case m := <-in.ch:
			if r = c.apply(ctx, m, in); r != recvMore {
				break wait
			}
		case <-sent:
			senderDone, lost = true, true
			break wait
		case <-ctx.Done():
			lost = true
			break wait
		}
	}
	switch r {
	case recvHalfClose:
		// A normal close: the stream leaves at once. A close by the hub
		// that came first is what happened, and wins.
		c.hc.Close(closeNormal, false)
		if !c.isClosed() {
			c.Close(closeNormal, "")
		}
	case recvFailed:
		<-c.closed
	case recvLost:
		lost = true
	}
	if lost {
		// No half-close: the stream stays for the grace period (spec 4.5).
		c.hc.Close(closeLost, true)
	}
	close(stop)
	if !senderDone {
		t := time.NewTimer(sendWait)
		select {
		case <-sent:
		case <-t.C:
		}
		t.Stop()
	}
	if lost {
		return status.Error(codes.Canceled, "the call was lost")
	}
	return c.end(c.code, c.reason)
}

// end sets the close trailers and returns the status of spec 5.4 for the
// close code.
func (c *call) end(code int, reason string) error {
	c.stream.SetTrailer(metadata.Pairs(TrailerCloseCode, strconv.Itoa(code), TrailerCloseReason, reason))
	gc := wireerr.CloseToGRPC(code, reason)
	if gc == codes.OK {
		return nil
	}
	st := status.New(gc, reason)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: grpcx.Domain}); err == nil {
		st = d
	}
	return st.Err()
}

// sendLoop sends queued frames until stop; it returns early only when a
// Send fails (the call broke). Once the hub closed the connection, nothing
// more is sent.
func (c *call) sendLoop(stop <-chan struct{}) error {
	var items []hub.Item
	for {
		select {
		case <-stop:
			return nil
		case <-c.wake:
		}
		for more := true; more && !c.isClosed(); {
			items, more = c.hc.Take(items[:0])
			n := 0
			for ; n < len(items) && !c.isClosed(); n++ {
				f, err := serverFrame(items[n].Frame)
				if err != nil {
					c.d.Log.Error("server frame not converted", "err", err)
					continue
				}
				if err := c.stream.Send(f); err != nil {
					return err
				}
			}
			c.hc.Delivered(items[:n])
			clear(items)
		}
	}
}

// Bounds of a call's received frames waiting to be applied: at most
// inboxFrames messages, and no message is taken while more than
// inboxBytes wait (so at most that and one message of maxMessage).
const (
	inboxFrames = 64
	inboxBytes  = 256 << 10
)

// received is one client message, or the error that ended receiving.
type received struct {
	b   []byte
	err error
}

// inbox is what the receive goroutine hands to the applying one.
type inbox struct {
	ch      chan received
	bytes   atomic.Int64
	drained chan struct{} // a message was taken
}

func newInbox() *inbox {
	return &inbox{ch: make(chan received, inboxFrames), drained: make(chan struct{}, 1)}
}

// took accounts for a message the applying goroutine took.
func (in *inbox) took(m received) {
	in.bytes.Add(-int64(len(m.b)))
	select {
	case in.drained <- struct{}{}:
	default:
	}
}

// recvLoop receives the client's messages into in until the call breaks,
// the client half-closes, or stop; the error that ended it is the last
// message.
func (c *call) recvLoop(in *inbox, stop <-chan struct{}) {
	for {
		for in.bytes.Load() > inboxBytes {
			select {
			case <-in.drained:
			case <-stop:
				return
			}
		}
		var m rawMessage
		err := c.stream.RecvMsg(&m)
		in.bytes.Add(int64(len(m.b)))
		select {
		case in.ch <- received{b: m.b, err: err}:
		case <-stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// apply applies m, then every message that waits in the inbox behind it.
// Consecutive tokens are published together when the run ends (a message
// of another kind, an empty inbox) or reaches frame.MaxEmitTokens tokens
// or maxBatchData bytes: one NATS message, as the tokens of one WebSocket
// message are, instead of one each.
func (c *call) apply(ctx context.Context, m received, in *inbox) recvEnd {
	for {
		in.took(m)
		if m.err != nil {
			if err := c.flush(); err != nil {
				return c.refuse(err)
			}
			return c.recvError(m.err)
		}
		if err := c.handle(ctx, m.b); err != nil {
			// The tokens before the refused frame were accepted.
			_ = c.flush()
			return c.refuse(err)
		}
		select {
		case m = <-in.ch:
			continue
		default:
		}
		if err := c.flush(); err != nil {
			return c.refuse(err)
		}
		return recvMore
	}
}

// recvError is how receiving ended for the error RecvMsg returned.
func (c *call) recvError(err error) recvEnd {
	if errors.Is(err, io.EOF) {
		return recvHalfClose
	}
	if status.Code(err) == codes.ResourceExhausted {
		// Over the server's receive limit: gRPC has already ended the
		// call; the stream leaves as after a 1009.
		c.hc.Fail(wireerr.MessageTooLarge)
		return recvFailed
	}
	return recvLost
}

// refuse ends the connection for a frame that was refused.
func (c *call) refuse(err error) recvEnd {
	c.hc.Fail(wireerr.CloseCode(err))
	return recvFailed
}

// maxBatchData bounds the token data of one publish of a call's tokens.
const maxBatchData = 64 << 10

// flush publishes the pending tokens.
func (c *call) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	err := c.hc.EmitTokens(c.pending)
	clear(c.pending)
	c.pending, c.pendingBytes = c.pending[:0], 0
	return discardDisplaced(err)
}

var (
	errTooLarge     = wireerr.New(wireerr.MessageTooLarge, "")
	errMalformed    = wireerr.New(wireerr.MalformedFrame, "")
	errUnknown      = wireerr.New(wireerr.UnknownFrameType, "")
	errTokenLarge   = wireerr.New(wireerr.TokenTooLarge, "")
	errMetaLarge    = wireerr.New(wireerr.MetadataTooLarge, "")
	errSubscription = wireerr.New(wireerr.InvalidSubscription, "")
	errReadOnly     = wireerr.New(wireerr.ReadOnly, "observers may send only ping and subscribe")
)

// handle applies one client frame with the checks of spec 4.2 a WebSocket
// frame gets.
func (c *call) handle(ctx context.Context, b []byte) error {
	if len(b) > maxMessage {
		return errTooLarge
	}
	if err := c.frames.Frame(); err != nil {
		return err
	}
	var f amsv1.ClientFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return errMalformed
	}
	if _, ok := f.GetFrame().(*amsv1.ClientFrame_Token); !ok {
		// Tokens received before go out first.
		if err := c.flush(); err != nil {
			return err
		}
	}
	switch x := f.GetFrame().(type) {
	case *amsv1.ClientFrame_Token:
		if c.observer {
			return errReadOnly
		}
		data := x.Token.GetData()
		if len(data) > frame.MaxData {
			return errTokenLarge
		}
		if err := c.acct.Tokens(1); err != nil {
			return err
		}
		c.pending = append(c.pending, data)
		c.pendingBytes += len(data)
		if len(c.pending) >= frame.MaxEmitTokens || c.pendingBytes >= maxBatchData {
			return c.flush()
		}
	case *amsv1.ClientFrame_SetMetadata:
		if c.observer {
			return errReadOnly
		}
		md := x.SetMetadata.GetMetadataJson()
		if !isObject(md) {
			return errMalformed
		}
		if len(md) > frame.MaxMetadata {
			return errMetaLarge
		}
		if err := c.acct.Tokens(1); err != nil {
			return err
		}
		_, _, err := c.hc.SetMetadata(ctx, md)
		return discardDisplaced(err)
	case *amsv1.ClientFrame_Ping:
		c.hc.Ping()
	case *amsv1.ClientFrame_Subscribe:
		if x.Subscribe.GetStreamsAll() {
			c.hc.Subscribe(true, nil)
			return nil
		}
		items, ok := frame.NormalizeFilter(x.Subscribe.GetStreams())
		if !ok {
			return errSubscription
		}
		c.hc.Subscribe(false, items)
	default:
		return errUnknown
	}
	return nil
}

// isObject reports whether s is exactly one JSON object, with no space
// around it, that a WebSocket frame takes as its `metadata` member (so
// nested no deeper than the frame decoder allows).
func isObject(s string) bool {
	return frame.ValidMetadata([]byte(s))
}

// discardDisplaced drops input of a displaced connection (spec 4.5): it is
// being closed already. Other failures of an accepted frame are internal.
func discardDisplaced(err error) error {
	if we, ok := wireerr.As(err); ok && we.Code.Name == wireerr.StreamDisplaced.Name {
		return nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return wireerr.New(wireerr.Internal, "emit failed")
	}
	return nil
}
