package grpce2e

import (
	"slices"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C68: the gateway serves ams.v1's three services with the methods of
// spec 5.4, discoverable through gRPC reflection (what grpcurl uses), and
// reports them in gRPC health checking.
func TestC68ReflectionAndHealth(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	a := gw(t, sys, 0)
	ctx := ctxWith(t)

	rs, err := reflectionpb.NewServerReflectionClient(a.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := rs.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var services []string
	for _, s := range ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}).
		GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"ams.v1.AccountService", "ams.v1.ConversationService", "ams.v1.StreamService", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}

	wantMethods := map[string][]string{
		"ams.v1.AccountService":      {"CreateAccount", "RotateCredential"},
		"ams.v1.ConversationService": {"CreateConversation", "GetConversation", "CreateLink", "ListLinks", "RevokeLink"},
		"ams.v1.StreamService":       {"Connect"},
	}
	for svc, want := range wantMethods {
		resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc}})
		found := false
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(raw, &fd); err != nil {
				t.Fatal(err)
			}
			for _, sd := range fd.GetService() {
				if fd.GetPackage()+"."+sd.GetName() != svc {
					continue
				}
				found = true
				var got []string
				for _, m := range sd.GetMethod() {
					got = append(got, m.GetName())
					if m.GetName() == "Connect" && (!m.GetClientStreaming() || !m.GetServerStreaming()) {
						t.Errorf("Connect is not bidirectional: %v", m)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s methods %v, want %v", svc, got, want)
				}
			}
		}
		if !found {
			t.Errorf("reflection has no descriptor of %s", svc)
		}
	}

	h := healthpb.NewHealthClient(a.conn)
	for _, svc := range []string{"", "ams.v1.AccountService", "ams.v1.ConversationService", "ams.v1.StreamService"} {
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v", svc, resp.GetStatus(), err)
		}
	}
}

// Spec 5.1 over gRPC: x-ams-resume continues each stream after the
// cursor's position, replayed then live, with no duplicate and no gap; `*`
// replays everything retained; a filter and self-subscribe apply.
func TestResumeOverGRPC(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)

	w := wsDial(t, link, wsOpts{credential: credA, streamName: "w"})
	writer := w.expect("joined").m["stream_id"].(string)
	r := connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "r"})
	r.joined()
	w.expect("stream_joined")
	for i := 1; i <= 3; i++ {
		w.token("t" + strconv.Itoa(i))
	}
	for i := 1; i <= 3; i++ {
		if tok := r.expect("token").GetToken(); tok.GetSeq() != uint64(i) {
			t.Fatalf("token %v, want seq %d", tok, i)
		}
	}
	if err := r.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	r.wantEnd(codes.OK, "1000", "", false)
	w.expect("stream_left")
	w.token("t4")
	w.token("t5")
	w.sync() // t4 and t5 are published

	// wantTokens reads tokens of the writer with seqs from..to.
	wantTokens := func(c *gclient, from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			f := c.next()
			tok := f.GetToken()
			if tok == nil || tok.GetStreamId() != writer || tok.GetSeq() != uint64(i) || tok.GetData() != "t"+strconv.Itoa(i) {
				t.Fatalf("got %s %v, want token t%d", kind(f), f, i)
			}
		}
	}
	resumed := connect(t, gw(t, sys, 0), connectOpts{credential: credB, link: link, streamName: "r", resume: writer + ":3"})
	if j := resumed.joined(); j.GetResumed() || len(j.GetPeers()) != 1 || j.GetPeers()[0].GetStreamId() != writer {
		t.Errorf("joined %v, want a fresh join with the writer as peer", j)
	}
	wantTokens(resumed, 4, 5)
	all := connect(t, gw(t, sys, 1), connectOpts{credential: credB, link: link, streamName: "all", resume: "*"})
	all.joined()
	wantTokens(all, 1, 5)
	if sj := resumed.expect("stream_joined").GetStreamJoined(); sj.GetStreamName() != "all" {
		t.Errorf("stream_joined %v", sj)
	}
	w.token("t6")
	wantTokens(resumed, 6, 6)
	wantTokens(all, 6, 6)
	if got := resumed.sync(); len(got) != 0 {
		t.Errorf("resumed reader got %d more messages, first %v", len(got), got[0])
	}

	// A writer resuming its own stream with self-subscribe replays its own
	// events; a filter that leaves the writer out replays nothing of it.
	self := connect(t, gw(t, sys, 1), connectOpts{credential: credA, link: link, streamName: "w", selfSubscribe: true, resume: writer + ":4"})
	if j := self.joined(); !j.GetResumed() || j.GetStreamId() != writer {
		t.Errorf("self joined %v, want the writer's stream resumed", j)
	}
	wantTokens(self, 5, 6)
	none := ""
	filtered := connect(t, gw(t, sys, 0), connectOpts{credential: credB, link: link, streamName: "f", resume: "*", subscribe: &none})
	if j := filtered.joined(); j.GetSubscriptionAll() || len(j.GetSubscription()) != 0 {
		t.Errorf("filtered joined subscription %v all %v", j.GetSubscription(), j.GetSubscriptionAll())
	}
	for _, f := range filtered.sync() {
		if f.GetToken() != nil {
			t.Errorf("filtered reader got %v", f)
		}
	}

	// subscribe / subscribed over gRPC.
	filtered.send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Subscribe{Subscribe: &amsv1.Subscribe{Streams: []string{"w", "w", writer}}}})
	sub := filtered.expect("subscribed").GetSubscribed()
	if !slices.Equal(sub.GetSubscription(), []string{"w", writer}) || sub.GetSubscriptionAll() || !slices.Equal(sub.GetSubscribedStreams(), []string{writer}) {
		t.Errorf("subscribed %v", sub)
	}
	self.token("t7")
	if tok := filtered.expect("token").GetToken(); tok.GetSeq() != 7 {
		t.Errorf("after subscribe: %v, want seq 7", tok)
	}
	filtered.send(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Subscribe{Subscribe: &amsv1.Subscribe{StreamsAll: true}}})
	if sub := filtered.expect("subscribed").GetSubscribed(); !sub.GetSubscriptionAll() || len(sub.GetSubscription()) != 0 {
		t.Errorf("subscribed to all: %v", sub)
	}
}
