package grpce2e

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// wait is how long a test waits for a message or an end that must come.
const wait = 10 * time.Second

// api is a gRPC client of one gateway's ams.v1 services.
type api struct {
	conn     *grpc.ClientConn
	accounts amsv1.AccountServiceClient
	convs    amsv1.ConversationServiceClient
	streams  amsv1.StreamServiceClient
}

// dialAPI connects to a gateway's gRPC address.
func dialAPI(t testing.TB, addr string, opts ...grpc.DialOption) *api {
	t.Helper()
	if addr == "" {
		t.Fatal("the gateway serves no gRPC")
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("grpc dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &api{conn: conn, accounts: amsv1.NewAccountServiceClient(conn),
		convs: amsv1.NewConversationServiceClient(conn), streams: amsv1.NewStreamServiceClient(conn)}
}

// gw is the API of in-process gateway i of sys.
func gw(t testing.TB, sys *gwtest.System, i int) *api {
	t.Helper()
	return dialAPI(t, sys.Gateways[i].GRPCAddr())
}

// ctxWith is a call context with a deadline and metadata pairs.
func ctxWith(t testing.TB, kv ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// bearer is a call context authorized by credential.
func bearer(t testing.TB, credential string) context.Context {
	return ctxWith(t, "authorization", "Bearer "+credential)
}

// callError describes a failed unary call: its status and trailers.
type callError struct {
	code   codes.Code
	amsErr string // the ams-error trailer
	reason string // the ErrorInfo reason
}

// wantCallError checks a failed call's status code, ams-error trailer and
// ErrorInfo.
func wantCallError(t testing.TB, what string, err error, trailer metadata.MD, code codes.Code, amsErr string) {
	t.Helper()
	got := describe(err, trailer)
	if err == nil {
		t.Errorf("%s: succeeded, want %s %s", what, code, amsErr)
		return
	}
	if got.code != code || got.amsErr != amsErr || got.reason != amsErr {
		t.Errorf("%s: %s, ams-error %q, ErrorInfo %q; want %s %q (%v)", what, got.code, got.amsErr, got.reason, code, amsErr, err)
	}
}

func describe(err error, trailer metadata.MD) callError {
	st := status.Convert(err)
	ce := callError{code: st.Code()}
	if vs := trailer.Get("ams-error"); len(vs) == 1 {
		ce.amsErr = vs[0]
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == "ams" {
			ce.reason = info.GetReason()
		}
	}
	return ce
}

// b64 is standard base64 of s.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// connectOpts are the inputs of a Connect call, as metadata.
type connectOpts struct {
	credential    string
	link          string
	streamName    string
	metadata      string // JSON object text, sent base64
	selfSubscribe bool
	subscribe     *string
	resume        string
	peerIdentity  string // JSON object text, sent base64
	// md adds or replaces raw metadata pairs.
	md map[string]string
	// noRead leaves the messages unread until startReading.
	noRead bool
}

// gclient is a test gRPC participant: one Connect call.
type gclient struct {
	t      testing.TB
	stream amsv1.StreamService_ConnectClient
	cancel context.CancelFunc
	frames chan *amsv1.ServerFrame
	done   chan struct{}
	err    error // the error that ended Recv (io.EOF: status OK)
	// readOnce starts the reader of a noRead call once.
	readOnce sync.Once
}

// connect opens a Connect call on a gateway's API with o.
func connect(t testing.TB, a *api, o connectOpts) *gclient {
	t.Helper()
	md := metadata.MD{}
	set := func(k, v string) {
		if v != "" {
			md.Set(k, v)
		}
	}
	if o.credential != "" {
		set("authorization", "Bearer "+o.credential)
	}
	set("x-ams-magic-link", o.link)
	set("x-ams-stream-name", o.streamName)
	if o.metadata != "" {
		set("x-ams-stream-metadata", b64(o.metadata))
	}
	if o.selfSubscribe {
		set("x-ams-self-subscribe", "true")
	}
	if o.subscribe != nil {
		md.Set("x-ams-subscribe-streams", *o.subscribe)
	}
	set("x-ams-resume", o.resume)
	if o.peerIdentity != "" {
		set("x-ams-peer-identity", b64(o.peerIdentity))
	}
	for k, v := range o.md {
		md.Set(k, v)
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(context.Background(), md))
	stream, err := a.streams.Connect(ctx)
	if err != nil {
		cancel()
		t.Fatalf("connect: %v", err)
	}
	c := &gclient{t: t, stream: stream, cancel: cancel, frames: make(chan *amsv1.ServerFrame, 1<<12), done: make(chan struct{})}
	if o.noRead {
		t.Cleanup(func() {
			cancel()
			select {
			case <-c.done:
			default:
				c.startReading()
				<-c.done
			}
		})
		return c
	}
	go c.readLoop()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// startReading starts reading a call opened with noRead.
func (c *gclient) startReading() {
	c.readOnce.Do(func() { go c.readLoop() })
}

func (c *gclient) readLoop() {
	defer close(c.done)
	for {
		f, err := c.stream.Recv()
		if err != nil {
			c.err = err
			return
		}
		c.frames <- f
	}
}

// kind names a server frame by its JSON type.
func kind(f *amsv1.ServerFrame) string {
	switch f.GetFrame().(type) {
	case *amsv1.ServerFrame_Joined:
		return "joined"
	case *amsv1.ServerFrame_Token:
		return "token"
	case *amsv1.ServerFrame_StreamJoined:
		return "stream_joined"
	case *amsv1.ServerFrame_StreamLeft:
		return "stream_left"
	case *amsv1.ServerFrame_StreamMetadata:
		return "stream_metadata"
	case *amsv1.ServerFrame_Pong:
		return "pong"
	case *amsv1.ServerFrame_ReplayGap:
		return "replay_gap"
	case *amsv1.ServerFrame_Subscribed:
		return "subscribed"
	}
	return "?"
}

// next returns the next message, failing after wait or if the call ends
// first.
func (c *gclient) next() *amsv1.ServerFrame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-c.done:
		select {
		case f := <-c.frames:
			return f
		default:
		}
		c.t.Fatalf("call ended while waiting for a message: %v", c.err)
	case <-time.After(wait):
		c.t.Fatalf("no message within %s", wait)
	}
	return nil
}

// expect returns the next message, which must be of the given kind.
func (c *gclient) expect(k string) *amsv1.ServerFrame {
	c.t.Helper()
	f := c.next()
	if kind(f) != k {
		c.t.Fatalf("got %s %v, want %s", kind(f), f, k)
	}
	return f
}

// joined returns the first message, which must be joined.
func (c *gclient) joined() *amsv1.Joined {
	c.t.Helper()
	return c.expect("joined").GetJoined()
}

func (c *gclient) send(f *amsv1.ClientFrame) {
	c.t.Helper()
	if err := c.stream.Send(f); err != nil && !errors.Is(err, io.EOF) {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *gclient) token(data string) {
	c.t.Helper()
	c.send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: data}}})
}

func (c *gclient) setMetadata(text string) {
	c.t.Helper()
	c.send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{SetMetadata: &amsv1.SetMetadata{MetadataJson: text}}})
}

// sync sends a ping and returns every message before its pong.
func (c *gclient) sync() []*amsv1.ServerFrame {
	c.t.Helper()
	c.send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Ping{Ping: &amsv1.Ping{}}})
	var got []*amsv1.ServerFrame
	for {
		f := c.next()
		if kind(f) == "pong" {
			return got
		}
		got = append(got, f)
	}
}

// ending is how a Connect call ended.
type ending struct {
	code        codes.Code
	closeCode   string
	closeReason string
	// frames are the messages that arrived before the end.
	frames []*amsv1.ServerFrame
}

// ended waits for the call's end.
func (c *gclient) ended() ending {
	c.t.Helper()
	var e ending
	deadline := time.After(wait)
	for {
		select {
		case f := <-c.frames:
			e.frames = append(e.frames, f)
			continue
		case <-c.done:
		case <-deadline:
			c.t.Fatalf("call not ended within %s", wait)
		}
		break
	}
	for len(c.frames) > 0 {
		e.frames = append(e.frames, <-c.frames)
	}
	if errors.Is(c.err, io.EOF) {
		e.code = codes.OK
	} else {
		e.code = status.Code(c.err)
	}
	tr := c.stream.Trailer()
	if vs := tr.Get("ams-close-code"); len(vs) == 1 {
		e.closeCode = vs[0]
	}
	if vs := tr.Get("ams-close-reason"); len(vs) == 1 {
		e.closeReason = vs[0]
	}
	return e
}

// wantEnd waits for the call's end with the status code and close
// trailers; no message may arrive first unless allowFrames.
func (c *gclient) wantEnd(code codes.Code, closeCode, reason string, allowFrames bool) ending {
	c.t.Helper()
	e := c.ended()
	if e.code != code || e.closeCode != closeCode || e.closeReason != reason {
		c.t.Errorf("ended %s, ams-close-code %q, ams-close-reason %q; want %s %q %q (%v)",
			e.code, e.closeCode, e.closeReason, code, closeCode, reason, c.err)
	}
	if !allowFrames {
		for _, f := range e.frames {
			c.t.Errorf("unexpected %s before the end: %v", kind(f), f)
		}
	}
	return e
}

// relink points a magic link at another base URL.
func relink(t testing.TB, link, base string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("not a link: %v", err)
	}
	return base + u.RequestURI()
}
