package streame2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C39, C40: while a stream is written without pause, a reader joining on
// either gateway gets, as its first event of that stream, seq = the
// last_seq its joined announced + 1, and then every seq in order.
func TestC39FirstLiveEventWhileStreaming(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	w, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
	// The writer keeps at most a window of tokens ahead of an observer,
	// so that no reader's queue can overflow.
	obs, _ := r.join(t, 1, dialOpts{observe: true})
	var seen atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case m := <-obs.msgs:
				if m.m["type"] == "token" {
					seen.Add(1)
				}
			case <-ctx.Done():
				return
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := int64(0); ctx.Err() == nil; i++ {
			for i-seen.Load() >= 64 && ctx.Err() == nil {
				<-tick.C // wait for the observer to catch up
			}
			if err := w.ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"token","data":"%d"}`, i)); err != nil {
				return
			}
		}
	})
	defer func() { cancel(); wg.Wait() }()

	for i := 0; i < 12; i++ {
		gw := i % 2
		c, j := r.join(t, gw, dialOpts{credential: credB, streamName: fmt.Sprintf("r%d", i)})
		ps := peersOf(t, j)
		if len(ps) == 0 || ps[0]["stream_name"] != "w" {
			t.Fatalf("peers %v", ps)
		}
		last := num(t, ps[0], "last_seq")
		for k := 1; k <= 50; k++ {
			m := c.nextMsg(wait)
			if m.m["type"] != "token" || m.m["stream_name"] != "w" {
				k--
				continue // membership of later readers
			}
			if got := num(t, m.m, "seq"); got != last+k {
				t.Fatalf("reader %d on gw%d: event %d has seq %d, want %d (joined said last_seq %d)", i, gw, k, got, last+k, last)
			}
		}
		c.close()
	}
}

// C40: no event of a stream arrives before its stream_joined nor after its
// stream_left, with writer and reader on different gateways, even when the
// writer emits at once after connecting and closes at once after emitting.
func TestC40AnnouncedBeforeEvents(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	readers := make([]*client, 2)
	for gw := range readers {
		readers[gw], _ = r.join(t, gw, dialOpts{credential: credB, streamName: fmt.Sprintf("reader%d", gw)})
	}
	readers[0].expect("stream_joined")
	const rounds = 10
	for i := 0; i < rounds; i++ {
		w := dial(t, r.linkAt(i%2), dialOpts{credential: credA, streamName: fmt.Sprintf("w%d", i)})
		for k := 0; k < 5; k++ {
			w.token(fmt.Sprint(k)) // before joined is read
		}
		w.expect("joined")
		w.close()
	}
	// Per stream: joined, its 5 tokens, left; streams may interleave.
	for gw, x := range readers {
		state := map[string]int{} // tokens seen; -1 before joined, 6 after left
		for done := 0; done < rounds; {
			m := x.nextMsg(wait)
			name, _ := m.m["stream_name"].(string)
			n, ok := state[name]
			if !ok {
				n = -1
			}
			switch typ := m.m["type"]; {
			case typ == "stream_joined" && n == -1:
				state[name] = 0
			case typ == "token" && n >= 0 && n < 5 && num(t, m.m, "seq") == n+1:
				state[name] = n + 1
			case typ == "stream_left" && n == 5:
				state[name] = 6
				done++
			default:
				t.Fatalf("reader on gw%d: %s after %d events of %s", gw, m.raw, n, name)
			}
		}
	}
}

// C44: concurrent connects of one account and name, on both gateways,
// leave exactly one connection owning the stream; every other one is
// displaced; peers see one stream_joined and no stream_left, and the seq
// goes on.
func TestC44ConcurrentDisplacement(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p"})
	q, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "q"})
	p.expect("stream_joined")

	seq := 0
	for round := 0; round < 4; round++ {
		const n = 4
		conns := make([]*client, n)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() { conns[i] = dial(t, r.linkAt(i%2), dialOpts{credential: credA, streamName: "w"}) })
		}
		wg.Wait()
		// Every one is joined first (C28), on one stream id.
		var id any
		for _, c := range conns {
			m := c.nextMsg(wait)
			if m.m["type"] != "joined" {
				t.Fatalf("round %d: first frame %s, want joined", round, m.raw)
			}
			if id == nil {
				id = m.m["stream_id"]
			} else if m.m["stream_id"] != id {
				t.Fatalf("stream ids %v and %v", id, m.m["stream_id"])
			}
		}
		// All but one are displaced.
		closed := make(chan int, n)
		for i, c := range conns {
			go func() { <-c.done; closed <- i }()
		}
		gone := map[int]bool{}
		for len(gone) < n-1 {
			select {
			case i := <-closed:
				gone[i] = true
				if code, reason, _ := conns[i].closeCode(wait); code != codeLink || reason != "stream_displaced" {
					t.Errorf("round %d: closed %d %q, want 4001 stream_displaced", round, code, reason)
				}
			case <-time.After(wait):
				t.Fatalf("round %d: %d of %d connections displaced", round, len(gone), n-1)
			}
		}
		var alive *client
		for i, c := range conns {
			if !gone[i] {
				alive = c
			}
		}
		alive.token(fmt.Sprint(round))
		seq++
		for _, x := range []*client{p, q} {
			m := x.nextMsg(wait)
			if round == 0 && m.m["type"] == "stream_joined" {
				m = x.nextMsg(wait)
			}
			if m.m["type"] != "token" || m.m["data"] != fmt.Sprint(round) || num(t, m.m, "seq") != seq {
				t.Fatalf("round %d: peer got %s, want w's token seq %d (no membership frame)", round, m.raw, seq)
			}
		}
	}
}
