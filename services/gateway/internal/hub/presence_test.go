package hub

import (
	"sync"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// A gateway keeps one consumer on the presence bucket however many
// conversations it serves: each conversation reads a snapshot of its
// records when it starts (a stream live before the join) and takes the
// changes after it from the gateway's watch (a stream live after).
func TestOneWatchForEveryConversation(t *testing.T) {
	h, plane := startHub(t)
	var before, after []*testStream
	for range 3 {
		ts := newTestStream(t, h, plane)
		ts.live(0)
		ts.observe(-1)
		before = append(before, ts)
		ts = newTestStream(t, h, plane)
		ts.observe(-1)
		ts.live(0)
		after = append(after, ts)
	}
	for _, ts := range before {
		ts.announced()
	}
	for _, ts := range after {
		ts.announced()
	}
	js, err := plane.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.StreamInfo("KV_" + dataplane.PresenceBucket)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 1 {
		t.Fatalf("%d consumers on the presence bucket while 6 conversations are served, want 1", info.State.Consumers)
	}
}

// A conversation that loads its records while the NATS server loses its
// store loads them again. The snapshot it read may be of the lost store,
// whose revisions are higher than the new store's: applied, it kept a
// stream live that the new store says has left, and the changes after it
// were passed over as older.
func TestRecordsLoadedAgainAfterStoreLostWhileLoading(t *testing.T) {
	h, plane := startHub(t)
	ctx := t.Context()
	ts := newTestStream(t, h, plane)
	for range 4 { // revisions the new store will not reach
		newTestStream(t, h, plane).live(0)
	}
	ts.live(0)

	reached, release := make(chan struct{}), make(chan struct{})
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let) // a failure below does not leave the load stopped
	var once sync.Once
	h.afterSnapshot = func(id string) {
		if id == ts.info.ID {
			once.Do(func() { close(reached); <-release })
		}
	}
	joined := make(chan error, 1)
	go func() {
		conn, err := h.Join(ctx, JoinRequest{Conversation: ts.info, Observer: true, Transport: "test"}, newTestSink())
		if err == nil {
			t.Cleanup(func() { conn.Close(1000, false) })
		}
		joined <- err
	}()
	select {
	case <-reached:
	case err := <-joined:
		t.Fatalf("join ended before its records' snapshot was read: %v", err)
	}

	// The store is lost: the bucket is created again, empty.
	js, err := plane.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream("KV_" + dataplane.PresenceBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := plane.Recreate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.RestartPresence(ctx); err != nil {
		t.Fatal(err)
	}
	// In the new store the stream has left, at revision 1.
	key, _ := subject.PresenceKey(ts.info.ID, ts.id)
	left := presence.Record{StreamID: ts.id, Name: ts.wire.Name, Owner: ts.wire.Owner, Metadata: "{}",
		Gateway: "gw-other", Epoch: 1, State: presence.Left, LastSeq: 0}
	if rev, err := presence.Put(ctx, plane.Presence, key, &left, 0); err != nil || rev != 1 {
		t.Fatalf("put in the new store: revision %d, %v", rev, err)
	}
	let()
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	c := h.convs[ts.info.ID]
	h.mu.Unlock()
	c.mu.Lock()
	s := c.streams[ts.id]
	rev := c.recRev[ts.id]
	c.mu.Unlock()
	if s != nil {
		t.Fatalf("stream served (announced %v) after it left in the new store; its applied revision %d", s.announced, rev)
	}
	if rev != 1 {
		t.Fatalf("applied revision %d, want the new store's 1", rev)
	}
}
