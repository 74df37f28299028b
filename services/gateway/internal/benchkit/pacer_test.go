package benchkit

import (
	"sync/atomic"
	"testing"
	"time"
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

// A fixed-rate writer far behind its schedule (the kit stalled) catches
// up within the window, not with everything due at once, and sends more
// as its slowest reader gets what it sent.
func TestPacerFixedRateCatchUpStaysWithinWindow(t *testing.T) {
	t.Parallel()
	var a, b atomic.Int64
	wake := make(chan struct{}, 1)
	now := time.Now()
	p := &pacer{rate: 1000, window: 4, start: now.Add(-time.Second), end: now.Add(time.Minute), got: []*atomic.Int64{&a, &b}, wake: wake}
	if n := p.next(0, 256); n != 4 {
		t.Fatalf("a writer 1,000 tokens behind may send %d, want the window of 4", n)
	}
	done := make(chan int)
	go func() { done <- p.next(4, 256) }()
	a.Store(4)
	b.Store(2)
	poke(wake)
	if n := <-done; n != 2 {
		t.Fatalf("with the slowest reader 2 behind the writer may send %d, want 2", n)
	}
}

// A fixed-rate writer that waits on a reader a window behind counts the
// time it was held, which the fan-out table reports.
func TestPacerCountsHeldTime(t *testing.T) {
	t.Parallel()
	var a, held atomic.Int64
	now := time.Now()
	p := &pacer{rate: 1000, window: 4, start: now.Add(-time.Second), end: now.Add(20 * time.Millisecond), got: []*atomic.Int64{&a}, wake: make(chan struct{}, 1), held: &held}
	if n := p.next(4, 256); n != 0 {
		t.Fatalf("a writer a window ahead of its reader may send %d before the end, want 0", n)
	}
	if h := time.Duration(held.Load()); h <= 0 || h > time.Since(now) {
		t.Fatalf("held %s while waiting until the end (%s)", h, time.Since(now))
	}
}

// At a fixed rate the pacer takes RateWindow, in a closed loop Window;
// each writer gets its share.
func TestPacerRateWindow(t *testing.T) {
	t.Parallel()
	sh := Shape{Conversations: 1, Writers: 4, Readers: 2, Window: 512, RateWindow: 896}
	if w := newLoadRun(sh).pacer(0).window; w != 128 {
		t.Errorf("closed loop: writer window %d, want 512/4", w)
	}
	sh.Rate = 1000
	if w := newLoadRun(sh).pacer(3).window; w != 224 {
		t.Errorf("fixed rate: writer window %d, want 896/4", w)
	}
	sh.RateWindow = 0
	if w := newLoadRun(sh).pacer(0).window; w != 128 {
		t.Errorf("fixed rate without RateWindow: writer window %d, want 512/4", w)
	}
}
