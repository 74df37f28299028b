package grpce2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/linktoken"
)

// withoutQuery drops the query of a link (its token).
func withoutQuery(link string) string { return link[:strings.Index(link, "?")] }

// C70: every connect check of spec 4.2 that fails ends the call with the
// mapped status and the ams-close-code / ams-close-reason trailers, first
// failing check first, before any message.
func TestC70ConnectRefusals(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	conv := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	base := withoutQuery(link)
	now := time.Now()
	expired, err := linktoken.Mint(sys.SigningKey(), sys.URL(0), conv["conversation_id"].(string), "alice", "room",
		conv["link_id"].(string), now.Add(-time.Hour), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	badCred := "ams_sk_" + strings.Repeat("A", 43)
	a := gw(t, sys, 0)
	str := func(s string) *string { return &s }

	cases := []struct {
		name   string
		o      connectOpts
		code   codes.Code
		close  string
		reason string
	}{
		{"no link", connectOpts{credential: cred}, codes.PermissionDenied, "4001", "invalid_magic_link"},
		{"link without t", connectOpts{credential: cred, link: base}, codes.PermissionDenied, "4001", "invalid_magic_link"},
		{"not a link", connectOpts{credential: cred, link: "::"}, codes.PermissionDenied, "4001", "invalid_magic_link"},
		{"unknown conversation with a bad token", connectOpts{credential: cred, link: sys.URL(0) + "/alice/conversations/nothing?t=garbage"},
			codes.NotFound, "4005", "conversation_not_found"},
		{"unknown namespace", connectOpts{credential: cred, link: sys.URL(0) + "/nobody/conversations/room" + link[strings.Index(link, "?"):]},
			codes.NotFound, "4005", "conversation_not_found"},
		{"bad token", connectOpts{credential: cred, link: base + "?t=garbage"}, codes.PermissionDenied, "4001", "invalid_magic_link"},
		{"expired token", connectOpts{credential: cred, link: base + "?t=" + expired}, codes.PermissionDenied, "4001", "link_expired"},
		{"no credential", connectOpts{link: link}, codes.Unauthenticated, "4002", "invalid_credential"},
		{"other scheme", connectOpts{link: link, md: map[string]string{"authorization": "Basic " + cred}}, codes.Unauthenticated, "4002", "invalid_credential"},
		{"bad credential", connectOpts{credential: badCred, link: link}, codes.Unauthenticated, "4002", "invalid_credential"},
		{"bad stream name", connectOpts{credential: cred, link: link, streamName: "bad name"}, codes.InvalidArgument, "4400", "invalid_stream_name_header"},
		{"metadata not base64", connectOpts{credential: cred, link: link, md: map[string]string{"x-ams-stream-metadata": "!!"}},
			codes.InvalidArgument, "4400", "invalid_stream_metadata_header"},
		{"metadata not an object", connectOpts{credential: cred, link: link, metadata: "[1]"}, codes.InvalidArgument, "4400", "invalid_stream_metadata_header"},
		{"bad peer identity", connectOpts{credential: cred, link: link, peerIdentity: `{"kind":"robot"}`}, codes.InvalidArgument, "4400", "invalid_peer_identity_header"},
		{"bad filter", connectOpts{credential: cred, link: link, subscribe: str("ok, bad name")}, codes.InvalidArgument, "4400", "invalid_subscribe_streams_header"},
		{"bad cursor", connectOpts{credential: cred, link: link, resume: "str_x:1"}, codes.InvalidArgument, "4400", "invalid_resume_header"},
		// Order: the link before the credential, the credential before the
		// headers, the headers in 4.2 order.
		{"bad token before no credential", connectOpts{link: base + "?t=garbage", streamName: "bad name"}, codes.PermissionDenied, "4001", "invalid_magic_link"},
		{"expired before bad credential", connectOpts{credential: badCred, link: base + "?t=" + expired}, codes.PermissionDenied, "4001", "link_expired"},
		{"bad credential before bad header", connectOpts{credential: badCred, link: link, streamName: "bad name"}, codes.Unauthenticated, "4002", "invalid_credential"},
		{"name before metadata", connectOpts{credential: cred, link: link, streamName: "bad name", metadata: "[1]"}, codes.InvalidArgument, "4400", "invalid_stream_name_header"},
		{"metadata before cursor", connectOpts{credential: cred, link: link, metadata: "[1]", resume: "x"}, codes.InvalidArgument, "4400", "invalid_stream_metadata_header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			connect(t, a, tc.o).wantEnd(tc.code, tc.close, tc.reason, false)
		})
	}
}

// The magic link is accepted as the mint returns it, with a trailing
// slash, and in its /connect form.
func TestC70LinkForms(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	link := sys.Mint(t, 0, cred, "alice", `{"alias":"connect"}`)["magic_link"].(string)
	q := link[strings.Index(link, "?"):]
	for i, l := range []string{link, withoutQuery(link) + "/" + q, withoutQuery(link) + "/connect" + q} {
		c := connect(t, gw(t, sys, 0), connectOpts{credential: cred, link: l, streamName: fmt.Sprintf("s%d", i)})
		if j := c.joined(); j.GetStreamName() != fmt.Sprintf("s%d", i) {
			t.Errorf("link form %d: joined %v", i, j)
		}
	}
}

// C70: a name live under another account ends the call 4004 ALREADY_EXISTS
// and the holder continues; the 11th stream of an account is 4003
// RESOURCE_EXHAUSTED.
func TestC70ConflictAndCaps(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)

	holder := connect(t, gw(t, sys, 0), connectOpts{credential: credA, link: link, streamName: "shared"})
	holder.joined()
	reader := connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "reader"})
	reader.joined()
	holder.expect("stream_joined")
	connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "shared"}).
		wantEnd(codes.AlreadyExists, "4004", "stream_name_owner_conflict", false)
	holder.token("still mine")
	if tok := reader.expect("token").GetToken(); tok.GetData() != "still mine" || tok.GetStreamName() != "shared" {
		t.Errorf("reader got %v", tok)
	}

	for i := range 9 { // alice holds 1; 9 more make 10
		c := connect(t, gw(t, sys, i%2), connectOpts{credential: credA, link: link, streamName: fmt.Sprintf("a%d", i)})
		c.joined()
	}
	connect(t, gw(t, sys, 0), connectOpts{credential: credA, link: link, streamName: "eleventh"}).
		wantEnd(codes.ResourceExhausted, "4003", "stream_limit_exceeded", false)
}

// C70: the same account and name connecting again displaces the call,
// which ends 4001 stream_displaced with ABORTED; the new connection
// resumes the stream (spec 4.5), whatever its transport.
func TestC70Displaced(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)
	peer := wsDial(t, link, wsOpts{credential: credB, streamName: "peer"})
	peer.expect("joined")

	first := connect(t, gw(t, sys, 0), connectOpts{credential: credA, link: link, streamName: "dup"})
	fj := first.joined()
	peer.expect("stream_joined")
	first.token("one")
	peer.expect("token")

	// Displaced by a gRPC call on the other gateway.
	second := connect(t, gw(t, sys, 1), connectOpts{credential: credA, link: link, streamName: "dup"})
	sj := second.joined()
	first.wantEnd(codes.Aborted, "4001", "stream_displaced", true)
	if !sj.GetResumed() || sj.GetStreamId() != fj.GetStreamId() || sj.GetLastSeq() != 1 {
		t.Errorf("second joined: resumed %v, stream %s (want %s), last_seq %d", sj.GetResumed(), sj.GetStreamId(), fj.GetStreamId(), sj.GetLastSeq())
	}
	second.token("two")
	if m := peer.expect("token"); m.m["data"] != "two" || m.m["seq"] != float64(2) {
		t.Errorf("peer got %s, want token two seq 2 (no stream_left or stream_joined first)", m.raw)
	}

	// Displaced by a WebSocket.
	ws := wsDial(t, link, wsOpts{credential: credA, streamName: "dup"})
	if j := ws.expect("joined"); j.m["resumed"] != true {
		t.Errorf("websocket joined %s, want resumed", j.raw)
	}
	second.wantEnd(codes.Aborted, "4001", "stream_displaced", true)
	if got := peer.sync(); len(got) != 0 {
		t.Errorf("peer got %s after the displacements", got[0].raw)
	}
}

// C70, C15: revoking the link that admitted a call ends it 4001
// link_revoked (PERMISSION_DENIED); its stream leaves.
func TestC70LinkRevoked(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	conv := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)
	a := gw(t, sys, 0)
	l2, err := a.convs.CreateLink(bearer(t, cred), &amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room"})
	if err != nil {
		t.Fatal(err)
	}
	live := connect(t, a, connectOpts{credential: cred, link: conv["magic_link"].(string), streamName: "live"})
	live.joined()
	other := connect(t, a, connectOpts{credential: cred, link: relink(t, l2.GetMagicLink(), sys.URL(0)), streamName: "other"})
	other.joined()
	live.expect("stream_joined")
	if _, err := a.convs.RevokeLink(bearer(t, cred), &amsv1.RevokeLinkRequest{Namespace: "alice", Alias: "room", LinkId: conv["link_id"].(string)}); err != nil {
		t.Fatal(err)
	}
	live.wantEnd(codes.PermissionDenied, "4001", "link_revoked", false)
	if sl := other.expect("stream_left").GetStreamLeft(); sl.GetStreamName() != "live" {
		t.Errorf("stream_left %v", sl)
	}
}

// rawBytes is a client message sent as it is, for frames the protobuf
// encoder would not produce.
type rawBytes []byte

// rawCodec sends rawBytes unencoded and everything else as protobuf.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(rawBytes); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }
func (c rawCodec) Name() string                                { return "proto" }

// C70, C42, C43: a bad client frame ends the call with its 4.2 code
// (4400 INVALID_ARGUMENT, 1009 for an oversized message), the stream
// leaves, and nothing of the frame is delivered.
func TestC70BadFrames(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	a := gw(t, sys, 0)
	big := strings.Repeat("x", 65537)
	frame := func(f *amsv1.ClientFrame) any { return f }
	cases := []struct {
		name   string
		msg    any
		code   codes.Code
		close  string
		reason string
	}{
		{"token over 64 KiB", frame(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: big}}}),
			codes.InvalidArgument, "4400", "token_too_large"},
		{"metadata not an object", frame(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{SetMetadata: &amsv1.SetMetadata{MetadataJson: "[1]"}}}),
			codes.InvalidArgument, "4400", "malformed_frame"},
		{"metadata not JSON", frame(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{SetMetadata: &amsv1.SetMetadata{MetadataJson: `{"a":}`}}}),
			codes.InvalidArgument, "4400", "malformed_frame"},
		{"metadata over 16 KiB", frame(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{SetMetadata: &amsv1.SetMetadata{
			MetadataJson: `{"a":"` + strings.Repeat("y", 16<<10) + `"}`}}}), codes.InvalidArgument, "4400", "metadata_too_large"},
		{"bad subscription", frame(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Subscribe{Subscribe: &amsv1.Subscribe{Streams: []string{"bad name"}}}}),
			codes.InvalidArgument, "4400", "invalid_subscription"},
		{"no frame", frame(&amsv1.ClientFrame{}), codes.InvalidArgument, "4400", "unknown_frame_type"},
		{"invalid UTF-8", rawBytes{0x0a, 0x03, 0x0a, 0x01, 0xff}, codes.InvalidArgument, "4400", "malformed_frame"},
		{"not protobuf", rawBytes{0xff, 0xff, 0xff}, codes.InvalidArgument, "4400", "malformed_frame"},
		{"message over 1 MiB", rawBytes(append([]byte{0x0a, 0x84, 0x80, 0x40, 0x0a, 0x80, 0x80, 0x40}, make([]byte, 1<<20)...)),
			codes.InvalidArgument, "1009", "message_too_large"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			link := sys.Mint(t, 0, credA, "alice", fmt.Sprintf(`{"alias":"room-%d"}`, i))["magic_link"].(string)
			reader := connect(t, a, connectOpts{credential: credB, link: link, streamName: "reader"})
			reader.joined()
			md := metadata.Pairs("authorization", "Bearer "+credA, "x-ams-magic-link", link, "x-ams-stream-name", fmt.Sprintf("bad%d", i))
			ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), wait)
			defer cancel()
			stream, err := a.streams.Connect(ctx, grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}))
			if err != nil {
				t.Fatal(err)
			}
			if f, err := stream.Recv(); err != nil || kind(f) != "joined" {
				t.Fatalf("first message %v, %v", f, err)
			}
			if sj := reader.expect("stream_joined").GetStreamJoined(); sj.GetStreamName() != fmt.Sprintf("bad%d", i) {
				t.Fatalf("reader: stream_joined %v", sj)
			}
			if err := stream.SendMsg(tc.msg); err != nil {
				t.Fatal(err)
			}
			var recvErr error
			for recvErr == nil {
				_, recvErr = stream.Recv()
			}
			tr := stream.Trailer()
			if got := describe(recvErr, nil).code; got != tc.code || fmt.Sprint(tr.Get("ams-close-code")) != "["+tc.close+"]" ||
				fmt.Sprint(tr.Get("ams-close-reason")) != "["+tc.reason+"]" {
				t.Errorf("ended %s %v %v, want %s %s %s (%v)", got, tr.Get("ams-close-code"), tr.Get("ams-close-reason"), tc.code, tc.close, tc.reason, recvErr)
			}
			// The stream leaves at once and nothing of the frame arrived.
			if f := reader.next(); kind(f) != "stream_left" {
				t.Errorf("reader got %s %v, want stream_left", kind(f), f)
			}
		})
	}
}

// C70: a draining gateway ends its calls 1001 going_away (UNAVAILABLE) so
// that clients reconnect elsewhere, where the same name gives the same
// stream.
func TestC70Draining(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := sys.CreateAccount(t, 0, "alice")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)

	leaving := sys.AddGateway(t, func(cfg *gatewayd.Config) { cfg.Name = "leaving" })
	c := connect(t, dialAPI(t, leaving.GRPCAddr()), connectOpts{credential: credA, link: link, streamName: "mover"})
	j := c.joined()
	stopped := make(chan struct{})
	go func() { leaving.Stop(); close(stopped) }()
	c.wantEnd(codes.Unavailable, "1001", "going_away", false)
	<-stopped

	again := connect(t, gw(t, sys, 0), connectOpts{credential: credA, link: link, streamName: "mover"})
	if aj := again.joined(); aj.GetStreamId() != j.GetStreamId() {
		t.Errorf("rejoin after the drain: stream %s, want %s", aj.GetStreamId(), j.GetStreamId())
	}
}

// grpcConnections reads ams_connections{transport="grpc"} from a
// gateway's /metrics.
func grpcConnections(t testing.TB, base string) string {
	t.Helper()
	r := gwtest.DoResponse(t, http.MethodGet, base+"/metrics", nil, "")
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, `ams_connections{transport="grpc"} `) {
			return strings.TrimPrefix(line, `ams_connections{transport="grpc"} `)
		}
	}
	return ""
}

// A call that breaks without a half-close is lost, not closed: its stream
// stays present for the grace period (no stream_left) and the same
// account and name resume it.
func TestLostCallKeepsItsStream(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)
	peer := wsDial(t, link, wsOpts{credential: credB, streamName: "peer"})
	peer.expect("joined")
	a := gw(t, sys, 0)
	c := connect(t, a, connectOpts{credential: credA, link: link, streamName: "flaky"})
	c.joined()
	peer.expect("stream_joined")
	if got := grpcConnections(t, sys.URL(0)); got != "1" {
		t.Fatalf("grpc connections %q, want 1", got)
	}

	c.cancel()
	deadline := time.Now().Add(wait)
	for grpcConnections(t, sys.URL(0)) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not notice the cancelled call")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := peer.sync(); len(got) != 0 {
		t.Errorf("peer got %s after the call broke, want nothing during the grace", got[0].raw)
	}
	again := connect(t, a, connectOpts{credential: credA, link: link, streamName: "flaky"})
	if j := again.joined(); !j.GetResumed() {
		t.Errorf("reconnect within the grace: %v, want resumed", j)
	}
	if got := peer.sync(); len(got) != 0 {
		t.Errorf("peer got %s after the resume, want nothing", got[0].raw)
	}
}
