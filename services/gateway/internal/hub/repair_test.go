package hub

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/ids"
)

// A gap whose read-back JetStream does not answer (an overloaded or
// restarting server) is retried until it does, not skipped: the events
// are retained, and skipping them lost them for every live reader (spec
// 4.5, gap-free order). JetStream is made to fail by turning its direct
// gets off; the events stay stored.
func TestRepairRetriesWhenJetStreamFails(t *testing.T) {
	log := &warnings{}
	h, plane := startHubLog(t, log)
	ctx := t.Context()
	info := &admission.Conversation{ID: ids.NewConversationID(time.Now()), Namespace: "acme", Alias: "room"}
	streamID := "str_0123456789abcdef0123456789"
	subj, err := subject.Event(info.ID, streamID)
	if err != nil {
		t.Fatal(err)
	}
	wire := frame.Stream{ID: streamID, Name: "w", Owner: "acc_01J00000000000000000"}
	token := func(seq uint64) []byte {
		return frame.AppendToken(nil, &wire, time.Now(), fmt.Sprintf("t%d", seq), seq)
	}
	// Seqs 1 to 3 are stored before this gateway serves the conversation.
	for seq := uint64(1); seq <= 3; seq++ {
		if err := plane.PublishEvent(subj, token(seq), time.Time{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for {
		last, err := plane.LastSeq(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if last == 3 {
			break
		}
		time.Sleep(2 * time.Millisecond) // polling a visible condition; the test's deadline bounds it
	}

	sink := newTestSink()
	conn, err := h.Join(ctx, JoinRequest{Conversation: info, Observer: true, Transport: "test"}, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(1000, false)
	// The stream is announced at seq 1: the reader goes on live from 2.
	key, _ := subject.PresenceKey(info.ID, streamID)
	rec := presence.Record{StreamID: streamID, Name: wire.Name, Owner: wire.Owner, Metadata: "{}",
		Gateway: "gw-other", Epoch: 1, State: presence.Live, LastSeq: 1}
	if _, err := presence.Put(ctx, plane.Presence, key, &rec, 0); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	c := h.convs[info.ID]
	h.mu.Unlock()
	if c == nil {
		t.Fatal("the conversation is not served")
	}
	waitUntil(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.streams[streamID]
		return s != nil && s.announced
	})

	// JetStream stops answering reads; then seq 4 arrives live, after a
	// gap of 2 and 3.
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
	setDirect(false)
	c.onEvent(&nats.Msg{Subject: subj, Data: token(4)})
	waitUntil(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return slices.Contains(log.msgs, "stream gap repair failed; retrying")
	})
	setDirect(true)

	if got := sink.tokens(t, conn, 3); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("tokens %v, want 2, 3 and 4", got)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if slices.Contains(log.msgs, "stream gap skipped") {
		t.Fatalf("the gap was skipped: %q", log.msgs)
	}
}

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(2 * time.Millisecond) // polling a visible condition, bounded above
	}
}
