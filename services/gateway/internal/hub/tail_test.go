package hub

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/ids"
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
		tl.add([]byte{byte(seq)}, seq, int64(seq), 4)
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
	tl.add([]byte{20}, 20, 20, 4)
	if tl.holds(10, 20) || !tl.holds(20, 20) {
		t.Fatal("the tail spans a gap")
	}
	if got := fmt.Sprint(tailSeqs(&tl, 20)); got != "[20]" {
		t.Fatalf("after the gap: %s", got)
	}
	var off tail
	off.add([]byte{1}, 1, 1, -1)
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
	ctx := t.Context()
	info := &admission.Conversation{ID: ids.NewConversationID(time.Now()), Namespace: "acme", Alias: "room"}
	streamID := "str_0123456789abcdef0123456789"
	subj, err := subject.Event(info.ID, streamID)
	if err != nil {
		t.Fatal(err)
	}
	wire := frame.Stream{ID: streamID, Name: "w", Owner: "acc_01J00000000000000000"}
	publish := func(from, to uint64) {
		t.Helper()
		for seq := from; seq <= to; seq++ {
			if err := plane.PublishEvent(subj, frame.AppendToken(nil, &wire, time.Now(), fmt.Sprintf("t%d", seq), seq), time.Time{}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A first reader makes the gateway serve the conversation and get
	// the stream's events live.
	first := newTestSink()
	watcher, err := h.Join(ctx, JoinRequest{Conversation: info, Observer: true, Transport: "test"}, first)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(1000, false)
	key, _ := subject.PresenceKey(info.ID, streamID)
	rec := presence.Record{StreamID: streamID, Name: wire.Name, Owner: wire.Owner, Metadata: "{}",
		Gateway: "gw-other", Epoch: 1, State: presence.Live, LastSeq: 0}
	if _, err := presence.Put(ctx, plane.Presence, key, &rec, 0); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	c := h.convs[info.ID]
	h.mu.Unlock()
	waitUntil(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.streams[streamID]
		return s != nil && s.announced
	})
	publish(1, 100)
	first.tokens(t, watcher, 100)
	for {
		last, err := plane.LastSeq(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if last == 100 {
			break
		}
		time.Sleep(2 * time.Millisecond) // polling a visible condition; the test's deadline bounds it
	}

	js, err := jetstream.New(plane.Conn())
	if err != nil {
		t.Fatal(err)
	}
	setDirect := func(on bool) {
		t.Helper()
		st, err := js.Stream(ctx, dataplane.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.AllowDirect = on
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	resume := func(from uint64) (*testSink, *Conn) {
		t.Helper()
		sink := newTestSink()
		conn, err := h.Join(ctx, JoinRequest{
			Conversation: info, Observer: true, Transport: "test",
			Cursor: &connreq.Cursor{Positions: map[string]uint64{streamID: from}, Order: []string{streamID}},
		}, sink)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(1000, false) })
		return sink, conn
	}
	want := func(got []uint64, from, to uint64) {
		t.Helper()
		if len(got) != int(to-from+1) || got[0] != from || got[len(got)-1] != to {
			t.Fatalf("tokens %v, want %d to %d", got, from, to)
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Fatalf("tokens %v, want %d to %d in order", got, from, to)
			}
		}
	}

	setDirect(false)
	sink, conn := resume(60) // the tail holds 37 to 100
	want(sink.tokens(t, conn, 40), 61, 100)
	publish(101, 105)
	want(sink.tokens(t, conn, 5), 101, 105)

	setDirect(true)
	sink, conn = resume(10) // older than the tail: JetStream
	want(sink.tokens(t, conn, 95), 11, 105)
}
