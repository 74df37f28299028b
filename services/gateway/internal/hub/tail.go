package hub

import (
	"sync/atomic"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
)

// tail holds a stream's newest delivered events on this gateway, so that
// a reader resuming a few events behind is served from memory. Without it
// every resume read JetStream, whose lookups by subject scan the events
// of every stream stored between: 5,000 resumes at once took seconds of
// the server's time, and readers waited that long for the events they
// had missed. Guarded by conv.mu.
type tail struct {
	ev    []tailEvent // a ring of len events, allocated on the first event
	head  int         // index of the oldest
	n     int
	last  uint64 // seq of the newest, when n > 0
	bytes int    // the frames' bytes
	// closed: the stream is gone; the tail takes no more events.
	closed bool
}

// tailEvent is one event of a tail and when it was delivered (Unix ns).
type tailEvent struct {
	frame []byte
	seq   uint64
	at    int64
}

// tailBudget bounds the tails of one gateway: the events and bytes of
// each, and the bytes of all of them together, which the tails of every
// conversation share (used is atomic, each tail is under its own lock).
// It counts the frames: an event that came in a batch shares the batch's
// message, so a tail also keeps alive the rest of the batch of its oldest
// event (at most maxBatchBytes and a frame).
type tailBudget struct {
	events, bytes int
	total         int64
	used          atomic.Int64
}

// add records the event delivered after the newest, delivered at at
// (Unix ns), within b: the oldest events go out first to make room, and
// when the gateway's total is taken by other tails the event is not kept
// (the tail empties). Any other seq (a skipped gap), or a frame larger
// than a tail may hold, starts the tail afresh, so it is always
// contiguous.
func (t *tail) add(f []byte, seq uint64, at int64, b *tailBudget) {
	if b.events <= 0 || t.closed {
		return
	}
	size := len(f)
	if t.n > 0 && seq != t.last+1 || size > b.bytes {
		t.reset(b)
		if size > b.bytes {
			return
		}
	}
	// The bytes that leave and come are settled with the shared count in
	// one step: a full ring takes one atomic add per event.
	freed := 0
	for t.n > 0 && (t.n == len(t.ev) || t.bytes+size > b.bytes || b.used.Load()-int64(freed)+int64(size) > b.total) {
		freed += t.dropOldest()
	}
	if b.used.Add(int64(size-freed)) > b.total {
		// Other tails hold the gateway's room: this one stays empty
		// until some is freed.
		b.used.Add(-int64(size))
		t.reset(b)
		return
	}
	if t.ev == nil {
		t.ev = make([]tailEvent, b.events)
	}
	t.ev[(t.head+t.n)%len(t.ev)] = tailEvent{frame: f, seq: seq, at: at}
	t.n++
	t.bytes += size
	t.last = seq
}

// dropOldest drops the oldest event and returns its bytes, which the
// caller gives back to the budget.
func (t *tail) dropOldest() int {
	size := len(t.ev[t.head].frame)
	t.bytes -= size
	t.ev[t.head] = tailEvent{}
	t.head = (t.head + 1) % len(t.ev)
	t.n--
	return size
}

// reset empties the tail and gives its bytes back to b.
func (t *tail) reset(b *tailBudget) {
	b.used.Add(-int64(t.bytes))
	clear(t.ev)
	t.head, t.n, t.bytes = 0, 0, 0
}

// free empties the tail and lets go of its ring too (a quiet stream's
// tail holds nothing until its next event).
func (t *tail) free(b *tailBudget) {
	t.reset(b)
	t.ev = nil
}

// close frees the tail for good: its stream is gone from the gateway.
func (t *tail) close(b *tailBudget) {
	t.free(b)
	t.closed = true
}

// holds reports whether the tail has every event from first to last, and
// last is its newest.
func (t *tail) holds(first, last uint64) bool {
	return t.n > 0 && first <= last && last == t.last && first+uint64(t.n) > last
}

// each calls fn with the events from first to the newest, in order; holds
// must have said yes.
func (t *tail) each(first uint64, fn func(f []byte, seq uint64)) {
	skip := t.n - int(t.last-first+1)
	for i := skip; i < t.n; i++ {
		e := &t.ev[(t.head+i)%len(t.ev)]
		fn(e.frame, e.seq)
	}
}

// at is when the event of seq (which the tail holds) was delivered.
func (t *tail) at(seq uint64) int64 {
	return t.ev[(t.head+t.n-1-int(t.last-seq))%len(t.ev)].at
}

// Retention margins of a replay from the tail: it serves only events that
// JetStream surely still retains, so that a resume near the edge of
// max_events or max_age gets its replay_gap from JetStream (spec 5.1).
const (
	tailEventsMargin = 64
	tailAgeMargin    = time.Second
)

// retained reports whether events first to last, the oldest delivered at
// at, are surely within the retention of events stream.
func retained(cfg dataplane.Config, first, last uint64, at int64, now time.Time) bool {
	if cfg.MaxEvents > 0 && last-first+1+tailEventsMargin > uint64(cfg.MaxEvents) {
		return false
	}
	if cfg.MaxAge > 0 && now.Sub(time.Unix(0, at)) > cfg.MaxAge-tailAgeMargin {
		return false
	}
	return true
}

// serveFromTail enqueues conn's replay of s from first to snapshot from
// the tail, if the tail holds all of it and the connection's queue has
// room for it within half its bound (where a JetStream replay would wait
// for the client); c.mu is held. Live events of s that come later follow
// it in order, under the same lock.
func (c *conv) serveFromTail(conn *Conn, s *stream, first, snapshot uint64) bool {
	if !s.tail.holds(first, snapshot) || !retained(c.hub.plane.Config(), first, snapshot, s.tail.at(first), time.Now()) {
		return false
	}
	n, size := 0, 0
	s.tail.each(first, func(f []byte, _ uint64) { n, size = n+1, size+len(f) })
	conn.qmu.Lock()
	room := !conn.closed && len(conn.q)+n <= conn.maxFrames/2 && conn.qBytes+size <= conn.maxBytes/2
	conn.qmu.Unlock()
	if !room {
		return false
	}
	s.tail.each(first, func(f []byte, seq uint64) { conn.enqueue(Item{Frame: f, Stream: s, Seq: seq}) })
	c.hub.metrics.replay(n)
	return true
}
