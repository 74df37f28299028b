package hub

import (
	"fmt"
	"testing"
	"time"
)

// A writer's tokens emitted together reach a reader in order, as frames
// of one token each; a batch whose publish fails for good (the NATS
// connection closed) takes no seq and leaves nothing in the stream's log,
// so the seqs it would have had are not skipped.
func TestEmitTokensBatch(t *testing.T) {
	h, plane := startHub(t)
	ctx := t.Context()
	info := newConversation()
	reader, rsink := joinObserver(t, h, info)
	w, err := h.Join(ctx, JoinRequest{Conversation: info, AccountID: "acc_01J00000000000000000", StreamName: "w", Transport: "test"}, newTestSink())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(1000, false)
	if err := w.EmitTokens([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	var batch []string
	for i := range 300 {
		batch = append(batch, fmt.Sprintf("t%d-%s", i, string(make([]byte, i%7))))
	}
	if err := w.EmitTokens(batch); err != nil {
		t.Fatal(err)
	}
	got := rsink.tokens(t, reader, 301)
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("tokens %v: seq %d at %d", got, seq, i)
		}
	}

	plane.Conn().Close()
	s := w.own
	s.wmu.Lock()
	next, logged := s.nextSeq, s.log.len()
	s.wmu.Unlock()
	if err := w.EmitTokens([]string{"x", "y", "z"}); err == nil {
		t.Fatal("a batch emitted on a closed NATS connection did not fail")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.nextSeq != next || s.log.len() != logged {
		t.Fatalf("after the failed batch: next seq %d (was %d), log %d events (was %d)", s.nextSeq, next, s.log.len(), logged)
	}
}

// In core mode at most one event per stream per millisecond carries its
// ingest time; a wall clock set back does not stop the stamps.
func TestIngestStampOncePerMillisecond(t *testing.T) {
	h, _ := startHub(t)
	w, err := h.Join(t.Context(), JoinRequest{Conversation: newConversation(), AccountID: testAccount, StreamName: "w", Transport: "test"}, newTestSink())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(1000, false)
	s := w.own
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t0 := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		at      time.Time
		stamped bool
	}{
		{t0, true},
		{t0.Add(999 * time.Microsecond), false},
		{t0.Add(time.Millisecond), true},
		{t0.Add(1500 * time.Microsecond), false},
		{t0.Add(-time.Hour), true}, // the clock went back
		{t0.Add(-time.Hour + time.Microsecond), false},
	} {
		if got := !s.ingestStamp(c.at).IsZero(); got != c.stamped {
			t.Errorf("at %v: stamped %v, want %v", c.at.Sub(t0), got, c.stamped)
		}
	}
}

// BenchmarkNewStream is what a stream costs the gateway's heap before its
// record fills it in: the struct, its subject and key, and its channel
// (B/op; the struct is sized to a 768-byte allocation class).
func BenchmarkNewStream(b *testing.B) {
	c := newConv(nil, newConversation())
	const sid = "str_0123456789abcdef0123456789"
	b.ReportAllocs()
	for b.Loop() {
		streamSink = c.newStream(sid)
	}
}

var streamSink *stream
