package benchkit

import (
	"sync/atomic"
	"testing"
)

// A closed-loop writer's room is bounded by its slowest reader, not by
// the readers' total: a reader that got nothing of a full window stops
// the writer however far ahead the others are.
func TestPacerRoomFollowsSlowestReader(t *testing.T) {
	t.Parallel()
	var fast, slow atomic.Int64
	p := &pacer{window: 4, got: []*atomic.Int64{&fast, &slow}}
	if r := p.room(0); r != 4 {
		t.Fatalf("room before sending = %d, want 4", r)
	}
	fast.Store(4)
	if r := p.room(4); r != 0 {
		t.Fatalf("room with one reader 4 behind = %d, want 0 (a total bound would give 2)", r)
	}
	slow.Store(3)
	if r := p.room(4); r != 3 {
		t.Fatalf("room with the slowest reader 1 behind = %d, want 3", r)
	}
}
