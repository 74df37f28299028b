package streame2e

import (
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C50 and graceful shutdown: a draining gateway closes its connections
// with 1001 going_away; their streams keep the grace, so one resumed on
// another gateway within it is never seen to leave, and one that is not
// resumed leaves when the grace runs out.
func TestDrainKeepsGrace(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := sys.CreateAccount(t, 0, "alpha")
	_, credB := sys.CreateAccount(t, 0, "beta")
	_, credC := sys.CreateAccount(t, 0, "gamma")
	conv := sys.Mint(t, 0, credA, "alpha", "")
	link0 := conv["magic_link"].(string)
	link1 := onGateway(link0, sys.URL(1))

	watcher := dial(t, link1, dialOpts{credential: credC, streamName: "watch"})
	watcher.expect("joined")
	a := dial(t, link0, dialOpts{credential: credA, streamName: "a"})
	sidA := a.expect("joined")["stream_id"].(string)
	watcher.expect("stream_joined")
	b := dial(t, link0, dialOpts{credential: credB, streamName: "b"})
	sidB := b.expect("joined")["stream_id"].(string)
	watcher.expect("stream_joined")
	a.token("before")
	if m := watcher.expect("token"); m["data"] != "before" {
		t.Fatalf("token %v", m)
	}

	drained := time.Now()
	stopped := make(chan struct{})
	go func() { sys.Gateways[0].Stop(); close(stopped) }()
	for _, c := range []*client{a, b} {
		if code, reason := c.closed(10 * time.Second); code != 1001 || reason != "going_away" {
			t.Fatalf("drain closed %d %q, want 1001 going_away", code, reason)
		}
	}
	<-stopped

	// a resumes on the other gateway within the grace: invisible to peers.
	a2 := dial(t, link1, dialOpts{credential: credA, streamName: "a"})
	if j := a2.expect("joined"); j["resumed"] != true || j["stream_id"] != sidA {
		t.Fatalf("resume after drain: %v", j)
	}
	a2.token("after")
	// The watcher's next frames: a's token, then (after the grace) b left.
	m := watcher.next(10 * time.Second)
	if m["type"] != "token" || m["data"] != "after" || m["stream_id"] != sidA {
		t.Fatalf("after the drain the watcher got %v first (a leave of a resumed stream?)", m)
	}
	left := watcher.until("stream_left", 20*time.Second)
	if left["stream_id"] != sidB {
		t.Fatalf("stream_left %v, want b's", left)
	}
	if waited := time.Since(drained); waited < 9*time.Second {
		t.Fatalf("b left %s after the drain, before its 10 s grace", waited)
	}
}
