package hub

import (
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/presence"
)

// A join writes its stream's record from the record the conversation's
// watch delivered, without reading it from NATS first; when the watched
// one is behind NATS, the compare-and-set fails and the join reads NATS
// and writes again. The epochs tell which record each write came from:
// the watched records here are altered, which no real record would be.
func TestJoinWritesFromWatchedRecord(t *testing.T) {
	h, plane := startHub(t)
	ctx := t.Context()
	info, key, rev := putLeft(t, h, plane, 5)
	// An observer makes the gateway serve the conversation and watch its
	// records.
	obs, err := h.Join(ctx, JoinRequest{Conversation: info, Observer: true, Transport: "test"}, newTestSink())
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close(1000, false)
	h.mu.Lock()
	c := h.convs[info.ID]
	h.mu.Unlock()
	// watchedAt waits until the watch delivered revision at least r, then
	// sets the watched record's epoch and revision.
	watchedAt := func(r uint64, epoch, setRev uint64) {
		t.Helper()
		waitUntil(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			w := c.records[key]
			if w == nil || w.rev < r {
				return false
			}
			altered := *w
			altered.epoch, altered.rev = epoch, setRev
			c.records[key] = &altered
			return true
		})
	}
	epochOf := func() (uint64, uint64) {
		t.Helper()
		got, r, ok, err := presence.Get(ctx, plane.Presence, key)
		if err != nil || !ok {
			t.Fatalf("record: %v %v", ok, err)
		}
		return got.Epoch, r
	}
	join := func() *Conn {
		t.Helper()
		conn, err := h.Join(ctx, JoinRequest{Conversation: info, AccountID: testAccount, StreamName: "w", Transport: "test"}, newTestSink())
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}

	watchedAt(rev, 40, rev) // current, as NATS holds it, but for its epoch
	w := join()
	epoch, rev := epochOf()
	if epoch != 41 {
		t.Fatalf("epoch %d after a join from the watched record of epoch 40, want 41", epoch)
	}
	w.Close(1000, false) // the stream leaves: a newer record
	waitUntil(t, func() bool {
		_, r := epochOf()
		return r > rev
	})
	left, now := epochOf()
	watchedAt(now, 90, rev) // behind NATS: the write conflicts
	w = join()
	defer w.Close(1000, false)
	if epoch, _ := epochOf(); epoch != left+1 {
		t.Fatalf("epoch %d after a join from a watched record behind NATS, want %d (NATS's %d + 1)", epoch, left+1, left)
	}
}
