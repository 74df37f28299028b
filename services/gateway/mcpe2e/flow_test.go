package mcpe2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTwoClientsOnTwoGateways_C77_C78_C80 is the must-show flow: two Go SDK
// MCP clients, each on its own gateway, create, join and exchange tokens;
// notifications arrive; ams_recv returns the same tokens; nobody hears
// itself; ams_leave gives the other stream_left.
func TestTwoClientsOnTwoGateways_C77_C78_C80(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "alpha", "beta")
	hs := hosts(t, sys)
	a := connect(t, clientOpts{bearer: creds["alpha"], hosts: hs, pick: only(0)})
	b := connect(t, clientOpts{bearer: creds["beta"], hosts: hs, pick: only(1)})
	exchange(t, a, b)
}

// exchange is the must-show conversation between a and b: a creates and
// both join; tokens both ways arrive as notifications and by ams_recv;
// nobody hears itself; leave gives stream_left; a left session gets left
// until it joins again.
func exchange(t *testing.T, a, b *client) {
	created := a.ok("ams_create_conversation", map[string]any{"alias": "room", "metadata": map[string]any{"topic": "mcp"}})
	link := created["magic_link"].(string)
	ja := a.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "alice"})
	if ja["ok"] != true || ja["stream_name"] != "alice" || ja["stream_id"] != created["stream_id"] && created["stream_name"] == "alice" {
		t.Fatalf("join payload: %v", ja)
	}
	jb := b.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "bob"})
	alice, bob := ja["stream_id"].(string), jb["stream_id"].(string)
	if peers := jb["peers"].([]any); len(peers) != 1 || peers[0].(map[string]any)["stream_id"] != alice {
		t.Fatalf("bob's peers: %v", jb["peers"])
	}
	a.notes.waitFor(t, "stream_joined of bob", func(l []note) bool {
		return has(l, "notifications/ams/stream_joined", func(p map[string]any) bool { return p["stream_id"] == bob })
	})

	var sent []string
	for i := range 5 {
		data := fmt.Sprintf("hello %d", i)
		sent = append(sent, data)
		r := b.ok("ams_send", map[string]any{"data": data})
		if r["stream_id"] != bob || r["seq"].(interface{ String() string }).String() != fmt.Sprint(i+1) {
			t.Fatalf("send payload: %v", r)
		}
	}
	got := a.notes.waitFor(t, "bob's tokens", func(l []note) bool { return len(tokens(l, bob)) == len(sent) })
	if diff := cmp.Diff(sent, tokens(got, bob)); diff != "" {
		t.Fatalf("alice's token notifications (-sent +got):\n%s", diff)
	}
	if diff := cmp.Diff(sent, a.recvTokens(bob, len(sent))); diff != "" {
		t.Fatalf("alice's ams_recv tokens (-sent +got):\n%s", diff)
	}

	back := []string{"hi bob", "how are you"}
	for _, d := range back {
		a.ok("ams_send", map[string]any{"data": d})
	}
	got = b.notes.waitFor(t, "alice's tokens", func(l []note) bool { return len(tokens(l, alice)) == len(back) })
	if diff := cmp.Diff(back, tokens(got, alice)); diff != "" {
		t.Fatalf("bob's token notifications (-sent +got):\n%s", diff)
	}
	if diff := cmp.Diff(back, b.recvTokens(alice, len(back))); diff != "" {
		t.Fatalf("bob's ams_recv tokens (-sent +got):\n%s", diff)
	}

	// No self-echo (C78 without self_subscribe).
	al, _ := a.notes.snapshot()
	bl, _ := b.notes.snapshot()
	if n := tokens(al, alice); len(n) != 0 {
		t.Fatalf("alice heard herself: %v", n)
	}
	if n := tokens(bl, bob); len(n) != 0 {
		t.Fatalf("bob heard himself: %v", n)
	}

	// Leave (C80).
	if r := b.ok("ams_leave", nil); r["ok"] != true {
		t.Fatalf("leave: %v", r)
	}
	b.ok("ams_leave", nil) // idempotent
	a.notes.waitFor(t, "stream_left of bob", func(l []note) bool {
		return has(l, "notifications/ams/stream_left", func(p map[string]any) bool { return p["stream_id"] == bob })
	})
	b.fail("ams_send", map[string]any{"data": "still here?"}, "left")
	b.fail("ams_set_metadata", map[string]any{"metadata": map[string]any{}}, "left")
	rj := b.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "bob"})
	if rj["stream_id"] != bob {
		t.Fatalf("rejoin stream_id %v, want %s", rj["stream_id"], bob)
	}
	r := b.ok("ams_send", map[string]any{"data": "back"})
	if r["seq"].(interface{ String() string }).String() != "6" {
		t.Fatalf("seq after rejoin: %v, want 6", r["seq"])
	}
}

// TestSessionMovesBetweenGateways_C83 initializes on gateway 0 and sends
// every later request to the other gateway in turn: no sticky sessions.
func TestSessionMovesBetweenGateways_C83(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "alpha", "beta")
	hs := hosts(t, sys)
	// The mover: request n goes to gateway n%2 (initialize on 0).
	m := connect(t, clientOpts{bearer: creds["alpha"], hosts: hs, pick: func(n int) int { return n % 2 }})
	peer := connect(t, clientOpts{bearer: creds["beta"], hosts: hs, pick: only(0)})

	created := m.ok("ams_create_conversation", map[string]any{"alias": "moving"})
	link := created["magic_link"].(string)
	j := m.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "mover"})
	mover := j["stream_id"].(string)
	pj := peer.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "peer"})
	peerID := pj["stream_id"].(string)

	var sent []string
	for i := range 6 {
		d := fmt.Sprintf("m%d", i)
		sent = append(sent, d)
		r := m.ok("ams_send", map[string]any{"data": d})
		if r["stream_id"] != mover || r["seq"].(interface{ String() string }).String() != fmt.Sprint(i+1) {
			t.Fatalf("send %d payload: %v", i, r)
		}
	}
	got := peer.notes.waitFor(t, "the mover's tokens", func(l []note) bool { return len(tokens(l, mover)) == len(sent) })
	if diff := cmp.Diff(sent, tokens(got, mover)); diff != "" {
		t.Fatalf("peer's tokens (-sent +got):\n%s", diff)
	}
	if has(got, "notifications/ams/stream_left", nil) || countJoined(got, mover) > 0 {
		t.Fatalf("moves between gateways were visible to the peer: %s", summary(got))
	}

	var back []string
	for i := range 4 {
		d := fmt.Sprintf("p%d", i)
		back = append(back, d)
		peer.ok("ams_send", map[string]any{"data": d})
	}
	// The push leg, wherever it landed, gets them from wherever the wire is.
	got = m.notes.waitFor(t, "the peer's tokens on the push leg", func(l []note) bool { return len(tokens(via(l, "push"), peerID)) == len(back) })
	if diff := cmp.Diff(back, tokens(via(got, "push"), peerID)); diff != "" {
		t.Fatalf("the mover's push leg (-sent +got):\n%s", diff)
	}
	if diff := cmp.Diff(back, m.recvTokens(peerID, len(back))); diff != "" {
		t.Fatalf("the mover's ams_recv (-sent +got):\n%s", diff)
	}
	m.obs.mu.Lock()
	reqs := slices.Clone(m.obs.requests)
	m.obs.mu.Unlock()
	if !slices.Contains(reqs, "POST "+hs[0]) || !slices.Contains(reqs, "POST "+hs[1]) {
		t.Fatalf("requests did not alternate gateways: %v", reqs)
	}
}

func countJoined(l []note, id string) int {
	n := 0
	for _, x := range l {
		if x.Method == "notifications/ams/stream_joined" && x.Params["stream_id"] == id {
			n++
		}
	}
	return n
}

// via keeps the notes that came one way ("push" or "post").
func via(l []note, how string) []note {
	var out []note
	for _, x := range l {
		if x.Via == how {
			out = append(out, x)
		}
	}
	return out
}

// TestHolderGatewayStops_C83: the gateway holding a session's wire shuts
// down; the next call, on the other gateway, re-joins the same stream with
// its cursor: same stream_id, seq continues, nothing received twice.
func TestHolderGatewayStops_C83(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "alpha", "beta")
	hs := hosts(t, sys)
	gw := 0
	var mu sync.Mutex
	pick := func(int) int { mu.Lock(); defer mu.Unlock(); return gw }
	m := connect(t, clientOpts{bearer: creds["alpha"], hosts: hs, pick: pick, noPush: true})
	peer := connect(t, clientOpts{bearer: creds["beta"], hosts: hs, pick: only(1)})
	link := m.ok("ams_create_conversation", map[string]any{"alias": "failover"})["magic_link"].(string)
	j := m.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "survivor"})
	pj := peer.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "peer"})
	m.ok("ams_send", map[string]any{"data": "before"})
	peer.ok("ams_send", map[string]any{"data": "p1"})
	pid := pj["stream_id"].(string)
	recvd := m.recvTokens(pid, 1)
	if recvd[0] != "p1" {
		t.Fatalf("recv %v", recvd)
	}

	sys.Gateways[0].Stop()
	mu.Lock()
	gw = 1
	mu.Unlock()
	peer.ok("ams_send", map[string]any{"data": "p2"})
	r := m.ok("ams_send", map[string]any{"data": "after"})
	if r["stream_id"] != j["stream_id"] || r["seq"].(interface{ String() string }).String() != "2" {
		t.Fatalf("send after failover %v", r)
	}
	// p1 was received before the move, p2 after: each exactly once. The
	// re-join replays p2; it rides along on the answer of a call (C81) if
	// it is buffered by then, else ams_recv returns it.
	var got []string
	for deadline := time.Now().Add(wait); ; {
		list, _ := m.notes.snapshot()
		got = append(tokens(via(list, "post"), pid), recvd...)
		if len(got) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("p2 did not arrive after failover: got %v", got)
		}
		for _, f := range recvFrames(t, m.ok("ams_recv", map[string]any{"wait_ms": 500})) {
			p, _ := f["params"].(map[string]any)
			if f["method"] == "notifications/ams/token" && p["stream_id"] == pid {
				recvd = append(recvd, p["data"].(string))
			}
		}
	}
	// A duplicate would be buffered by now.
	for _, f := range recvFrames(t, m.ok("ams_recv", map[string]any{"wait_ms": 200})) {
		p, _ := f["params"].(map[string]any)
		if f["method"] == "notifications/ams/token" && p["stream_id"] == pid {
			got = append(got, p["data"].(string))
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"p1", "p2"}, got); diff != "" {
		t.Fatalf("the peer's tokens after failover, by ams_recv and ride-along (-want +got):\n%s", diff)
	}
	// The peer hears the stream continue (a draining gateway's streams
	// leave at once in the hub: the peer may see stream_left, then
	// stream_joined with last_seq 1, before seq 2).
	l := peer.notes.waitFor(t, "both tokens", func(l []note) bool { return len(tokens(l, j["stream_id"].(string))) == 2 })
	if diff := cmp.Diff([]string{"before", "after"}, tokens(l, j["stream_id"].(string))); diff != "" {
		t.Fatalf("peer's tokens (-want +got):\n%s", diff)
	}
}
