package hub

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// testStream is a stream of a new conversation that another gateway
// ("gw-other") holds: the test publishes its events and writes its record
// on the data plane, as that gateway would.
type testStream struct {
	t     *testing.T
	h     *Hub
	plane *dataplane.Plane
	info  *admission.Conversation
	id    string
	subj  string
	wire  frame.Stream
}

func newTestStream(t *testing.T, h *Hub, plane *dataplane.Plane) *testStream {
	t.Helper()
	info := newConversation()
	id := "str_0123456789abcdef0123456789"
	subj, err := subject.Event(info.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return &testStream{t: t, h: h, plane: plane, info: info, id: id, subj: subj,
		wire: frame.Stream{ID: id, Name: "w", Owner: "acc_01J00000000000000000"}}
}

// token is the token frame of seq.
func (ts *testStream) token(seq uint64) []byte {
	return frame.AppendToken(nil, &ts.wire, time.Now(), fmt.Sprintf("t%d", seq), seq)
}

// publish publishes the tokens of seqs from to to.
func (ts *testStream) publish(from, to uint64) {
	ts.t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := ts.plane.PublishEvent(ts.subj, ts.token(seq), time.Time{}, nil); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// waitStored waits until JetStream holds the stream up to seq n.
func (ts *testStream) waitStored(n uint64) {
	ts.t.Helper()
	waitUntil(ts.t, func() bool {
		last, err := ts.plane.LastSeq(ts.t.Context(), ts.subj)
		if err != nil {
			ts.t.Fatal(err)
		}
		return last == n
	})
}

// live writes the stream's record: live, at lastSeq.
func (ts *testStream) live(lastSeq uint64) {
	ts.t.Helper()
	key, _ := subject.PresenceKey(ts.info.ID, ts.id)
	rec := presence.Record{StreamID: ts.id, Name: ts.wire.Name, Owner: ts.wire.Owner, Metadata: "{}",
		Gateway: "gw-other", Epoch: 1, State: presence.Live, LastSeq: lastSeq}
	if _, err := presence.Put(ts.t.Context(), ts.plane.Presence, key, &rec, 0); err != nil {
		ts.t.Fatal(err)
	}
}

// announced waits until the hub serves the conversation with the stream
// announced, and returns the conversation.
func (ts *testStream) announced() *conv {
	ts.t.Helper()
	ts.h.mu.Lock()
	c := ts.h.convs[ts.info.ID]
	ts.h.mu.Unlock()
	if c == nil {
		ts.t.Fatal("the conversation is not served")
	}
	waitUntil(ts.t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.streams[ts.id]
		return s != nil && s.announced
	})
	return c
}

// observe joins an observer, with a cursor at from unless from is
// negative; the connection closes with the test.
func (ts *testStream) observe(from int64) (*testSink, *Conn) {
	ts.t.Helper()
	req := JoinRequest{Conversation: ts.info, Observer: true, Transport: "test"}
	if from >= 0 {
		req.Cursor = &connreq.Cursor{Positions: map[string]uint64{ts.id: uint64(from)}, Order: []string{ts.id}}
	}
	sink := newTestSink()
	conn, err := ts.h.Join(ts.t.Context(), req, sink)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { conn.Close(1000, false) })
	return sink, conn
}

// setDirect turns the events stream's direct gets on or off: off, every
// read of retained events fails while they stay stored.
func setDirect(t *testing.T, plane *dataplane.Plane, on bool) {
	t.Helper()
	js, err := jetstream.New(plane.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), dataplane.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowDirect = on
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// wantRun fails unless got is the seqs from to to, in order.
func wantRun(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if len(got) != int(to-from+1) {
		t.Fatalf("tokens %v, want %d to %d", got, from, to)
	}
	for i, seq := range got {
		if seq != from+uint64(i) {
			t.Fatalf("tokens %v, want %d to %d in order", got, from, to)
		}
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
