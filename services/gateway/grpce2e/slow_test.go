package grpce2e

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C46 over gRPC: a Connect call whose client stops reading overflows its
// bounded queue and ends 4290 slow_consumer (RESOURCE_EXHAUSTED) after
// the messages already on their way, with no gap before the end; the
// writer and a reading peer keep their pace and lose nothing.
func TestSlowConsumerOverGRPC(t *testing.T) {
	t.Parallel()
	// The slow reader's gateway has a short queue; the others the default.
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(i int, cfg *gatewayd.Config) {
		if i == 1 {
			cfg.Hub.QueueFrames = 16
		}
	}})
	_, credA := sys.CreateAccount(t, 0, "alice")
	_, credB := sys.CreateAccount(t, 0, "bob")
	link := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)["magic_link"].(string)

	// Fixed 64 KiB flow-control windows: the slow client's unread
	// messages stop the server's sends after about 64 KiB.
	slowAPI := dialAPI(t, sys.Gateways[1].GRPCAddr(), grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	fast := connect(t, gw(t, sys, 0), connectOpts{credential: credB, link: link, streamName: "fast"})
	fast.joined()
	slow := connect(t, slowAPI, connectOpts{credential: credB, link: link, streamName: "slow", noRead: true})
	fast.expect("stream_joined") // slow
	w := connect(t, gw(t, sys, 0), connectOpts{credential: credA, link: link, streamName: "w"})
	w.joined()
	fast.expect("stream_joined") // w

	const n = 120
	payload := strings.Repeat("x", 16<<10)
	left := false
	// readFast reads tokens from..to on the fast reader.
	readFast := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			f := fast.next()
			if sl := f.GetStreamLeft(); sl != nil && sl.GetStreamName() == "slow" && !left {
				left = true // the slow reader's stream leaves when it is closed
				i--
				continue
			}
			tok := f.GetToken()
			if tok.GetSeq() != uint64(i) || !strings.HasPrefix(tok.GetData(), strconv.Itoa(i)+"x") {
				t.Fatalf("fast reader: got %s seq %d, want token %d", kind(f), tok.GetSeq(), i)
			}
		}
	}
	// First more than the slow client's windows hold, so that the
	// server's send to it is blocked, then the rest, which overflow its
	// queue while that send waits.
	const first = 16
	for i := 1; i <= first; i++ {
		w.token(strconv.Itoa(i) + payload)
	}
	readFast(1, first)
	for i := first + 1; i <= n; i++ {
		w.token(strconv.Itoa(i) + payload)
	}
	readFast(first+1, n)
	// The writer was never slowed down or closed; it hears only that the
	// slow reader left.
	for _, f := range w.sync() {
		if f.GetStreamLeft().GetStreamName() != "slow" {
			t.Errorf("writer got %s %v", kind(f), f)
		}
	}

	slow.startReading()
	e := slow.wantEnd(codes.ResourceExhausted, "4290", "slow_consumer", true)
	if len(e.frames) == 0 || kind(e.frames[0]) != "joined" {
		t.Fatalf("slow reader got %d messages, want joined first", len(e.frames))
	}
	// The slow reader's first token of w follows the last_seq it was told
	// of w (spec 4.5): w's stream_joined, or w in its joined's peers when
	// its join finished after w had written (its record is written before
	// the join ends, so the fast reader's stream_joined does not order the
	// two).
	want := uint64(1)
	for _, p := range e.frames[0].GetJoined().GetPeers() {
		if p.GetStreamName() == "w" {
			want = p.GetLastSeq() + 1
		}
	}
	for _, f := range e.frames[1:] {
		switch x := f.GetFrame().(type) {
		case *amsv1.ServerFrame_Token:
			if x.Token.GetSeq() != want {
				t.Fatalf("slow reader: token seq %d, want %d (no gap)", x.Token.GetSeq(), want)
			}
			want++
		case *amsv1.ServerFrame_StreamJoined:
			if x.StreamJoined.GetStreamName() == "w" {
				want = x.StreamJoined.GetLastSeq() + 1
			}
		default:
			t.Errorf("slow reader: unexpected %s", kind(f))
		}
	}
	if want > n {
		t.Errorf("slow reader got all %d tokens: it was not slow", n)
	}
}

// Observers (spec 4.7) over gRPC: x-ams-observe with the link alone gives
// a read-only connection that nobody sees; a token from it ends the call
// 4400 read_only.
func TestObserverOverGRPC(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	link := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)["magic_link"].(string)
	w := wsDial(t, link, wsOpts{credential: cred, streamName: "w"})
	w.expect("joined")

	obs := connect(t, gw(t, sys, 0), connectOpts{link: link, md: map[string]string{"x-ams-observe": "true"}})
	j := obs.joined()
	if !j.GetObserver() || j.GetStreamId() != "" || j.GetStreamName() != "" || j.GetMetadataJson() != "" || j.GetAccountId() != "" ||
		len(j.GetPeers()) != 1 || j.GetPeers()[0].GetStreamName() != "w" {
		t.Errorf("observer joined %v", j)
	}
	w.token("hi")
	if tok := obs.expect("token").GetToken(); tok.GetData() != "hi" {
		t.Errorf("observer got %v", tok)
	}
	if got := w.sync(); len(got) != 0 {
		t.Errorf("the writer saw %s: observers appear to nobody", got[0].raw)
	}
	obs.token("no")
	obs.wantEnd(codes.InvalidArgument, "4400", "read_only", false)
}
