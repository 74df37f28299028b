package streame2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C39: seq runs 1, 2, 3, … over token and stream_metadata and goes on
// across displacement, on either gateway; the first live event after
// joined is last_seq + 1.
func TestC39Seq(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p"})
	q, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "q"})
	p.expect("stream_joined")
	readers := []*client{p, q}
	wantSeqs := func(typ string, seq int) {
		t.Helper()
		for _, x := range readers {
			m := x.expect(typ)
			if m["stream_name"] != "a" || num(t, m, "seq") != seq {
				t.Fatalf("got %v, want a's %s seq %d", m, typ, seq)
			}
		}
	}
	membership := func(typ string, last int) {
		t.Helper()
		for _, x := range readers {
			m := x.expect(typ)
			if m["stream_name"] != "a" || num(t, m, "last_seq") != last {
				t.Fatalf("got %v, want a's %s with last_seq %d", m, typ, last)
			}
		}
	}

	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	membership("stream_joined", 0)
	a.token("t")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"k": 1}})
	a.token("t")
	wantSeqs("token", 1)
	wantSeqs("stream_metadata", 2)
	wantSeqs("token", 3)

	// Displaced onto the other gateway.
	a2, j2 := r.join(t, 1, dialOpts{credential: credA, streamName: "a"})
	a.wantCloseAfter(codeLink, "stream_displaced")
	if j2["stream_id"] != ja["stream_id"] || num(t, j2, "last_seq") != 3 || j2["resumed"] != true {
		t.Fatalf("resumed joined %v", j2)
	}
	a2.token("t")
	wantSeqs("token", 4)

	// A later joiner sees last_seq 4 and gets 5 first.
	n, jn := r.join(t, 0, dialOpts{credential: credB, streamName: "n"})
	if ps := peersOf(t, jn); len(ps) != 3 || ps[2]["stream_name"] != "a" || num(t, ps[2], "last_seq") != 4 {
		t.Fatalf("peers %v", ps)
	}
	a2.expect("stream_joined")
	a2.token("t")
	n.wantToken("a", "t", 5)
}

// C39: as TestC39Seq, then the seq goes on across leave and rejoin.
func TestC39SeqAcrossRejoin(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p"})
	q, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "q"})
	p.expect("stream_joined")
	readers := []*client{p, q}
	wantSeqs := func(typ string, seq int) {
		t.Helper()
		for _, x := range readers {
			m := x.expect(typ)
			if m["stream_name"] != "a" || num(t, m, "seq") != seq {
				t.Fatalf("got %v, want a's %s seq %d", m, typ, seq)
			}
		}
	}
	membership := func(typ string, last int) {
		t.Helper()
		for _, x := range readers {
			m := x.expect(typ)
			if m["stream_name"] != "a" || num(t, m, "last_seq") != last {
				t.Fatalf("got %v, want a's %s with last_seq %d", m, typ, last)
			}
		}
	}

	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	membership("stream_joined", 0)
	a.token("t")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"k": 1}})
	a.token("t")
	wantSeqs("token", 1)
	wantSeqs("stream_metadata", 2)
	wantSeqs("token", 3)

	// Displaced onto the other gateway.
	a2, j2 := r.join(t, 1, dialOpts{credential: credA, streamName: "a"})
	a.wantCloseAfter(codeLink, "stream_displaced")
	if j2["stream_id"] != ja["stream_id"] || num(t, j2, "last_seq") != 3 || j2["resumed"] != true {
		t.Fatalf("resumed joined %v", j2)
	}
	a2.token("t")
	wantSeqs("token", 4)

	// Leave and rejoin.
	a2.close()
	membership("stream_left", 4)
	a3, j3 := r.join(t, 0, dialOpts{credential: credA, streamName: "a", selfSubscribe: true})
	if j3["stream_id"] != ja["stream_id"] || num(t, j3, "last_seq") != 4 || j3["resumed"] != nil {
		t.Fatalf("rejoined joined %v", j3)
	}
	membership("stream_joined", 4)
	a3.token("t")
	wantSeqs("token", 5)
	a3.wantToken("a", "t", 5) // self-subscribed: from its own next seq

	// A later joiner sees last_seq 5 and gets 6 first.
	n, jn := r.join(t, 1, dialOpts{credential: credB, streamName: "n"})
	if ps := peersOf(t, jn); len(ps) != 3 || ps[2]["stream_name"] != "a" || num(t, ps[2], "last_seq") != 5 {
		t.Fatalf("peers %v", ps)
	}
	a3.expect("stream_joined")
	a3.token("t")
	n.wantToken("a", "t", 6)
}

// C44: the same account and name connecting again displaces the old
// connection (4001 stream_displaced) and resumes the stream: same id, seq
// and place, joined with resumed:true, and peers see nothing of it; also
// from one gateway to the other.
func TestC44DisplaceAndResume(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	for _, tc := range []struct{ from, to int }{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
		t.Run(fmt.Sprintf("gw%d to gw%d", tc.from, tc.to), func(t *testing.T) {
			t.Parallel()
			r := newRoom(t, sys, credA, "alice", fmt.Sprintf("room-%d-%d", tc.from, tc.to))
			first, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "first"})
			w, jw := r.join(t, tc.from, dialOpts{credential: credA, streamName: "w", metadata: `{"v":1}`})
			p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p"})
			q, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "q"})
			first.expect("stream_joined")
			first.expect("stream_joined")
			first.expect("stream_joined")
			w.expect("stream_joined")
			w.expect("stream_joined")
			p.expect("stream_joined")
			w.token("1")
			w.token("2")
			for _, x := range []*client{first, p, q} {
				x.wantTokenOf("w", "1", 1)
				x.wantTokenOf("w", "2", 2)
			}

			w2 := dial(t, r.linkAt(tc.to), dialOpts{credential: credA, streamName: "w"})
			j := w2.expectMsg("joined")
			w.wantCloseAfter(codeLink, "stream_displaced")
			if j.m["stream_id"] != jw["stream_id"] || j.m["resumed"] != true || num(t, j.m, "last_seq") != 2 {
				t.Fatalf("joined %s", j.raw)
			}
			if got := member(t, j.raw, "metadata"); got != `{"v":1}` {
				t.Errorf("resumed metadata %s, want the previous {\"v\":1}", got)
			}
			if got, want := fmt.Sprint(peerNames(t, j.m)), "[first p q]"; got != want {
				t.Errorf("resumed peers %s, want %s", got, want)
			}
			// Peers see no stream_left or stream_joined: the next frame is
			// the resumed stream's next token.
			w2.token("3")
			for _, x := range []*client{first, p, q} {
				x.wantTokenOf("w", "3", 3)
			}
			// The resumed stream keeps its place for later joiners.
			_, jl := r.join(t, tc.to, dialOpts{credential: credB, streamName: "late"})
			if got, want := fmt.Sprint(peerNames(t, jl)), "[first w p q]"; got != want {
				t.Errorf("later joiner's peers %s, want %s", got, want)
			}
			// And the resumed connection reads as before.
			q.token("from q")
			w2.expect("stream_joined") // late
			w2.wantToken("q", "from q", 1)
		})
	}
}

// C45: after a leave (close handshake or an AMS close code) peers get
// stream_left at once; a rejoin has the same stream_id, no resumed, and is
// announced by stream_joined.
func TestC45LeaveRejoin(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p"})
	q, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "q"})
	p.expect("stream_joined")

	var id any
	for i, closeCode := range []websocket.StatusCode{websocket.StatusNormalClosure, 4000, websocket.StatusNormalClosure} {
		gw := i % 2
		w, jw := r.join(t, gw, dialOpts{credential: credA, streamName: "w"})
		if jw["resumed"] != nil || num(t, jw, "last_seq") != i {
			t.Fatalf("join %d: %v", i, jw)
		}
		if id == nil {
			id = jw["stream_id"]
		} else if jw["stream_id"] != id {
			t.Fatalf("rejoin has stream_id %v, want %v", jw["stream_id"], id)
		}
		for _, x := range []*client{p, q} {
			if m := x.expect("stream_joined"); m["stream_id"] != id || num(t, m, "last_seq") != i {
				t.Fatalf("stream_joined %v", m)
			}
		}
		w.token("x")
		start := time.Now()
		_ = w.ws.Close(closeCode, "bye")
		for _, x := range []*client{p, q} {
			x.wantToken("w", "x", i+1)
			if m := x.expect("stream_left"); m["stream_id"] != id || num(t, m, "last_seq") != i+1 {
				t.Fatalf("stream_left %v", m)
			}
		}
		// At once: well within the 10 s grace of a lost connection.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("stream_left %s after a close with %d", d, closeCode)
		}
	}
}

// C44, C50: two connections of one stream that arrive at once, one on the
// gateway that holds it and one on the other, settle on one writer. A
// resume on the holder takes a short way that writes no stream record,
// while one on the other gateway takes the stream over with a record of
// the next epoch; whatever their order, one connection is displaced
// (4001), the other writes on with the next seq, and peers on either
// gateway see no membership frame of the stream. Rounds alternate the
// reader's gateway and delay the dial to the holder by 0–7 ms, with the
// first connection still attached or lost.
func TestC44ConcurrentResumesOnBothGateways(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	for _, lost := range []bool{false, true} {
		name := "attached"
		if lost {
			name = "lost"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			displacedFirst := 0
			for round := range 8 {
				r := newRoom(t, sys, credA, "alice", fmt.Sprintf("race-%s-%d", name, round))
				pgw := round % 2
				p, _ := r.join(t, pgw, dialOpts{credential: credB, streamName: "p"})
				w, jw := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
				p.expect("stream_joined")
				w.token("a")
				p.wantTokenOf("w", "a", 1)
				if lost {
					_ = w.ws.CloseNow()
				}

				var cs [2]*client
				var errs [2]error
				var wg sync.WaitGroup
				start := make(chan struct{})
				for gw := range 2 {
					wg.Go(func() {
						<-start
						if gw == 0 {
							// Vary the interleaving, not a synchronisation:
							// the holder's short way is the faster.
							time.Sleep(time.Duration(round) * time.Millisecond)
						}
						cs[gw], errs[gw] = tryDialURL(t, connectURL(r.linkAt(gw)), dialOpts{credential: credA, streamName: "w"})
					})
				}
				close(start)
				wg.Wait()
				for gw, c := range cs {
					if errs[gw] != nil {
						t.Fatalf("round %d: dial on gateway %d: %v", round, gw, errs[gw])
					}
					j := c.expectMsg("joined")
					if j.m["stream_id"] != jw["stream_id"] || j.m["resumed"] != true || num(t, j.m, "last_seq") != 1 {
						t.Fatalf("round %d: joined on gateway %d: %s", round, gw, j.raw)
					}
				}
				if !lost {
					w.wantCloseAfter(codeLink, "stream_displaced")
				}

				// One of the two is displaced.
				var loser int
				select {
				case <-cs[0].done:
					loser = 0
				case <-cs[1].done:
					loser = 1
				case <-time.After(wait):
					t.Fatalf("round %d: neither connection was displaced within %s", round, wait)
				}
				if code, reason := cs[loser].closed(wait); code != codeLink || reason != "stream_displaced" {
					t.Fatalf("round %d: the connection on gateway %d closed %d %q, want %d stream_displaced", round, loser, code, reason, codeLink)
				}
				displacedFirst += loser
				// The other writes on, to readers on both gateways.
				sv := cs[1-loser]
				sv.token("b")
				p.wantTokenOf("w", "b", 2)
				q, jq := r.join(t, 1-pgw, dialOpts{credential: credB, streamName: "q"})
				if got, want := fmt.Sprint(peerNames(t, jq)), "[p w]"; got != want {
					t.Fatalf("round %d: a later joiner's peers %s, want %s", round, got, want)
				}
				sv.expectOf("q", "stream_joined")
				sv.token("c")
				p.wantTokenOf("w", "c", 3)
				// b may not have reached q's gateway when q joined: then
				// q's joined lists w at seq 1 and b is live for q (C39).
				for _, peer := range peersOf(t, jq) {
					if peer["stream_name"] == "w" && num(t, peer, "last_seq") == 1 {
						q.wantTokenOf("w", "b", 2)
					}
				}
				q.wantTokenOf("w", "c", 3)
				select {
				case <-sv.done:
					t.Fatalf("round %d: the remaining connection on gateway %d closed too: %v", round, 1-loser, sv.closeErr)
				default:
				}
			}
			t.Logf("the connection on gateway 1 was the one displaced in %d of 8 rounds", displacedFirst)
		})
	}
}

// C50: a connection lost without a close handshake stays present for the
// 10 s grace, then peers get stream_left; a same-account same-name connect
// inside the grace resumes it with no stream_left at all.
func TestC50LostConnection(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	const grace = 10 * time.Second

	t.Run("expires", func(t *testing.T) {
		t.Parallel()
		r := newRoom(t, sys, credA, "alice", "expires")
		p, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "p"})
		w, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
		p.expect("stream_joined")
		w.token("x")
		p.wantToken("w", "x", 1)
		start := time.Now()
		_ = w.ws.CloseNow() // TCP closed, no close frame
		// Still present inside the grace, on both gateways.
		for gw := 0; gw < 2; gw++ {
			n, jn := r.join(t, gw, dialOpts{credential: credB, streamName: fmt.Sprintf("n%d", gw)})
			if got := fmt.Sprint(peerNames(t, jn)); got != "[p w]" && got != "[p w n0]" {
				t.Errorf("peers during the grace %s, want p and w", got)
			}
			n.close()
		}
		// The next frame about w is its stream_left, after the grace.
		var m msg
		for {
			m = p.nextMsg(grace + 5*time.Second)
			if m.m["stream_name"] == "w" {
				break
			}
		}
		d := time.Since(start)
		if m.m["type"] != "stream_left" || m.m["stream_name"] != "w" || num(t, m.m, "last_seq") != 1 {
			t.Fatalf("got %s, want w's stream_left", m.raw)
		}
		if d < grace-500*time.Millisecond || d > grace+5*time.Second {
			t.Errorf("stream_left %s after the connection was lost, want after the %s grace", d, grace)
		}
	})

	for i, tc := range []struct {
		name string
		lose func(c *client)
		to   int
	}{
		{"resumed after a TCP drop", func(c *client) { _ = c.ws.CloseNow() }, 0},
		{"resumed on the other gateway after a TCP drop", func(c *client) { _ = c.ws.CloseNow() }, 1},
		{"resumed after a 1001 close", func(c *client) { _ = c.ws.Close(websocket.StatusGoingAway, "") }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoom(t, sys, credA, "alice", fmt.Sprintf("resumed-%d", i))
			p, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "p"})
			w, jw := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
			p.expect("stream_joined")
			w.token("x")
			p.wantToken("w", "x", 1)
			start := time.Now()
			tc.lose(w)
			// Whether or not the gateway noticed the drop yet, the
			// reconnect resumes and the peer sees no membership frame.
			w2, j := r.join(t, tc.to, dialOpts{credential: credA, streamName: "w"})
			if j["resumed"] != true || j["stream_id"] != jw["stream_id"] || num(t, j, "last_seq") != 1 {
				t.Fatalf("joined %v", j)
			}
			if time.Since(start) > grace {
				t.Fatalf("reconnect took longer than the grace")
			}
			w2.token("y")
			p.wantToken("w", "y", 2)
			// Past the end of the first connection's grace, still nothing:
			// a token sent after it is p's next frame.
			<-time.After(time.Until(start.Add(grace + time.Second)))
			w2.token("z")
			p.wantToken("w", "z", 3)
		})
	}
}

// C51, C38: clients on different replicas of one conversation interoperate
// as on one: tokens every way, membership, metadata, and a burst on one
// stream arriving complete and in order at readers on both gateways.
func TestC51Replicas(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	r := newRoom(t, sys, credA, "alice", "room")
	a, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	b, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "b"})
	c, jc := r.join(t, 1, dialOpts{credential: credC, streamName: "c", metadata: `{"c":true}`})
	if got := fmt.Sprint(peerNames(t, jb)); got != "[a]" {
		t.Errorf("b's peers %s", got)
	}
	if got := fmt.Sprint(peerNames(t, jc)); got != "[a b]" {
		t.Errorf("c's peers %s", got)
	}
	if m := a.expect("stream_joined"); m["stream_name"] != "b" {
		t.Fatalf("a: %v", m)
	}
	if m := a.expectMsg("stream_joined"); member(t, m.raw, "metadata") != `{"c":true}` {
		t.Fatalf("a: %s", m.raw)
	}
	b.expect("stream_joined")

	all := map[string]*client{"a": a, "b": b, "c": c}
	for name, x := range all {
		x.token("hi from " + name)
	}
	for name, x := range all {
		got := map[string]bool{}
		for range 2 {
			m := x.expect("token")
			if m["stream_name"] == name || num(t, m, "seq") != 1 || m["data"] != "hi from "+m["stream_name"].(string) {
				t.Errorf("%s got %v", name, m)
			}
			got[m["stream_name"].(string)] = true
		}
		if len(got) != 2 {
			t.Errorf("%s got tokens of %v", name, got)
		}
	}
	c.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"c": false}})
	for _, x := range []*client{a, b} {
		if m := x.expectMsg("stream_metadata"); member(t, m.raw, "metadata") != `{"c":false}` || num(t, m.m, "seq") != 2 {
			t.Errorf("stream_metadata %s", m.raw)
		}
	}

	// A burst on a, read on both gateways while b also writes. It stays
	// under the 1024-frame queue of a reader (spec 4.5), so that it holds
	// however slowly the test's readers parse.
	const n = 900
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			_ = a.ws.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, `{"type":"token","data":"%d"}`, i))
		}
	})
	wg.Go(func() {
		for i := range 100 {
			_ = b.ws.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, `{"type":"token","data":"b%d"}`, i))
		}
	})
	wg.Wait()
	for name, x := range map[string]*client{"b": b, "c": c} {
		nextA, nextB := 0, 0
		for nextA < n || (name == "c" && nextB < 100) {
			m := x.expect("token")
			switch m["stream_name"] {
			case "a":
				if m["data"] != fmt.Sprint(nextA) || num(t, m, "seq") != nextA+2 {
					t.Fatalf("%s got a's %v, want data %d seq %d", name, m, nextA, nextA+2)
				}
				nextA++
			case "b":
				if m["data"] != fmt.Sprintf("b%d", nextB) || num(t, m, "seq") != nextB+2 {
					t.Fatalf("%s got b's %v, want data b%d seq %d", name, m, nextB, nextB+2)
				}
				nextB++
			default:
				t.Fatalf("%s got %v", name, m)
			}
		}
	}
	// Leaving on one gateway reaches the other.
	b.close()
	a.until("stream_left", wait)
	c.until("stream_left", wait)
}

// C50: connections lost while the gateway checkpoints its streams still
// leave after the grace, and the gateway keeps serving. (The checkpoint
// interval and the grace are lowered to make the two meet often.)
func TestC50LostDuringCheckpoints(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.Checkpoint = time.Millisecond
		cfg.Hub.Grace = time.Second
	}})
	creds := make([]string, 5)
	for i := range creds {
		_, creds[i] = account(t, sys, fmt.Sprintf("acct%d", i))
	}
	r := newRoom(t, sys, creds[0], "acct0", "room")
	p, _ := r.join(t, 0, dialOpts{credential: creds[4], streamName: "p"})
	const n = 40
	for round := 0; round < 5; round++ {
		var ws []*client
		for i := 0; i < n; i++ {
			w, _ := r.join(t, 0, dialOpts{credential: creds[i%4], streamName: fmt.Sprintf("w%d", i)})
			p.until("stream_joined", wait)
			w.token("x") // a seq to checkpoint
			ws = append(ws, w)
		}
		for _, w := range ws {
			go w.ws.CloseNow()
		}
		left := 0
		for left < n {
			if m := p.next(5 * time.Second); m["type"] == "stream_left" {
				left++
			}
		}
	}
}

// C45: once the close handshake completed, the stream has left: an
// immediate reconnect with the same name, on the same gateway or the
// other, is a rejoin (no resumed), never a resume of the closed
// connection.
func TestC45RejoinRightAfterClose(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	r := newRoom(t, sys, credA, "alice", "room")
	for i := 0; i < 80; i++ {
		gw := 0
		if i >= 60 {
			gw = i % 2
		}
		w, j := r.join(t, gw, dialOpts{credential: credA, streamName: "w"})
		if j["resumed"] != nil || num(t, j, "last_seq") != i {
			t.Fatalf("round %d: joined %v, want a rejoin at last_seq %d", i, j, i)
		}
		w.token(fmt.Sprint(i))
		if err := w.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
	}
}

// C40, C45: readers on both gateways see each leave and rejoin of a stream
// exactly once and in order (stream_joined, its events, stream_left), even
// when the rejoins follow the closes at once.
func TestC40RejoinsSeenInOrder(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	readers := []*client{nil, nil}
	for gw := range readers {
		readers[gw], _ = r.join(t, gw, dialOpts{credential: credB, streamName: fmt.Sprintf("reader%d", gw)})
	}
	readers[0].expect("stream_joined")
	const rounds = 10
	for i := 0; i < rounds; i++ {
		w, _ := r.join(t, i%2, dialOpts{credential: credA, streamName: "w"})
		w.token(fmt.Sprint(i))
		if err := w.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
	}
	var want []string
	for i := 0; i < rounds; i++ {
		want = append(want, fmt.Sprintf("joined(%d)", i), fmt.Sprint(i+1), fmt.Sprintf("left(%d)", i+1))
	}
	for gw, x := range readers {
		var got []string
		for len(got) < len(want) {
			var m msg
			select {
			case m = <-x.msgs:
			case <-time.After(wait):
				t.Fatalf("reader on gw%d stalled after %v", gw, got)
			}
			switch m.m["type"] {
			case "token":
				got = append(got, fmt.Sprint(m.m["seq"]))
			case "stream_joined":
				got = append(got, fmt.Sprintf("joined(%v)", m.m["last_seq"]))
			case "stream_left":
				got = append(got, fmt.Sprintf("left(%v)", m.m["last_seq"]))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("reader on gw%d got\n%v\nwant\n%v", gw, got, want)
		}
	}
}
