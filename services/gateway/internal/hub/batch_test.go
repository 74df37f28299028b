package hub

import (
	"fmt"
	"testing"
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
