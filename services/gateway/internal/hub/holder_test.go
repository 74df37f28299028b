package hub

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// A writer whose connection was lost resumes on the gateway that holds its
// stream (spec 4.5) without writing the stream's record: the record keeps
// its epoch, the joined frame says resumed, seqs go on from the last, and
// the grace's reference to the conversation passes back once. A second
// connection of the stream on the gateway displaces the attached one
// (4001) the same way. A resume that changes the record (its metadata)
// writes it, at the next epoch.
func TestResumeOnHolderWritesNoRecord(t *testing.T) {
	h, plane := startHub(t)
	ctx := t.Context()
	info := newConversation()
	reader, rsink := joinObserver(t, h, info)
	join := func(metadata string) (*Conn, *testSink) {
		t.Helper()
		sink := newTestSink()
		conn, err := h.Join(ctx, JoinRequest{Conversation: info, AccountID: testAccount, StreamName: "w",
			Metadata: metadata, MetadataSet: metadata != "", Transport: "test"}, sink)
		if err != nil {
			t.Fatal(err)
		}
		return conn, sink
	}
	emit := func(w *Conn, tokens ...string) {
		t.Helper()
		if err := w.EmitTokens(tokens); err != nil {
			t.Fatal(err)
		}
	}
	refs := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c := h.convs[info.ID]; c != nil {
			return c.refs
		}
		return 0
	}
	w, _ := join("")
	key := w.own.key
	record := func() presence.Record {
		t.Helper()
		rec, _, ok, err := presence.Get(ctx, plane.Presence, key)
		if err != nil || !ok {
			t.Fatalf("record: %v %v", ok, err)
		}
		return rec
	}
	emit(w, "a", "b")
	first := record()

	w.Close(1006, true) // lost: the stream keeps its grace
	if r := refs(); r != 2 {
		t.Fatalf("%d references after the loss, want 2 (the reader's, the grace's)", r)
	}
	w, _ = join("")
	if rec := record(); rec.Epoch != first.Epoch || rec.Gateway != first.Gateway || rec.State != presence.Live {
		t.Fatalf("record after the resume: epoch %d on %s (%s), want epoch %d on %s, live", rec.Epoch, rec.Gateway, rec.State, first.Epoch, first.Gateway)
	}
	var items []Item
	items, _ = w.Take(items)
	if len(items) == 0 || !bytes.Contains(items[0].Frame, []byte(`"resumed":true`)) {
		t.Fatalf("%d frames after the resume, want the first joined with resumed true", len(items))
	}
	if r := refs(); r != 2 {
		t.Fatalf("%d references after the resume, want 2 (the reader's, the writer's)", r)
	}
	emit(w, "c")

	second, _ := join("") // a second connection of the stream
	wsink := w.sink.(*testSink)
	wsink.mu.Lock()
	code := wsink.code
	wsink.mu.Unlock()
	if code != wireerr.StreamDisplaced.Close {
		t.Fatalf("the attached connection closed %d, want %d stream_displaced", code, wireerr.StreamDisplaced.Close)
	}
	if rec := record(); rec.Epoch != first.Epoch {
		t.Fatalf("epoch %d after a displacement on the holder, want %d", rec.Epoch, first.Epoch)
	}
	if r := refs(); r != 2 {
		t.Fatalf("%d references after the displacement, want 2", r)
	}
	emit(second, "d")
	if got := rsink.tokens(t, reader, 4); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("reader got seqs %v, want 1 to 4", got)
	}

	second.Close(1006, true)
	changed, _ := join(`{"k":1}`)
	defer changed.Close(1000, false)
	if rec := record(); rec.Epoch != first.Epoch+1 || rec.Metadata != `{"k":1}` {
		t.Fatalf("record after a resume with new metadata: epoch %d, metadata %s; want epoch %d, {\"k\":1}", rec.Epoch, rec.Metadata, first.Epoch+1)
	}
	if r := refs(); r != 2 {
		t.Fatalf("%d references after the resume with new metadata, want 2", r)
	}
}

// A walk over the served conversations (here the checkpoint) that waits
// for a busy conversation's lock does not hold the hub's: a join of
// another conversation goes on meanwhile. It used to wait for the walk.
func TestWalkWaitingForAConversationDoesNotStopJoins(t *testing.T) {
	h, _ := startHub(t)
	ctx := t.Context()
	obs, _ := joinObserver(t, h, newConversation())
	c := obs.conv
	c.mu.Lock()
	walked := make(chan struct{})
	go func() {
		defer close(walked)
		_ = h.checkpointAll(ctx)
	}()
	// The walk is waiting for the conversation's lock.
	waitUntil(t, func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "sync.(*Mutex).Lock") && strings.Contains(g, "(*Hub).checkpointAll") {
				return true
			}
		}
		return false
	})
	joined := make(chan error, 1)
	go func() {
		conn, err := h.Join(ctx, JoinRequest{Conversation: newConversation(), Observer: true, Transport: "test"}, newTestSink())
		if err == nil {
			conn.Close(1000, false)
		}
		joined <- err
	}()
	var err error
	select {
	case err = <-joined:
	case <-time.After(5 * time.Second):
		err = errors.New("not joined within 5 s")
	}
	c.mu.Unlock()
	<-walked
	if err != nil {
		t.Fatalf("a join of another conversation while the walk waited: %v", err)
	}
}
