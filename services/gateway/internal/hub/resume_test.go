package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/natsserver/natstest"
)

// startHub runs a hub on an embedded NATS server of its own.
func startHub(t *testing.T) (*Hub, *dataplane.Plane) {
	t.Helper()
	return startHubLog(t, slog.DiscardHandler)
}

// startHubLog is startHub with the hub logging to log.
func startHubLog(t *testing.T, log slog.Handler) (*Hub, *dataplane.Plane) {
	t.Helper()
	return startHubWith(t, log, Config{Gateway: "gw-test"})
}

// startHubWith is startHub with the hub logging to log and configured by
// cfg.
func startHubWith(t *testing.T, log slog.Handler, cfg Config) (*Hub, *dataplane.Plane) {
	t.Helper()
	nc := natstest.Connect(t)
	plane, err := dataplane.Open(t.Context(), nc, dataplane.Config{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, plane, ids.NewDeriver([]byte("test pepper, not a secret")), nil, slog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, plane
}

// testSink collects what the hub queues for a connection.
type testSink struct {
	wake chan struct{}
	mu   sync.Mutex
	code int
}

func newTestSink() *testSink { return &testSink{wake: make(chan struct{}, 1)} }

// newConversation is the admission of a new conversation.
func newConversation() *admission.Conversation {
	return &admission.Conversation{ID: ids.NewConversationID(time.Now()), Namespace: "acme", Alias: "room"}
}

// joinObserver joins an observer to the conversation, closed when the
// test ends.
func joinObserver(t *testing.T, h *Hub, info *admission.Conversation) (*Conn, *testSink) {
	t.Helper()
	sink := newTestSink()
	conn, err := h.Join(t.Context(), JoinRequest{Conversation: info, Observer: true, Transport: "test"}, sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(1000, false) })
	return conn, sink
}

func (s *testSink) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *testSink) Close(code int, _ string) {
	s.mu.Lock()
	if s.code == 0 {
		s.code = code
	}
	s.mu.Unlock()
	s.Wake()
}

// tokens reads the connection's frames until want tokens came (or fails
// after a bound) and returns their seqs.
func (s *testSink) tokens(t *testing.T, conn *Conn, want int) []uint64 {
	t.Helper()
	var seqs []uint64
	var items []Item
	deadline := time.After(10 * time.Second)
	for len(seqs) < want {
		var more bool
		items, more = conn.Take(items)
		for _, it := range items {
			if frame.KindOf(it.Frame) == frame.KindToken {
				seq, _ := frame.SeqOf(it.Frame)
				seqs = append(seqs, seq)
			}
		}
		conn.Delivered(items)
		if more || len(seqs) >= want {
			continue
		}
		select {
		case <-s.wake:
		case <-deadline:
			t.Fatalf("got tokens %v, want %d", seqs, want)
		}
	}
	return seqs
}

// A stream of the resume cursor that this gateway announces only after the
// join (its record reached the gateway later) is replayed from the cursor's
// position, not taken up at its announced last seq: spec 5.1, no gap.
func TestResumeStreamAnnouncedAfterJoin(t *testing.T) {
	h, plane := startHub(t)
	ts := newTestStream(t, h, plane)
	ts.publish(1, 10)
	ts.waitStored(10)
	// The reader had seqs up to 4. No record of the stream exists yet.
	sink, conn := ts.observe(4)
	// Now the record arrives: live, announced at last seq 10.
	ts.live(10)
	if got := sink.tokens(t, conn, 6); fmt.Sprint(got) != "[5 6 7 8 9 10]" {
		t.Fatalf("tokens %v, want 5 to 10", got)
	}
	if cur := conn.Cursor()[ts.id]; cur != 10 {
		t.Errorf("cursor %d after the replay, want 10", cur)
	}
}

// Resumes share the MaxReplaying slots, and a replay longer than one read
// (replayChunk events) holds its slot only while it reads, not while it
// waits for its client: with one slot, a reader whose client takes
// nothing does not stop another reader's resume.
func TestReplaysShareSlots(t *testing.T) {
	h, plane := startHubWith(t, slog.DiscardHandler, Config{Gateway: "gw-test", MaxReplaying: 1})
	ts := newTestStream(t, h, plane)
	const n = 600
	ts.publish(1, n)
	ts.waitStored(n)
	ts.live(n)
	// The first reader's replay fills its queue to half (where a replay
	// waits for the client) and stops there: its client takes nothing.
	slowSink, slow := ts.observe(0)
	waitUntil(t, func() bool {
		slow.qmu.Lock()
		defer slow.qmu.Unlock()
		return len(slow.q) >= slow.maxFrames/2
	})
	sink, conn := ts.observe(0)
	wantRun(t, sink.tokens(t, conn, n), 1, n)
	wantRun(t, slowSink.tokens(t, slow, n), 1, n)
}
