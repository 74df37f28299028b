package hub

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
)

func tailSeqs(t *tail, first uint64) []uint64 {
	var out []uint64
	t.each(first, func(_ []byte, seq uint64) { out = append(out, seq) })
	return out
}

func budget(events, bytes int) *tailBudget {
	return &tailBudget{events: events, bytes: bytes, total: 1 << 30}
}

func TestTailRing(t *testing.T) {
	b4 := budget(4, 1<<10)
	var tl tail
	if tl.holds(1, 1) {
		t.Fatal("an empty tail holds 1")
	}
	for seq := uint64(1); seq <= 10; seq++ {
		tl.add([]byte{byte(seq)}, seq, int64(seq), b4)
	}
	if !tl.holds(7, 10) || tl.holds(6, 10) || tl.holds(7, 9) || tl.holds(11, 10) {
		t.Fatal("holds is wrong after wrapping")
	}
	if got := fmt.Sprint(tailSeqs(&tl, 7)); got != "[7 8 9 10]" {
		t.Fatalf("from 7: %s", got)
	}
	if got := fmt.Sprint(tailSeqs(&tl, 9)); got != "[9 10]" {
		t.Fatalf("from 9: %s", got)
	}
	if tl.at(7) != 7 || tl.at(10) != 10 {
		t.Fatalf("delivery times %d, %d", tl.at(7), tl.at(10))
	}
	// A skipped gap starts the tail afresh: it never spans one.
	tl.add([]byte{20}, 20, 20, b4)
	if tl.holds(10, 20) || !tl.holds(20, 20) {
		t.Fatal("the tail spans a gap")
	}
	if got := fmt.Sprint(tailSeqs(&tl, 20)); got != "[20]" {
		t.Fatalf("after the gap: %s", got)
	}
	// A byte bound: the oldest go out first; a frame over it empties the
	// tail.
	b100 := budget(8, 100)
	var small tail
	for seq := uint64(1); seq <= 5; seq++ {
		small.add(make([]byte, 40), seq, 0, b100)
	}
	if got := fmt.Sprint(tailSeqs(&small, 4)); got != "[4 5]" || small.holds(3, 5) || small.bytes != 80 {
		t.Fatalf("with 100 bytes of 40-byte frames: %s, %d bytes", got, small.bytes)
	}
	small.add(make([]byte, 101), 6, 0, b100)
	if small.holds(6, 6) || small.n != 0 || small.bytes != 0 {
		t.Fatal("a frame over the byte bound was kept")
	}
	small.add(make([]byte, 10), 7, 0, b100)
	if !small.holds(7, 7) {
		t.Fatal("the tail did not start again after an oversized frame")
	}
	var off tail
	off.add([]byte{1}, 1, 1, budget(-1, 1<<10))
	if off.holds(1, 1) || off.ev != nil {
		t.Fatal("a disabled tail kept an event")
	}
	if used := b100.used.Load(); used != int64(small.bytes) {
		t.Fatalf("the budget counts %d bytes, the tail holds %d", used, small.bytes)
	}
}

// The tails of a gateway share one total: a stream that finds it taken
// keeps no tail (its resumes read JetStream) until another frees room,
// and a tail that goes gives its bytes back.
func TestTailTotal(t *testing.T) {
	b := &tailBudget{events: 8, bytes: 100, total: 150}
	var a, c tail
	for seq := uint64(1); seq <= 2; seq++ {
		a.add(make([]byte, 50), seq, 0, b)
	}
	c.add(make([]byte, 50), 1, 0, b)
	if !a.holds(1, 2) || !c.holds(1, 1) || b.used.Load() != 150 {
		t.Fatalf("within the total: %v %v, %d used", a.holds(1, 2), c.holds(1, 1), b.used.Load())
	}
	// c's next event makes room from c's own oldest, not from a.
	c.add(make([]byte, 50), 2, 0, b)
	if !c.holds(2, 2) || c.holds(1, 2) || !a.holds(1, 2) || b.used.Load() != 150 {
		t.Fatalf("at the total: a %v, c %v, %d used", tailSeqs(&a, 1), tailSeqs(&c, 2), b.used.Load())
	}
	// A third tail finds no room: it keeps nothing and takes nothing.
	var d tail
	d.add(make([]byte, 10), 1, 0, b)
	if d.holds(1, 1) || d.n != 0 || b.used.Load() != 150 {
		t.Fatalf("over the total: d holds %v, %d used", tailSeqs(&d, 1), b.used.Load())
	}
	// a's stream goes: its room is free for d's next event.
	a.close(b)
	a.add(make([]byte, 10), 3, 0, b)
	if a.n != 0 || b.used.Load() != 50 {
		t.Fatalf("a closed tail took an event, or kept its bytes: %d used", b.used.Load())
	}
	d.add(make([]byte, 10), 2, 0, b)
	if !d.holds(2, 2) || b.used.Load() != 60 {
		t.Fatalf("after a went: d %v, %d used", tailSeqs(&d, 2), b.used.Load())
	}
	c.free(b)
	d.free(b)
	if b.used.Load() != 0 || c.ev != nil {
		t.Fatalf("freed tails still count %d bytes", b.used.Load())
	}
}

// The tail serves only what JetStream surely retains; near the edge of
// max_events or max_age, JetStream answers (and sends the replay_gap).
func TestTailWithinRetention(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := dataplane.Config{MaxEvents: 100, MaxAge: 10 * time.Second}
	recent := now.Add(-5 * time.Second).UnixNano()
	for _, tc := range []struct {
		first, last uint64
		at          int64
		want        bool
	}{
		{1, 30, recent, true},
		{1, 36, recent, true},
		{1, 37, recent, false}, // 37 + 64 > 100
		{1, 10, now.Add(-9500 * time.Millisecond).UnixNano(), false},
	} {
		if got := retained(cfg, tc.first, tc.last, tc.at, now); got != tc.want {
			t.Errorf("%d to %d delivered %s ago: %v, want %v", tc.first, tc.last, now.Sub(time.Unix(0, tc.at)), got, tc.want)
		}
	}
	if !retained(dataplane.Config{}, 1, 1000, 0, now) {
		t.Error("no retention bounds, yet not retained")
	}
}

// A resume that missed only the newest events is served from the
// gateway's memory: here JetStream cannot be read at all (direct gets
// off) and the reader still gets what it missed, in order, then live
// events. One that missed more reads JetStream as before (spec 5.1).
func TestResumeFromTail(t *testing.T) {
	h, plane := startHubWith(t, slog.DiscardHandler, Config{Gateway: "gw-test", TailEvents: 64})
	ts := newTestStream(t, h, plane)
	// A first reader makes the gateway serve the conversation and get
	// the stream's events live.
	first, watcher := ts.observe(-1)
	ts.live(0)
	ts.announced()
	ts.publish(1, 100)
	first.tokens(t, watcher, 100)
	ts.waitStored(100)

	setDirect(t, plane, false)
	sink, conn := ts.observe(60) // the tail holds 37 to 100
	wantRun(t, sink.tokens(t, conn, 40), 61, 100)
	ts.publish(101, 105)
	wantRun(t, sink.tokens(t, conn, 5), 101, 105)

	setDirect(t, plane, true)
	sink, conn = ts.observe(10) // older than the tail: JetStream
	wantRun(t, sink.tokens(t, conn, 95), 11, 105)
}

// A quiet stream's tail is freed after Config.TailQuiet, and every tail
// of a conversation the gateway no longer serves gives its bytes back to
// the gateway's total.
func TestTailFreed(t *testing.T) {
	h, plane := startHubWith(t, slog.DiscardHandler, Config{Gateway: "gw-test", TailQuiet: 500 * time.Millisecond})
	ts := newTestStream(t, h, plane)
	sink, conn := ts.observe(-1)
	ts.live(0)
	c := ts.announced()
	tailOf := func() (*tail, int64) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return &c.streams[ts.id].tail, h.tails.used.Load()
	}
	ts.publish(1, 10)
	sink.tokens(t, conn, 10)
	if tl, used := tailOf(); used == 0 || used != int64(tl.bytes) || tl.n != 10 {
		t.Fatalf("after 10 events: %d used, the tail holds %d events", used, tl.n)
	}
	waitUntil(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.streams[ts.id].tail.ev == nil && h.tails.used.Load() == 0
	})
	ts.publish(11, 12)
	sink.tokens(t, conn, 2)
	tl, used := tailOf()
	if used == 0 || tl.n != 2 {
		t.Fatalf("after the quiet tail was freed: %d used, %d events", used, tl.n)
	}
	conn.Close(1000, false)
	c.mu.Lock()
	closed := tl.closed // the conversation stopped on the last close
	c.mu.Unlock()
	if !closed || h.tails.used.Load() != 0 {
		t.Fatalf("after the conversation stopped: tail closed %v, %d bytes used", closed, h.tails.used.Load())
	}
}

// Events stored in JetStream that never came through the gateway's
// subscription (published while it subscribed, or lost with a NATS
// connection) are read back once their stream is quiet for two ticks:
// the hub's tick loop checks the tails of every conversation it serves.
func TestTailCheckReadsBackLostEvents(t *testing.T) {
	h, plane := startHubWith(t, slog.DiscardHandler, Config{Gateway: "gw-test"})
	ts := newTestStream(t, h, plane)
	sink, conn := ts.observe(-1)
	ts.live(0)
	c := ts.announced()
	ts.publish(1, 2)
	if got := sink.tokens(t, conn, 2); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("live tokens %v, want 1 and 2", got)
	}
	// Seqs 3 to 5 reach JetStream but not this gateway.
	if err := c.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	ts.publish(3, 5)
	ts.waitStored(5)
	if got := sink.tokens(t, conn, 3); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("tokens read back %v, want 3, 4 and 5", got)
	}
}

// A tick while NATS is away picks no stream for a tail check, and leaves
// each due for the first tick after it is back.
func TestTickChecksOnlyWhileConnected(t *testing.T) {
	h := &Hub{tailQuietTicks: 8}
	c := newConv(h, newConversation())
	s := c.newStream("str_0123456789abcdef0123456789")
	s.announced, s.lastTick = true, c.ticks.Load()
	c.streams[s.info.ID] = s
	var quiet []quietStream
	for range 4 {
		if quiet = c.tick(quiet[:0], false, false); len(quiet) != 0 {
			t.Fatalf("a tick without NATS picked %d streams for a check", len(quiet))
		}
	}
	if quiet = c.tick(quiet[:0], true, false); len(quiet) != 1 || quiet[0].s != s {
		t.Fatalf("the first tick with NATS picked %d streams, want the quiet one", len(quiet))
	}
	if quiet = c.tick(quiet[:0], true, false); len(quiet) != 0 {
		t.Fatalf("a stream checked once was picked again (%d) before a new event", len(quiet))
	}
}

// A conversation whose streams have no tail to let go of and no check due
// is idle: the ticks pass it by without its lock until an event comes.
func TestIdleConversationsArePassedBy(t *testing.T) {
	h := &Hub{tailQuietTicks: 8}
	c := newConv(h, newConversation())
	s := c.newStream("str_0123456789abcdef0123456789")
	c.streams[s.info.ID] = s
	c.mu.Lock()
	c.announce(s)
	c.mu.Unlock()
	var quiet []quietStream
	for range 2 {
		quiet = c.tick(quiet[:0], true, false)
	}
	if len(quiet) != 1 || !c.idle.Load() {
		t.Fatalf("after two quiet ticks: %d streams picked, idle %v; want 1, true", len(quiet), c.idle.Load())
	}
	// Ticks of an idle conversation do not wait for its lock.
	c.mu.Lock()
	passed := make(chan struct{})
	go func() {
		for range 4 {
			c.tick(nil, true, false)
		}
		close(passed)
	}()
	select {
	case <-passed:
	case <-time.After(10 * time.Second):
		t.Fatal("ticks of an idle conversation waited for its lock")
	}
	// An event ends the idleness, and the stream is checked again.
	c.stir(s)
	c.mu.Unlock()
	if c.idle.Load() {
		t.Fatal("idle after an event")
	}
	for range 2 {
		quiet = c.tick(quiet[:0], true, false)
	}
	if len(quiet) != 1 || quiet[0].s != s {
		t.Fatalf("after an event and two quiet ticks: %d streams picked, want 1", len(quiet))
	}
}
