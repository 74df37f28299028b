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

func TestTailRing(t *testing.T) {
	var tl tail
	if tl.holds(1, 1) {
		t.Fatal("an empty tail holds 1")
	}
	for seq := uint64(1); seq <= 10; seq++ {
		tl.add([]byte{byte(seq)}, seq, int64(seq), 4, 1<<10)
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
	tl.add([]byte{20}, 20, 20, 4, 1<<10)
	if tl.holds(10, 20) || !tl.holds(20, 20) {
		t.Fatal("the tail spans a gap")
	}
	if got := fmt.Sprint(tailSeqs(&tl, 20)); got != "[20]" {
		t.Fatalf("after the gap: %s", got)
	}
	// A byte bound: the oldest go out first; a frame over it empties the
	// tail.
	var small tail
	for seq := uint64(1); seq <= 5; seq++ {
		small.add(make([]byte, 40), seq, 0, 8, 100)
	}
	if got := fmt.Sprint(tailSeqs(&small, 4)); got != "[4 5]" || small.holds(3, 5) || small.bytes != 80 {
		t.Fatalf("with 100 bytes of 40-byte frames: %s, %d bytes", got, small.bytes)
	}
	small.add(make([]byte, 101), 6, 0, 8, 100)
	if small.holds(6, 6) || small.n != 0 || small.bytes != 0 {
		t.Fatal("a frame over the byte bound was kept")
	}
	small.add(make([]byte, 10), 7, 0, 8, 100)
	if !small.holds(7, 7) {
		t.Fatal("the tail did not start again after an oversized frame")
	}
	var off tail
	off.add([]byte{1}, 1, 1, -1, 1<<10)
	if off.holds(1, 1) || off.ev != nil {
		t.Fatal("a disabled tail kept an event")
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
