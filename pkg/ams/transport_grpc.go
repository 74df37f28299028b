package ams

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"

	"github.com/amsrouter/ams/pkg/wire"
)

// grpcTransport is one StreamService.Connect call (spec 5.4).
type grpcTransport struct {
	stream grpc.BidiStreamingClient[amsv1.ClientFrame, amsv1.ServerFrame]
	cancel context.CancelFunc

	sendMu sync.Mutex // gRPC streams take one sender at a time

	recvOnce sync.Once
	recvDone chan struct{} // closed once recv returned an error

	brokenOnce sync.Once
	brokenCh   chan struct{}
}

// newGRPCConn opens the plaintext connection of WithGRPC.
func newGRPCConn(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func dialGRPC(ctx context.Context, cfg *joinConfig, link MagicLink, in dialInputs) (transport, error) {
	md := metadata.Pairs("x-ams-magic-link", link.String())
	if cfg.credential != "" {
		md.Set("authorization", "Bearer "+cfg.credential)
	}
	if in.streamName != "" && !cfg.observe {
		md.Set("x-ams-stream-name", in.streamName)
	}
	if in.metadata != nil && !cfg.observe {
		md.Set("x-ams-stream-metadata", base64.StdEncoding.EncodeToString(in.metadata))
	}
	if cfg.selfSubscribe {
		md.Set("x-ams-self-subscribe", "true")
	}
	if in.filterOn {
		md.Set("x-ams-subscribe-streams", strings.Join(in.filter, ","))
	}
	if cfg.peerIdentity != nil {
		b, _ := json.Marshal(cfg.peerIdentity)
		md.Set("x-ams-peer-identity", base64.StdEncoding.EncodeToString(b))
	}
	if in.resume != "" {
		md.Set("x-ams-resume", in.resume)
	}
	if cfg.observe {
		md.Set("x-ams-observe", "true")
	}
	// The call outlives ctx, which bounds the connect only (Join waits
	// for joined under it and aborts the call when it ends).
	sctx, cancel := context.WithCancel(metadata.NewOutgoingContext(context.Background(), md))
	stream, err := amsv1.NewStreamServiceClient(cfg.grpcConn).Connect(sctx)
	if err != nil {
		cancel()
		return nil, grpcDialError(err)
	}
	return &grpcTransport{
		stream:   stream,
		cancel:   cancel,
		recvDone: make(chan struct{}),
		brokenCh: make(chan struct{}),
	}, nil
}

func grpcDialError(err error) error {
	st, _ := status.FromError(err)
	return &Error{Close: wire.CloseAbnormal, Code: "", Message: st.Message()}
}

func (t *grpcTransport) recv() (wire.Event, error) {
	f, err := t.stream.Recv()
	if err != nil {
		t.recvOnce.Do(func() { close(t.recvDone) })
		return nil, err
	}
	return fromProto(f), nil
}

func (t *grpcTransport) send(_ context.Context, f clientFrame) error {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	switch f.kind {
	case frameToken:
		for _, d := range f.data {
			if err := t.stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: d}}}); err != nil {
				return err
			}
		}
		return nil
	case frameSetMetadata:
		return t.stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{SetMetadata: &amsv1.SetMetadata{MetadataJson: string(f.metadata)}}})
	case framePing:
		return t.stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Ping{Ping: &amsv1.Ping{}}})
	default: // frameSubscribe
		return t.stream.Send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Subscribe{Subscribe: &amsv1.Subscribe{Streams: f.streams, StreamsAll: f.streams == nil}}})
	}
}

// status reads the close code and reason from the trailers of the ended
// call; without them, a lost connection is 1006 and other statuses map
// back from their gRPC code (spec 5.4).
func (t *grpcTransport) status(err error) (int, wire.Code) {
	if errors.Is(err, io.EOF) {
		return wire.CloseNormal, ""
	}
	tr := t.stream.Trailer()
	if v := tr.Get("ams-close-code"); len(v) > 0 {
		if code, perr := strconv.Atoi(v[0]); perr == nil {
			var reason wire.Code
			if r := tr.Get("ams-close-reason"); len(r) > 0 {
				reason = wire.Code(r[0])
			}
			return code, reason
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Unknown:
		return wire.CloseAbnormal, ""
	case codes.PermissionDenied:
		return wire.CloseDenied, ""
	case codes.Aborted:
		return wire.CloseDenied, wire.CodeStreamDisplaced
	case codes.Unauthenticated:
		return wire.CloseCredential, ""
	case codes.ResourceExhausted:
		return wire.CloseLimit, ""
	case codes.AlreadyExists:
		return wire.CloseConflict, ""
	case codes.NotFound:
		return wire.CloseNotFound, ""
	case codes.InvalidArgument:
		return wire.CloseBadRequest, ""
	case codes.Unimplemented:
		return 1002, "unimplemented" // no gRPC stream plane there: do not retry
	}
	return wire.CloseInternal, ""
}

// close half-closes the call, which the server answers by ending it with
// OK, and waits for that (bounded).
func (t *grpcTransport) close() {
	t.sendMu.Lock()
	_ = t.stream.CloseSend()
	t.sendMu.Unlock()
	timer := time.NewTimer(closeTimeout)
	select {
	case <-t.recvDone:
	case <-timer.C:
	}
	timer.Stop()
	t.abort()
}

func (t *grpcTransport) abort() {
	t.cancel()
	t.brokenOnce.Do(func() { close(t.brokenCh) })
}

func (t *grpcTransport) broken() <-chan struct{} { return t.brokenCh }

// fromProto converts a server frame to its wire event.
func fromProto(f *amsv1.ServerFrame) wire.Event {
	switch x := f.GetFrame().(type) {
	case *amsv1.ServerFrame_Joined:
		j := x.Joined
		out := wire.Joined{
			ConversationID:    j.GetConversationId(),
			StreamID:          j.GetStreamId(),
			StreamName:        j.GetStreamName(),
			Metadata:          rawJSON(j.GetMetadataJson()),
			SelfSubscribe:     j.GetSelfSubscribe(),
			PeerIdentity:      identity(j.GetPeerIdentity()),
			Resumed:           j.GetResumed(),
			AccountID:         j.GetAccountId(),
			LastSeq:           j.GetLastSeq(),
			SubscribedStreams: j.GetSubscribedStreams(),
			Retention:         wire.Retention{MaxAgeMs: j.GetRetentionMaxAgeMs(), MaxEvents: j.GetRetentionMaxEvents()},
			Observer:          j.GetObserver(),
		}
		if !j.GetSubscriptionAll() {
			out.Subscription = append([]string{}, j.GetSubscription()...)
		}
		for _, p := range j.GetPeers() {
			out.Peers = append(out.Peers, streamFromProto(p))
		}
		return out
	case *amsv1.ServerFrame_Token:
		e := x.Token
		return wire.Token{
			StreamID: e.GetStreamId(), StreamName: e.GetStreamName(), OwnerAccountID: e.GetOwnerAccountId(),
			TS: parseTS(e.GetTs()), Data: e.GetData(), PeerIdentity: identity(e.GetPeerIdentity()), Seq: e.GetSeq(),
		}
	case *amsv1.ServerFrame_StreamJoined:
		e := x.StreamJoined
		return wire.StreamJoined{Stream: wire.Stream{
			StreamID: e.GetStreamId(), StreamName: e.GetStreamName(), OwnerAccountID: e.GetOwnerAccountId(),
			Metadata: rawJSON(e.GetMetadataJson()), PeerIdentity: identity(e.GetPeerIdentity()), LastSeq: e.GetLastSeq(),
		}}
	case *amsv1.ServerFrame_StreamLeft:
		e := x.StreamLeft
		return wire.StreamLeft{
			StreamID: e.GetStreamId(), StreamName: e.GetStreamName(), OwnerAccountID: e.GetOwnerAccountId(),
			PeerIdentity: identity(e.GetPeerIdentity()), LastSeq: e.GetLastSeq(),
		}
	case *amsv1.ServerFrame_StreamMetadata:
		e := x.StreamMetadata
		return wire.StreamMetadata{
			StreamID: e.GetStreamId(), StreamName: e.GetStreamName(), OwnerAccountID: e.GetOwnerAccountId(),
			Metadata: rawJSON(e.GetMetadataJson()), TS: parseTS(e.GetTs()), PeerIdentity: identity(e.GetPeerIdentity()), Seq: e.GetSeq(),
		}
	case *amsv1.ServerFrame_Pong:
		return wire.Pong{}
	case *amsv1.ServerFrame_ReplayGap:
		e := x.ReplayGap
		return wire.ReplayGap{
			StreamID: e.GetStreamId(), StreamName: e.GetStreamName(), OwnerAccountID: e.GetOwnerAccountId(),
			RequestedSeq: e.GetRequestedSeq(), FirstAvailableSeq: e.GetFirstAvailableSeq(),
		}
	case *amsv1.ServerFrame_Subscribed:
		e := x.Subscribed
		out := wire.Subscribed{SubscribedStreams: e.GetSubscribedStreams()}
		if !e.GetSubscriptionAll() {
			out.Subscription = append([]string{}, e.GetSubscription()...)
		}
		return out
	}
	return wire.Unknown{Type: "grpc"}
}

func streamFromProto(p *amsv1.StreamInfo) wire.Stream {
	return wire.Stream{
		StreamID: p.GetStreamId(), StreamName: p.GetStreamName(), OwnerAccountID: p.GetOwnerAccountId(),
		Metadata: rawJSON(p.GetMetadataJson()), PeerIdentity: identity(p.GetPeerIdentity()), LastSeq: p.GetLastSeq(),
	}
}

func identity(p *amsv1.PeerIdentity) *wire.PeerIdentity {
	if p == nil || p.GetKind() == "" {
		return nil
	}
	return &wire.PeerIdentity{Kind: p.GetKind(), Model: p.GetModel(), Client: p.GetClient()}
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
