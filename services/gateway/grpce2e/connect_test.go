package grpce2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

var (
	streamIDRe  = regexp.MustCompile(`^str_[0-9a-f]{26}$`)
	timestampRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)
)

// member returns the exact bytes of a top-level member of a JSON object.
func member(t testing.TB, raw []byte, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %.300s: %v", raw, err)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("no %q in %.300s", name, raw)
	}
	return string(v)
}

// C69: a gRPC agent and a WebSocket agent, on different gateways,
// converse in one conversation: `joined` comes first with the 4.3 fields,
// tokens go both ways, nobody hears its own stream, joins and leaves are
// announced, and a half-close ends the call OK with the stream leaving at
// once.
func TestC69GRPCAndWebSocketAgentsConverse(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	accA, credA := sys.CreateAccount(t, 0, "alice")
	accB, credB := sys.CreateAccount(t, 0, "bob")
	conv := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	ws := wsDial(t, link, wsOpts{credential: credA, streamName: "ws-agent", metadata: `{"role":"ws"}`})
	wsJoined := ws.expect("joined")
	g := connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "grpc-agent",
		metadata: `{"role": "grpc"}`, peerIdentity: `{"kind":"agent","model":"m-1"}`})
	j := g.joined()
	want := &amsv1.Joined{
		ConversationId: conv["conversation_id"].(string),
		StreamId:       j.GetStreamId(),
		StreamName:     "grpc-agent",
		MetadataJson:   `{"role": "grpc"}`,
		Peers: []*amsv1.StreamInfo{{
			StreamId:       wsJoined.m["stream_id"].(string),
			StreamName:     "ws-agent",
			OwnerAccountId: accA,
			MetadataJson:   `{"role":"ws"}`,
		}},
		PeerIdentity:       &amsv1.PeerIdentity{Kind: "agent", Model: "m-1"},
		AccountId:          accB,
		SubscriptionAll:    true,
		RetentionMaxAgeMs:  j.GetRetentionMaxAgeMs(),
		RetentionMaxEvents: j.GetRetentionMaxEvents(),
	}
	if diff := cmp.Diff(want, j, protocmp.Transform()); diff != "" {
		t.Errorf("joined (-want +got):\n%s", diff)
	}
	if !streamIDRe.MatchString(j.GetStreamId()) || j.GetRetentionMaxAgeMs() <= 0 || j.GetRetentionMaxEvents() <= 0 {
		t.Errorf("joined stream_id %q, retention %d ms / %d events", j.GetStreamId(), j.GetRetentionMaxAgeMs(), j.GetRetentionMaxEvents())
	}

	// The WebSocket agent hears the gRPC agent join, with its metadata.
	sj := ws.expect("stream_joined")
	if sj.m["stream_id"] != j.GetStreamId() || sj.m["owner_account_id"] != accB || member(t, sj.raw, "metadata") != `{"role": "grpc"}` ||
		member(t, sj.raw, "peer_identity") != `{"kind":"agent","model":"m-1"}` {
		t.Errorf("stream_joined %s", sj.raw)
	}

	// gRPC to WebSocket, in order, byte-identical.
	sent := []string{"hello", "wörld ✓", "", `"quoted" \ <tag>`}
	for _, d := range sent {
		g.token(d)
	}
	for i, d := range sent {
		m := ws.expect("token")
		if m.m["stream_id"] != j.GetStreamId() || m.m["data"] != d || m.m["seq"] != float64(i+1) || m.m["stream_name"] != "grpc-agent" {
			t.Errorf("websocket token %d: %s, want %q seq %d", i, m.raw, d, i+1)
		}
	}

	// WebSocket to gRPC, with the 4.3 fields.
	ws.token("hi back")
	tok := g.expect("token").GetToken()
	wantTok := &amsv1.TokenEvent{StreamId: wsJoined.m["stream_id"].(string), StreamName: "ws-agent", OwnerAccountId: accA,
		Ts: tok.GetTs(), Data: "hi back", Seq: 1}
	if diff := cmp.Diff(wantTok, tok, protocmp.Transform()); diff != "" || !timestampRe.MatchString(tok.GetTs()) {
		t.Errorf("grpc token (-want +got):\n%s ts %q", diff, tok.GetTs())
	}

	// No self-echo either way: nothing else was queued before the pongs.
	if got := g.sync(); len(got) != 0 {
		t.Errorf("grpc agent got %d more messages, first %v", len(got), got[0])
	}
	if got := ws.sync(); len(got) != 0 {
		t.Errorf("websocket agent got %d more frames, first %s", len(got), got[0].raw)
	}

	// A half-close is a normal close: status OK, code 1000, and the
	// stream leaves at once.
	if err := g.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	g.wantEnd(codes.OK, "1000", "", false)
	sl := ws.expect("stream_left")
	if sl.m["stream_id"] != j.GetStreamId() || sl.m["last_seq"] != float64(len(sent)) {
		t.Errorf("stream_left %s, want last_seq %d", sl.raw, len(sent))
	}
}

// asJSON renders a gRPC server message the way spec 5.4 maps it to its
// JSON frame (type added, *_json spliced in, a null subscription for
// subscription_all), for comparing with what a WebSocket reader got.
func asJSON(t testing.TB, f *amsv1.ServerFrame) map[string]any {
	t.Helper()
	var fields map[string]any
	ident := func(p *amsv1.PeerIdentity, m map[string]any) {
		if p == nil {
			return
		}
		id := map[string]any{"kind": p.GetKind()}
		if p.GetModel() != "" {
			id["model"] = p.GetModel()
		}
		if p.GetClient() != "" {
			id["client"] = p.GetClient()
		}
		m["peer_identity"] = id
	}
	obj := func(text string) any {
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("*_json %q: %v", text, err)
		}
		return v
	}
	switch x := f.GetFrame().(type) {
	case *amsv1.ServerFrame_Token:
		e := x.Token
		fields = map[string]any{"type": "token", "stream_id": e.GetStreamId(), "stream_name": e.GetStreamName(),
			"owner_account_id": e.GetOwnerAccountId(), "ts": e.GetTs(), "data": e.GetData(), "seq": float64(e.GetSeq())}
		ident(e.GetPeerIdentity(), fields)
	case *amsv1.ServerFrame_StreamMetadata:
		e := x.StreamMetadata
		fields = map[string]any{"type": "stream_metadata", "stream_id": e.GetStreamId(), "stream_name": e.GetStreamName(),
			"owner_account_id": e.GetOwnerAccountId(), "metadata": obj(e.GetMetadataJson()), "ts": e.GetTs(), "seq": float64(e.GetSeq())}
		ident(e.GetPeerIdentity(), fields)
	case *amsv1.ServerFrame_StreamJoined:
		e := x.StreamJoined
		fields = map[string]any{"type": "stream_joined", "stream_id": e.GetStreamId(), "stream_name": e.GetStreamName(),
			"owner_account_id": e.GetOwnerAccountId(), "metadata": obj(e.GetMetadataJson()), "last_seq": float64(e.GetLastSeq())}
		ident(e.GetPeerIdentity(), fields)
	case *amsv1.ServerFrame_StreamLeft:
		e := x.StreamLeft
		fields = map[string]any{"type": "stream_left", "stream_id": e.GetStreamId(), "stream_name": e.GetStreamName(),
			"owner_account_id": e.GetOwnerAccountId(), "last_seq": float64(e.GetLastSeq())}
		ident(e.GetPeerIdentity(), fields)
	case *amsv1.ServerFrame_ReplayGap:
		e := x.ReplayGap
		fields = map[string]any{"type": "replay_gap", "stream_id": e.GetStreamId(), "stream_name": e.GetStreamName(),
			"owner_account_id": e.GetOwnerAccountId(), "requested_seq": float64(e.GetRequestedSeq()),
			"first_available_seq": float64(e.GetFirstAvailableSeq())}
	case *amsv1.ServerFrame_Pong:
		fields = map[string]any{"type": "pong"}
	default:
		t.Fatalf("asJSON: %s not handled", kind(f))
	}
	return fields
}

// C69: a gRPC reader gets exactly the events a WebSocket reader in the
// same position gets, in the same order and with the same fields: a
// writer's join, tokens, metadata change and leave, with identity.
func TestC69SameEventsAsWebSocket(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	_, credC := sys.CreateAccount(t, 0, "carol")
	conv := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	g := connect(t, gw(t, sys, 0), connectOpts{credential: credB, link: link, streamName: "reader-g"})
	g.joined()
	r := wsDial(t, relink(t, link, sys.URL(1)), wsOpts{credential: credC, streamName: "reader-w"})
	r.expect("joined")
	g.expect("stream_joined") // reader-w

	w := wsDial(t, link, wsOpts{credential: credA, streamName: "writer", metadata: `{"v":1}`})
	wj := w.expect("joined")
	writer := wj.m["stream_id"].(string)
	for i := range 20 {
		w.token("t" + strconv.Itoa(i))
		if i == 10 {
			w.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"v": 2, "list": []any{3, "x"}}})
		}
	}
	w.close()

	var fromWS []map[string]any
	for len(fromWS) == 0 || fromWS[len(fromWS)-1]["type"] != "stream_left" {
		m := r.next()
		if m.m["stream_id"] == writer {
			fromWS = append(fromWS, m.m)
		}
	}
	var fromGRPC []map[string]any
	for len(fromGRPC) < len(fromWS) {
		f := g.next()
		m := asJSON(t, f)
		if m["stream_id"] == writer {
			fromGRPC = append(fromGRPC, m)
		}
	}
	if len(fromWS) != 1+20+1+1 {
		t.Errorf("websocket reader got %d events of the writer, want 23", len(fromWS))
	}
	if diff := cmp.Diff(fromWS, fromGRPC); diff != "" {
		t.Errorf("gRPC events differ from the WebSocket's (-ws +grpc):\n%s", diff)
	}
}

// C71: *_json fields round-trip byte for byte, both ways: the stream
// metadata header, set_metadata from gRPC read over a WebSocket and over
// gRPC, set_metadata from a WebSocket read over gRPC, and `peers`.
func TestC71MetadataByteExact(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	_, credC := sys.CreateAccount(t, 0, "carol")
	conv := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	const (
		first  = `{"b": 1,  "a":[2,1]}`
		second = `{ "z" : {"y":[ 1 ,2.50 ]},"a":"\u00e9\n", "a":null }`
		third  = `{"k":"é","n":1e3,"o":{}}`
	)

	ws := wsDial(t, link, wsOpts{credential: credA, streamName: "ws"})
	ws.expect("joined")
	g := connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "g", metadata: first})
	if got := g.joined().GetMetadataJson(); got != first {
		t.Errorf("joined metadata_json %q, want %q", got, first)
	}
	if got := member(t, ws.expect("stream_joined").raw, "metadata"); got != first {
		t.Errorf("websocket stream_joined metadata %s, want %s", got, first)
	}
	// A later gRPC joiner sees it in peers.
	late := connect(t, gw(t, sys, 0), connectOpts{credential: credC, link: link, streamName: "late"})
	lj := late.joined()
	for _, p := range lj.GetPeers() {
		if p.GetStreamName() == "g" && p.GetMetadataJson() != first {
			t.Errorf("peers metadata_json %q, want %q", p.GetMetadataJson(), first)
		}
	}
	ws.expect("stream_joined") // late
	g.expect("stream_joined")  // late

	g.setMetadata(second)
	if got := member(t, ws.expect("stream_metadata").raw, "metadata"); got != second {
		t.Errorf("websocket stream_metadata %s, want %s", got, second)
	}
	if got := late.expect("stream_metadata").GetStreamMetadata().GetMetadataJson(); got != second {
		t.Errorf("grpc stream_metadata %q, want %q", got, second)
	}
	ws.sendRaw([]byte(`{"type":"set_metadata","metadata":` + third + `}`))
	if got := g.expect("stream_metadata").GetStreamMetadata().GetMetadataJson(); got != third {
		t.Errorf("grpc stream_metadata from a websocket %q, want %q", got, third)
	}

	// Inspect shows the current metadata exactly, over gRPC.
	insp, err := gw(t, sys, 1).convs.GetConversation(bearer(t, credA), &amsv1.GetConversationRequest{Namespace: "alice", Alias: "room"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range insp.GetStreams() {
		names = append(names, s.GetStreamName())
		if s.GetStreamName() == "g" && s.GetMetadataJson() != second {
			t.Errorf("inspect metadata_json %q, want %q", s.GetMetadataJson(), second)
		}
	}
	if !slices.Equal(names, []string{"ws", "g", "late"}) {
		t.Errorf("inspect streams %v", names)
	}
}
